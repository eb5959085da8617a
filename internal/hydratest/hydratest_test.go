package hydratest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/hydratest"
	"github.com/pace/userphone/internal/testservers"
)

var aud = []string{"userphone"}

func TestJWTAccessToken(t *testing.T) {
	t.Parallel()
	h := hydratest.Start(t)
	c := h.NewClient(t, aud, auth.AllScopes)
	raw := h.Token(t, c, "user-1", "a@example.com", auth.AllScopes, aud)

	header, claims := hydratest.DecodeJWT(t, raw)
	if header["alg"] != "RS256" || header["kid"] == "" || header["kid"] == nil {
		t.Errorf("header = %v, want RS256 with a kid", header)
	}
	if claims["iss"] != h.Issuer() || claims["sub"] != "user-1" || claims["client_id"] != c.ID {
		t.Errorf("iss, sub, client_id = %v, %v, %v", claims["iss"], claims["sub"], claims["client_id"])
	}
	if got := strs(claims["aud"]); !slices.Equal(got, aud) {
		t.Errorf("aud = %#v, want the array %v", claims["aud"], aud)
	}
	if got := strs(claims["scp"]); !slices.Equal(got, auth.AllScopes) {
		t.Errorf("scp = %#v, want the array %v", claims["scp"], auth.AllScopes)
	}
	if claims["email"] != "a@example.com" {
		t.Errorf("top-level email = %v", claims["email"])
	}
	if ext, _ := claims["ext"].(map[string]any); ext["email"] != "a@example.com" {
		t.Errorf("ext = %v, want the email mirrored", claims["ext"])
	}
	for _, c := range []string{"exp", "iat", "nbf", "jti"} {
		if claims[c] == nil {
			t.Errorf("no %s in %v", c, claims)
		}
	}
	t.Logf("JWT header %v claims %v", header, claims)

	// The signature checks out with the JWKS that discovery names.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disc := getJSON(t, h.DiscoveryURL())
	if disc["issuer"] != h.Issuer() || disc["jwks_uri"] != h.JWKSURI() {
		t.Errorf("discovery issuer, jwks_uri = %v, %v", disc["issuer"], disc["jwks_uri"])
	}
	if _, ok := disc["introspection_endpoint"]; ok {
		t.Logf("discovery names an introspection_endpoint: %v", disc["introspection_endpoint"])
	}
	set, err := jwk.Fetch(ctx, h.JWKSURI())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithIssuer(h.Issuer()), jwt.WithAudience("userphone")); err != nil {
		t.Errorf("verify with the JWKS: %v", err)
	}

	// A JWT introspects like an opaque token; revoked, it is inactive.
	in := h.Introspect(t, raw)
	if in["active"] != true || in["sub"] != "user-1" {
		t.Errorf("introspect = %v", in)
	}
	h.Revoke(t, c, raw)
	if in := h.Introspect(t, raw); in["active"] != false || len(in) != 1 {
		t.Errorf("introspect after revoke = %v, want only active=false", in)
	}
}

