package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/pace/userphone"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func newKeys(t *testing.T) *DevKeys {
	t.Helper()
	k, err := LoadOrCreateDevKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// claims returns the claims Mint would set, for tests that need to break
// one of them.
func claims() map[string]any {
	return map[string]any{
		"iss": DevIssuer,
		"aud": []string{DevAudience},
		"sub": "user-1",
		"iat": t0.Unix(),
		"nbf": t0.Unix(),
		"exp": t0.Add(time.Hour).Unix(),
	}
}

func sign(t *testing.T, c map[string]any, alg jwa.SignatureAlgorithm, key any) string {
	t.Helper()
	tok := jwt.New()
	for name, v := range c {
		if err := tok.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantUnauthorized(t *testing.T, v Verifier, raw, detailPart string) {
	t.Helper()
	id, err := v.Verify(t.Context(), raw)
	if err == nil {
		t.Fatalf("Verify accepted the token: %+v", id)
	}
	e := userphone.AsError(err)
	if e == nil || e.Code != userphone.CodeUnauthorized {
		t.Fatalf("Verify error = %v, want *userphone.Error with %s", err, userphone.CodeUnauthorized)
	}
	if e.Detail == "" {
		t.Fatal("empty detail")
	}
	if !strings.Contains(e.Detail, detailPart) {
		t.Errorf("detail %q does not contain %q", e.Detail, detailPart)
	}
	for _, part := range append(strings.Split(raw, "."), raw) {
		if len(part) >= 4 && strings.Contains(err.Error(), part) {
			t.Errorf("error %q contains part of the token", err)
		}
	}
	if piece := TokenPiece(raw, err.Error()); piece != "" {
		t.Errorf("error %q contains %q from the token", err, piece)
	}
}

// invalidDetail is the one detail of every signature-type failure.
const invalidDetail = "The bearer token is invalid."

// TokenPiece returns an 8-character piece of raw that s contains, or "":
// the check that an error or log line quotes no token. It is exported to
// the external tests (oidc_test.go), which cannot take it from authtest:
// authtest imports auth, so these internal tests cannot import authtest.
func TokenPiece(raw, s string) string {
	for i := 0; i+8 <= len(raw); i++ {
		if strings.Contains(s, raw[i:i+8]) {
			return raw[i : i+8]
		}
	}
	return ""
}

func TestMintVerifyRoundTrip(t *testing.T) {
	k := newKeys(t)
	want := userphone.Identity{Subject: "user-1", Email: "a@example.com", Locale: "de-DE", Scopes: AllScopes}
	raw, err := k.Mint(want, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Verifier(Policy{}, nil, at(t0.Add(time.Minute))).Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != want.Subject || got.Email != want.Email || got.Locale != want.Locale || !slices.Equal(got.Scopes, want.Scopes) {
		t.Errorf("Verify = %+v, want %+v", got, want)
	}
	if !HasScope(got, ScopeCheck) || HasScope(got, "other") {
		t.Errorf("HasScope wrong for %v", got.Scopes)
	}

	tok, err := jwt.ParseInsecure([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	jti, _ := tok.JwtID()
	nbf, _ := tok.NotBefore()
	iat, _ := tok.IssuedAt()
	if jti == "" || !nbf.Equal(t0) || !iat.Equal(t0) {
		t.Errorf("jti %q, nbf %v, iat %v", jti, nbf, iat)
	}
}

func TestMintOmitsEmptyOptionalClaims(t *testing.T) {
	k := newKeys(t)
	raw, err := k.Mint(userphone.Identity{Subject: "user-1"}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Verifier(Policy{}, nil, at(t0)).Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "" || got.Locale != "" || len(got.Scopes) != 0 {
		t.Errorf("Verify = %+v, want only a subject", got)
	}
}

func TestKeyFileCreatedAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadOrCreateDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dev-signing-key.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", di.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if kid, ok := key.KeyID(); !ok || kid == "" {
		t.Error("key file has no kid")
	}
	if priv, err := jwk.IsPrivateKey(key); err != nil || !priv {
		t.Errorf("key file is not a private key (%v)", err)
	}

	k2, err := LoadOrCreateDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := k1.Mint(userphone.Identity{Subject: "user-1"}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Verifier(Policy{}, nil, at(t0)).Verify(t.Context(), raw); err != nil {
		t.Errorf("token from first load rejected by second: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file", len(entries))
	}
}

func TestConcurrentCreateAgrees(t *testing.T) {
	dir := t.TempDir()
	keys := make([]*DevKeys, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadOrCreateDevKeys(dir)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	raw, err := keys[0].Mint(userphone.Identity{Subject: "user-1"}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if _, err := k.Verifier(Policy{}, nil, at(t0)).Verify(t.Context(), raw); err != nil {
			t.Errorf("keys[%d] rejects a token of keys[0]: %v", i, err)
		}
	}
}

func TestCorruptKeyFile(t *testing.T) {
	for name, content := range map[string]string{
		"not json":   "{not json",
		"public key": publicJWK(t),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "dev-signing-key.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateDevKeys(dir)
			if err == nil {
				t.Fatal("corrupt key file accepted")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete") {
				t.Errorf("error %q should name the file and say to delete it", err)
			}
		})
	}
}

func publicJWK(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, "k"); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTimeChecks(t *testing.T) {
	k := newKeys(t)
	raw, err := k.Mint(userphone.Identity{Subject: "user-1"}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(time.Hour)
	for _, now := range []time.Time{t0.Add(-59 * time.Second), exp.Add(59 * time.Second)} {
		if _, err := k.Verifier(Policy{}, nil, at(now)).Verify(t.Context(), raw); err != nil {
			t.Errorf("at %v (within leeway): %v", now, err)
		}
	}
	wantUnauthorized(t, k.Verifier(Policy{}, nil, at(exp.Add(61*time.Second))), raw, "expired")
	wantUnauthorized(t, k.Verifier(Policy{}, nil, at(t0.Add(-61*time.Second))), raw, "not valid yet")
}

func TestClaimChecks(t *testing.T) {
	k := newKeys(t)
	v := k.Verifier(Policy{}, nil, at(t0))
	for name, tc := range map[string]struct {
		change func(map[string]any)
		detail string
	}{
		"wrong issuer":   {func(c map[string]any) { c["iss"] = "someone-else" }, "issuer"},
		"no issuer":      {func(c map[string]any) { delete(c, "iss") }, "issuer"},
		"wrong audience": {func(c map[string]any) { c["aud"] = []string{"other"} }, "audience"},
		"no audience":    {func(c map[string]any) { delete(c, "aud") }, "audience"},
		"no sub":         {func(c map[string]any) { delete(c, "sub") }, "subject"},
		"empty sub":      {func(c map[string]any) { c["sub"] = "" }, "subject"},
		"no exp":         {func(c map[string]any) { delete(c, "exp") }, "expiry"},
	} {
		t.Run(name, func(t *testing.T) {
			c := claims()
			tc.change(c)
			wantUnauthorized(t, v, sign(t, c, jwa.EdDSA(), k.private), tc.detail)
		})
	}
}

// A payload the library cannot read as claims, though correctly signed.
func TestSignedButMalformedPayload(t *testing.T) {
	k := newKeys(t)
	var priv ed25519.PrivateKey
	if err := jwk.Export(k.private, &priv); err != nil {
		t.Fatal(err)
	}
	kid, _ := k.private.KeyID()
	input := b64(`{"alg":"EdDSA","typ":"JWT","kid":"`+kid+`"}`) + "." +
		b64(`{"iss":"userphone-dev","aud":["userphone"],"sub":"user-1","exp":"tomorrow"}`)
	raw := input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input)))
	wantUnauthorized(t, k.Verifier(Policy{}, nil, at(t0)), raw, "malformed")
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestForeignAndUnsafeSignatures(t *testing.T) {
	k := newKeys(t)
	v := k.Verifier(Policy{}, nil, at(t0))

	other := newKeys(t)
	wantUnauthorized(t, v, sign(t, claims(), jwa.EdDSA(), other.private), invalidDetail)

	// Another key given this key's kid must not pass either.
	otherRaw, _ := other.private.Clone()
	kid, _ := k.private.KeyID()
	if err := otherRaw.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	wantUnauthorized(t, v, sign(t, claims(), jwa.EdDSA(), otherRaw), invalidDetail)

	payload := b64(`{"iss":"userphone-dev","aud":["userphone"],"sub":"user-1","exp":` + strconv.FormatInt(t0.Add(time.Hour).Unix(), 10) + `}`)
	wantUnauthorized(t, v, b64(`{"alg":"none","typ":"JWT"}`)+"."+payload+".", invalidDetail)
	wantUnauthorized(t, v, b64(`{"typ":"JWT"}`)+"."+payload+".", "malformed")

	// HS256 keyed with the public key is the classic algorithm confusion.
	var pub ed25519.PublicKey
	pk, _ := k.public.Key(0)
	if err := jwk.Export(pk, &pub); err != nil {
		t.Fatal(err)
	}
	wantUnauthorized(t, v, sign(t, claims(), jwa.HS256(), []byte(pub)), invalidDetail)
	wantUnauthorized(t, v, sign(t, claims(), jwa.HS256(), []byte("any secret at all")), invalidDetail)

	// An allowed algorithm that is not the dev key's own.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wantUnauthorized(t, v, sign(t, claims(), jwa.ES256(), ecKey), invalidDetail)
}

func TestMalformedAndEmpty(t *testing.T) {
	v := newKeys(t).Verifier(Policy{}, nil, at(t0))
	wantUnauthorized(t, v, "", "no bearer token")
	for _, raw := range []string{"garbage", "a.b.c", "Bearer x.y.z", "eyJhbGciOiJFZERTQSJ9..."} {
		wantUnauthorized(t, v, raw, "")
	}
}

func TestScpArray(t *testing.T) {
	k := newKeys(t)
	c := claims()
	c["scp"] = []string{ScopeCheck, "extra"}
	c["scope"] = ScopeUpdate + " " + ScopeCheck
	c["email"] = 42 // not a string: ignored
	id, err := k.Verifier(Policy{}, nil, at(t0)).Verify(t.Context(), sign(t, c, jwa.EdDSA(), k.private))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ScopeUpdate, ScopeCheck, "extra"}
	if !slices.Equal(id.Scopes, want) {
		t.Errorf("scopes %v, want %v", id.Scopes, want)
	}
	if id.Email != "" {
		t.Errorf("email %q from a non-string claim", id.Email)
	}

	delete(c, "scope")
	id, err = k.Verifier(Policy{}, nil, at(t0)).Verify(t.Context(), sign(t, c, jwa.EdDSA(), k.private))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Scopes, []string{ScopeCheck, "extra"}) {
		t.Errorf("scopes %v from scp alone", id.Scopes)
	}
}

func TestDevLinkedIdentity(t *testing.T) {
	k := newKeys(t)
	required := Policy{RequiredLinkedIdentity: "fleet"}

	raw, err := k.Mint(userphone.Identity{Subject: "user-1"}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.Verifier(required, nil, at(t0)).Verify(t.Context(), raw)
	e := userphone.AsError(err)
	if e == nil || e.Code != userphone.CodeMissingLinkedIdentity ||
		e.Detail != "Linked identity is needed to access this resource, please check why the user does not have a linked identity" {
		t.Fatalf("Verify without linked identity = %v", err)
	}
	if _, err := k.Verifier(Policy{}, nil, at(t0)).Verify(t.Context(), raw); err != nil {
		t.Errorf("not required, yet rejected: %v", err)
	}

	raw, err = k.Mint(userphone.Identity{Subject: "user-1", LinkedIdentities: []string{"other", "fleet"}}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseInsecure([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	var claim any
	if err := tok.Get("linked_identities", &claim); err != nil {
		t.Fatalf("Mint wrote no linked_identities claim: %v", err)
	}
	if _, ok := claim.([]any); !ok {
		t.Errorf("linked_identities claim is %T, want an array", claim)
	}
	id, err := k.Verifier(required, nil, at(t0)).Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.LinkedIdentities, []string{"other", "fleet"}) {
		t.Errorf("LinkedIdentities = %v", id.LinkedIdentities)
	}

	// The policy's issuer and audience do not apply to dev tokens.
	odd := Policy{Issuer: "https://elsewhere", Audience: "other", RequiredLinkedIdentity: "fleet"}
	if _, err := k.Verifier(odd, nil, at(t0)).Verify(t.Context(), raw); err != nil {
		t.Errorf("dev verifier used the policy's issuer or audience: %v", err)
	}

	// Another claim name, holding a single string.
	c := claims()
	c["idps"] = "fleet"
	custom := Policy{RequiredLinkedIdentity: "fleet", LinkedIdentityClaim: "idps"}
	id, err = k.Verifier(custom, nil, at(t0)).Verify(t.Context(), sign(t, c, jwa.EdDSA(), k.private))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.LinkedIdentities, []string{"fleet"}) {
		t.Errorf("LinkedIdentities = %v", id.LinkedIdentities)
	}
}

func TestLocaleFallback(t *testing.T) {
	k := newKeys(t)
	v := k.Verifier(Policy{}, nil, at(t0))
	c := claims()
	c["preferred_language"] = "fr"
	id, err := v.Verify(t.Context(), sign(t, c, jwa.EdDSA(), k.private))
	if err != nil {
		t.Fatal(err)
	}
	if id.Locale != "fr" {
		t.Errorf("locale %q, want preferred_language fr", id.Locale)
	}
	c["locale"] = "de-DE"
	id, err = v.Verify(t.Context(), sign(t, c, jwa.EdDSA(), k.private))
	if err != nil {
		t.Fatal(err)
	}
	if id.Locale != "de-DE" {
		t.Errorf("locale %q, want locale claim de-DE over preferred_language", id.Locale)
	}
}

// email_verified: present and false (a JSON false, or the string "false"
// some providers send) marks the e-mail unverified; absent, true or
// anything else leaves it as before.
func TestEmailVerifiedClaim(t *testing.T) {
	k := newKeys(t)
	v := k.Verifier(Policy{}, nil, at(t0))
	for _, tc := range []struct {
		claim      any
		unverified bool
	}{{nil, false}, {true, false}, {false, true}, {"false", true}, {"FALSE", true}, {"true", false}, {0, false}} {
		c := claims()
		c["email"] = "a@example.com"
		if tc.claim != nil {
			c["email_verified"] = tc.claim
		}
		id, err := v.Verify(t.Context(), sign(t, c, jwa.EdDSA(), k.private))
		if err != nil {
			t.Fatal(err)
		}
		if id.EmailUnverified != tc.unverified || id.Email != "a@example.com" {
			t.Errorf("email_verified %v: EmailUnverified %v, Email %q; want %v", tc.claim, id.EmailUnverified, id.Email, tc.unverified)
		}
	}
	raw, err := k.Mint(userphone.Identity{Subject: "u", Email: "a@example.com", EmailUnverified: true}, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := v.Verify(t.Context(), raw); err != nil || !id.EmailUnverified {
		t.Errorf("a minted unverified e-mail: %+v, %v", id, err)
	}
}
