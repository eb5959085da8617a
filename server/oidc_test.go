package server_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/auth/authtest"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// oidcHarness runs the service against an OIDC issuer served by this test
// process: discovery and JWKS over HTTP, keys it can rotate.
func oidcHarness(t *testing.T, cfg func(*auth.OIDCConfig)) (*harness, *authtest.Issuer, *auth.OIDC) {
	t.Helper()
	iss := authtest.NewIssuer(t)
	mods := []func(*auth.OIDCConfig){}
	if cfg != nil {
		mods = append(mods, cfg)
	}
	v := iss.Verifier(t, mods...)
	h := newHarness(t, options{cfg: storetest.Config(t, storetestDialect()), verifier: v})
	return h, iss, v
}

// storetestDialect picks PostgreSQL for the OIDC tests: the dialect does
// not matter to sign-in, and the other tests cover both.
func storetestDialect() store.Dialect { return store.Postgres }

// nothingChanged asserts that refused requests left no trace: no user, no
// change, no message.
func (h *harness) nothingChanged(t *testing.T) {
	t.Helper()
	var users, changes int64
	if err := h.store.DB().Table("users").Count(&users).Error; err != nil {
		t.Fatal(err)
	}
	if err := h.store.DB().Table("phone_changes").Count(&changes).Error; err != nil {
		t.Fatal(err)
	}
	if users != 0 || changes != 0 || len(h.messages()) != 0 {
		t.Fatalf("a refused request left %d users, %d changes, %d messages", users, changes, len(h.messages()))
	}
}