func TestOpaqueAccessToken(t *testing.T) {
	t.Parallel()
	h := hydratest.Start(t, hydratest.Opaque())
	c := h.NewClient(t, aud, auth.AllScopes)
	tok := h.TokenWith(t, c, hydratest.TokenRequest{
		Subject: "user-2", Scopes: auth.AllScopes, Audience: aud,
		Claims: map[string]any{"email": "b@example.com", "locale": "de-DE"},
	})
	if strings.Count(tok.AccessToken, ".") == 2 || tok.TokenType != "bearer" {
		t.Errorf("token = %+v, want an opaque bearer token", tok)
	}
	t.Logf("opaque token: %.12s…", tok.AccessToken)
	before := time.Now().Unix()
	in := h.Introspect(t, tok.AccessToken)
	t.Logf("introspection: %v", in)
	if in["active"] != true || in["sub"] != "user-2" || in["client_id"] != c.ID || in["iss"] != h.Issuer() ||
		in["scope"] != strings.Join(auth.AllScopes, " ") || in["token_type"] != "Bearer" || in["token_use"] != "access_token" {
		t.Errorf("introspect = %v", in)
	}
	if got := strs(in["aud"]); !slices.Equal(got, aud) {
		t.Errorf("aud = %#v, want the array %v", in["aud"], aud)
	}
	if exp, _ := in["exp"].(float64); int64(exp) < before+3500 {
		t.Errorf("exp = %v, want an hour from now", in["exp"])
	}
	ext, _ := in["ext"].(map[string]any)
	if ext["email"] != "b@example.com" || ext["locale"] != "de-DE" {
		t.Errorf("ext = %v, want email and locale", in["ext"])
	}
	if _, ok := in["email"]; ok {
		t.Errorf("email at the top level of an introspection answer: %v", in)
	}

	// Introspection needs no client authentication; a token it does not
	// know is active=false, answered 200.
	if in := h.Introspect(t, "ory_at_nonsense.nonsense"); in["active"] != false {
		t.Errorf("introspect nonsense = %v", in)
	}
	h.Revoke(t, c, tok.AccessToken)
	if in := h.Introspect(t, tok.AccessToken); in["active"] != false {
		t.Errorf("introspect after revoke = %v", in)
	}

	// client_credentials: sub is the client.
	cc := h.ClientToken(t, c, auth.AllScopes[:1], aud)
	if in := h.Introspect(t, cc); in["active"] != true || in["sub"] != c.ID {
		t.Errorf("introspect client token = %v", in)
	}
}

func TestDownAndFailing(t *testing.T) {
	t.Parallel()
	h := hydratest.Start(t, hydratest.Opaque())
	c := h.NewClient(t, aud, auth.AllScopes)
	tok := h.Token(t, c, "user-3", "", auth.AllScopes, aud)

	h.FailWith(http.StatusServiceUnavailable)
	resp, err := http.PostForm(h.IntrospectionURL(), url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("introspect while failing: %d, want 503", resp.StatusCode)
	}
	h.FailWith(0)

	h.Down()
	if _, err := http.PostForm(h.IntrospectionURL(), url.Values{"token": {tok}}); err == nil {
		t.Error("introspect while down: no error, want connection refused")
	} else {
		t.Logf("introspect while down: %v", err)
	}
	h.Up(t)
	if in := h.Introspect(t, tok); in["active"] != true {
		t.Errorf("introspect after Up = %v", in)
	}

	// Restart on the in-memory database forgets the token.
	h.Restart(t)
	if in := h.Introspect(t, tok); in["active"] != false {
		t.Errorf("introspect after Restart = %v", in)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	db := testservers.NewTCPProxy(t, "127.0.0.1:5432")
	h := hydratest.Start(t, hydratest.Opaque(), hydratest.Postgres("postgres://postgres@"+db.Addr+"/test?sslmode=disable"))
	c := h.NewClient(t, aud, auth.AllScopes)
	tok := h.Token(t, c, "user-4", "d@example.com", auth.AllScopes, aud)

	// The state survives a restart of Hydra.
	h.Restart(t)
	if in := h.Introspect(t, tok); in["active"] != true {
		t.Errorf("introspect after Restart = %v", in)
	}

	// Without its database Hydra says the token is inactive, with 200.
	db.Cut()
	if in := h.Introspect(t, tok); in["active"] != false {
		t.Errorf("introspect without the database = %v", in)
	}
	db.Restore(t)
	deadline := time.Now().Add(10 * time.Second)
	for h.Introspect(t, tok)["active"] != true {
		if time.Now().After(deadline) {
			t.Fatal("the token is not active again within 10 s of the database's return")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func strs(v any) []string {
	a, ok := v.([]any)
	if !ok {
		return nil
	}
	var s []string
	for _, x := range a {
		str, _ := x.(string)
		s = append(s, str)
	}
	return s
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}
