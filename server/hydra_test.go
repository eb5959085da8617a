package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/auth/authtest"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/hydratest"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// The service against a real open-source OAuth2 server, Ory Hydra (pinned
// in tools/hydra, installed by .ci/run), with JWT access tokens and with
// its default opaque ones, which only introspection (RFC 7662) can check.

const hydraAudience = "userphone"

// introspectionCache is short here, so that a revoked token's refusal is
// seen within the test.
const introspectionCache = time.Second

// bothStrategies are Hydra's two kinds of access token.
var bothStrategies = []hydratest.Strategy{hydratest.StrategyJWT, hydratest.StrategyOpaque}

// withHydra runs fn against the service verifying Hydra's tokens as
// `userphone serve` does (auth.ForIssuer), for each token strategy.
func withHydra(t *testing.T, strategies []hydratest.Strategy, fn func(t *testing.T, hy *hydratest.Server, h *harness)) {
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			t.Parallel()
			hy := hydratest.Start(t, hydratest.WithStrategy(strategy))
			policy := auth.Policy{Issuer: hy.Issuer(), Audience: hydraAudience}
			keys, err := auth.NewOIDC(auth.OIDCConfig{Policy: policy})
			if err != nil {
				t.Fatal(err)
			}
			authtest.Start(t, keys)
			authtest.WaitReady(t, keys, 10*time.Second)
			introspector, err := auth.NewIntrospector(auth.IntrospectionConfig{Policy: policy, URL: hy.IntrospectionURL()})
			if err != nil {
				t.Fatal(err)
			}
			verifier := auth.ForIssuer(keys, introspector, introspectionCache)
			fn(t, hy, newHarness(t, options{cfg: storetest.Config(t, store.Postgres), verifier: verifier}))
		})
	}
}

// Both kinds of token run the whole flow: a first number, then a change
// confirmed by the e-mail that the token's email claim names.
func TestHydraTokensRunTheWholeFlow(t *testing.T) {
	withHydra(t, bothStrategies, func(t *testing.T, hy *hydratest.Server, h *harness) {
		client := hy.NewClient(t, []string{hydraAudience}, auth.AllScopes)
		tok := hy.Token(t, client, "hydra-user", "hydra-user@example.com", auth.AllScopes, []string{hydraAudience})
		h.verifyNumber(tok, numberA)
		if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("the change: %d %s", r.StatusCode(), r.Body)
		}
		if c := h.confirm(h.linkToken("hydra-user@example.com")); c.StatusCode() != http.StatusOK {
			t.Fatalf("confirm: %d", c.StatusCode())
		}
		if v := h.verify(tok, h.code(numberB)); v.StatusCode() != http.StatusOK || v.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber != numberB {
			t.Fatalf("verify the new number: %d %s", v.StatusCode(), v.Body)
		}
	})
}

// The wrong audience is 401, a missing scope 403, a token the issuer does
// not know 401.
func TestHydraTokensAreCheckedLikeAnyOther(t *testing.T) {
	withHydra(t, bothStrategies, func(t *testing.T, hy *hydratest.Server, h *harness) {
		other := hy.NewClient(t, []string{"another-api"}, auth.AllScopes)
		r := h.check(hy.Token(t, other, "u1", "", auth.AllScopes, []string{"another-api"}))
		wantError(t, 401, r.StatusCode(), r.Body, api.ErrorCodeUnauthorized)

		client := hy.NewClient(t, []string{hydraAudience}, auth.AllScopes)
		readOnly := hy.Token(t, client, "u2", "", []string{auth.ScopeCheck}, []string{hydraAudience})
		if r := h.check(readOnly); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("check with its scope: %d %s", r.StatusCode(), r.Body)
		}
		p := h.put(readOnly, numberA)
		wantError(t, 403, p.StatusCode(), p.Body, api.ErrorCodeInsufficientScope)

		for _, unknown := range []string{"ory_at_not-a-token-the-issuer-made", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"} {
			r := h.check(unknown)
			wantError(t, 401, r.StatusCode(), r.Body, api.ErrorCodeUnauthorized)
		}
	})
}

// A token revoked at the issuer is refused once the cached answer is
// older than the introspection cache (opaque tokens; a JWT stays valid
// until its exp, as its signature does). The issuer down answers 503 with
// Retry-After, never 401, for a token that may be good.
func TestRevokedOpaqueTokensAreRefusedAndADownIssuerIs503(t *testing.T) {
	withHydra(t, []hydratest.Strategy{hydratest.StrategyOpaque}, func(t *testing.T, hy *hydratest.Server, h *harness) {
		client := hy.NewClient(t, []string{hydraAudience}, auth.AllScopes)
		tok := hy.Token(t, client, "revoked", "", auth.AllScopes, []string{hydraAudience})
		if r := h.check(tok); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("before the revocation: %d %s", r.StatusCode(), r.Body)
		}
		hy.Revoke(t, client, tok)
		time.Sleep(introspectionCache + 100*time.Millisecond)
		r := h.check(tok)
		wantError(t, 401, r.StatusCode(), r.Body, api.ErrorCodeUnauthorized)

		fresh := hy.Token(t, client, "while-down", "", auth.AllScopes, []string{hydraAudience})
		hy.Down()
		r = h.check(fresh)
		wantError(t, 503, r.StatusCode(), r.Body, api.ErrorCodeServiceUnavailable)
		if r.HTTPResponse.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
		hy.FailWith(http.StatusBadGateway)
		hy.Up(t)
		r = h.check(fresh)
		wantError(t, 503, r.StatusCode(), r.Body, api.ErrorCodeServiceUnavailable)
		hy.FailWith(0)
		if r := h.check(fresh); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("the issuer back: %d %s", r.StatusCode(), r.Body)
		}
	})
}