func TestOIDCTokensAreVerifiedAgainstTheIssuer(t *testing.T) {
	h, iss, _ := oidcHarness(t, nil)
	const put = "/user/2021-2/user/phone"
	body := `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345678"}}}`
	other := authtest.NewKey(t, jwa.RS256())
	var rsaPub rsa.PublicKey
	if err := jwk.Export(iss.Current().Public, &rsaPub); err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaPub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	now := time.Now()

	cases := []struct {
		name, header string
		status       int
		code         userphone.ErrorCode
		challenge    string
	}{
		{"missing header", "", 401, userphone.CodeUnauthorized, `Bearer realm="userphone"`},
		{"wrong scheme", "Basic dXNlcjpwYXNz", 401, userphone.CodeUnauthorized, `Bearer realm="userphone"`},
		{"not a JWT", "Bearer abc.def", 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"alg none", "Bearer " + iss.TokenWith(t, nil, authtest.Unsigned()), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"HS256 with the public key (PEM) as secret", "Bearer " + iss.TokenWith(t, nil, authtest.SignedWith(jwa.HS256(), pubPEM)), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"HS256 with the public key (DER) as secret", "Bearer " + iss.TokenWith(t, nil, authtest.SignedWith(jwa.HS256(), pubDER)), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"signed by an unknown key under a known kid", "Bearer " + iss.TokenWith(t, nil, authtest.SignedBy(other), authtest.KID(iss.Current().KID)), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"unknown kid", "Bearer " + iss.TokenWith(t, nil, authtest.SignedBy(other)), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"expired", "Bearer " + iss.Token(t, map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"not yet valid", "Bearer " + iss.Token(t, map[string]any{"nbf": now.Add(2 * time.Minute).Unix()}), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"wrong issuer", "Bearer " + iss.Token(t, map[string]any{"iss": "https://evil.example.com/realms/test"}), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"wrong audience", "Bearer " + iss.Token(t, map[string]any{"aud": []string{"someone-else"}}), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"no sub", "Bearer " + iss.Token(t, map[string]any{"sub": nil}), 401, userphone.CodeUnauthorized, `error="invalid_token"`},
		{"no update scope", "Bearer " + iss.Token(t, map[string]any{"scope": auth.ScopeCheck}), 403, userphone.CodeInsufficientScope, `error="insufficient_scope", scope="user:users.phone:update"`},
		{"no scope at all", "Bearer " + iss.Token(t, map[string]any{"scope": nil}), 403, userphone.CodeInsufficientScope, `error="insufficient_scope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := h.raw("PUT", put, "application/vnd.api+json", body, "Authorization", c.header)
			e := wantError(t, c.status, resp.StatusCode, b, c.code)
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, c.challenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, c.challenge)
			}
			if strings.Contains(deref(e.Detail), "signature") || strings.Contains(deref(e.Detail), "kid") {
				t.Errorf("detail says why the signature failed: %q", deref(e.Detail))
			}
			h.nothingChanged(t)
		})
	}
	resp, b := h.raw("GET", put, "", "", "Authorization", "Bearer "+iss.Token(t, map[string]any{"scope": auth.ScopeUpdate}))
	wantError(t, 403, resp.StatusCode, b, userphone.CodeInsufficientScope)
	if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="user:users.phone:check"`) {
		t.Errorf("403 names the wrong scope: %q", resp.Header.Get("WWW-Authenticate"))
	}
	h.nothingChanged(t)

	// And a valid token from the issuer works end to end, with the user's
	// data taken from its claims.
	tok := iss.Token(t, map[string]any{"email": "oidc@example.com", "preferred_language": "de"})
	if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated || r.ApplicationvndApiJSON201.Data.Id != authtest.Subject {
		t.Fatalf("valid token: %d %s", r.StatusCode(), r.Body)
	}
	if sms := h.messagesTo(numberA); len(sms) != 1 || !strings.Contains(sms[0].Text, "Bestätigungscode") {
		t.Fatalf("the SMS does not follow preferred_language: %+v", sms)
	}
	// scp as an array works as well as scope.
	scp := iss.Token(t, map[string]any{"scope": nil, "scp": []string{auth.ScopeCheck}})
	if r := h.check(scp); r.StatusCode() != http.StatusCreated {
		t.Fatalf("scp token: %d %s", r.StatusCode(), r.Body)
	}
}

func TestLinkedIdentityIsRequiredWhenConfigured(t *testing.T) {
	h, iss, _ := oidcHarness(t, func(c *auth.OIDCConfig) { c.RequiredLinkedIdentity = "pace-id" })
	r := h.put(iss.Token(t, nil), numberA)
	e := wantError(t, 401, r.StatusCode(), r.Body, userphone.CodeMissingLinkedIdentity)
	if e.Title != "Missing linked identity for authorized access" ||
		deref(e.Detail) != "Linked identity is needed to access this resource, please check why the user does not have a linked identity" {
		t.Fatalf("not PACE's title and detail: %+v", e)
	}
	if !strings.Contains(r.HTTPResponse.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate = %q", r.HTTPResponse.Header.Get("WWW-Authenticate"))
	}
	r = h.put(iss.Token(t, map[string]any{"linked_identities": []string{"google", "apple"}}), numberA)
	wantError(t, 401, r.StatusCode(), r.Body, userphone.CodeMissingLinkedIdentity)
	h.nothingChanged(t)

	if r := h.put(iss.Token(t, map[string]any{"linked_identities": []string{"google", "pace-id"}}), numberA); r.StatusCode() != http.StatusCreated {
		t.Fatalf("with the linked identity: %d %s", r.StatusCode(), r.Body)
	}
	if r := h.check(iss.Token(t, map[string]any{"linked_identities": "pace-id"})); r.StatusCode() != http.StatusCreated {
		t.Fatalf("with the linked identity as a string: %d %s", r.StatusCode(), r.Body)
	}
}

func TestKeyRotationNeedsNoRestart(t *testing.T) {
	h, iss, _ := oidcHarness(t, nil)
	oldTok := iss.Token(t, nil)
	if r := h.check(oldTok); r.StatusCode() != http.StatusNotFound {
		t.Fatalf("before rotation: %d %s", r.StatusCode(), r.Body)
	}
	iss.Rotate(t) // a new current key, published beside the old one
	newTok := iss.Token(t, nil)
	before := iss.JWKSFetches()
	if r := h.check(newTok); r.StatusCode() != http.StatusNotFound {
		t.Fatalf("token of the rotated key: %d %s", r.StatusCode(), r.Body)
	}
	if iss.JWKSFetches() != before+1 {
		t.Fatalf("%d key fetches for the new kid, want 1", iss.JWKSFetches()-before)
	}
	if r := h.check(oldTok); r.StatusCode() != http.StatusNotFound {
		t.Fatalf("token of the old key, still published: %d", r.StatusCode())
	}
	// A flood of tokens with unknown kids costs the issuer at most one fetch
	// per refetch gap.
	bogus := iss.TokenWith(t, nil, authtest.SignedBy(authtest.NewKey(t, jwa.RS256())))
	before = iss.JWKSFetches()
	statuses := testenv.Parallel(30, func(int) int { r := h.check(bogus); return r.StatusCode() })
	if got := count(statuses); got[401] != 30 {
		t.Fatalf("unknown kids: %v", got)
	}
	if n := iss.JWKSFetches() - before; n > 1 {
		t.Fatalf("%d key fetches for 30 unknown-kid tokens, want at most 1", n)
	}
}

func TestAnIssuerDownAtStartLeavesTheServiceUpButNotReady(t *testing.T) {
	iss := authtest.NewIssuer(t)
	iss.SetDown(true)
	v, err := auth.NewOIDC(iss.Config())
	if err != nil {
		t.Fatal(err)
	}
	authtest.Start(t, v)
	h := newHarness(t, options{cfg: storetest.Config(t, storetestDialect()), verifier: v})

	resp, b := h.raw("GET", "/health/ready", "", "")
	wantError(t, 503, resp.StatusCode, b, userphone.CodeServiceUnavailable)
	r := h.check(iss.Token(t, nil))
	wantError(t, 503, r.StatusCode(), r.Body, userphone.CodeServiceUnavailable)
	if r.HTTPResponse.Header.Get("Retry-After") == "" || r.HTTPResponse.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("503: Retry-After %q, WWW-Authenticate %q", r.HTTPResponse.Header.Get("Retry-After"), r.HTTPResponse.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := h.raw("GET", "/health/live", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %d", resp.StatusCode)
	}

	iss.SetDown(false)
	authtest.WaitReady(t, v, 20*time.Second)
	if resp, _ := h.raw("GET", "/health/ready", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("ready after the issuer came up: %d", resp.StatusCode)
	}
	if r := h.check(iss.Token(t, nil)); r.StatusCode() != http.StatusNotFound {
		t.Fatalf("check after the issuer came up: %d %s", r.StatusCode(), r.Body)
	}
}
