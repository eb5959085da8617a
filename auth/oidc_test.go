package auth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/auth/authtest"
)

const (
	invalidDetail        = "The bearer token is invalid."
	linkedIdentityDetail = "Linked identity is needed to access this resource, please check why the user does not have a linked identity"
)

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	var lb logBuffer
	return slog.New(slog.NewTextHandler(&lb, &slog.HandlerOptions{Level: slog.LevelDebug})), &lb
}

// wantRejected checks that v refuses raw with an *userphone.Error of code
// whose detail contains detailPart and no piece of the token.
func wantRejected(t *testing.T, v auth.Verifier, raw string, code userphone.ErrorCode, detailPart string) *userphone.Error {
	t.Helper()
	id, err := v.Verify(t.Context(), raw)
	if err == nil {
		t.Fatalf("Verify accepted the token: %+v", id)
	}
	var e *userphone.Error
	if !errors.As(err, &e) || e != err {
		t.Fatalf("Verify error = %T %v, want a *userphone.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("code %s (%q), want %s", e.Code, e.Detail, code)
	}
	if e.Detail == "" || !strings.Contains(e.Detail, detailPart) {
		t.Errorf("detail %q does not contain %q", e.Detail, detailPart)
	}
	if piece := auth.TokenPiece(raw, e.Error()); piece != "" {
		t.Errorf("error %q contains %q from the token", e, piece)
	}
	if id.Subject != "" {
		t.Errorf("identity %+v returned with an error", id)
	}
	return e
}

func wantInvalid(t *testing.T, v auth.Verifier, raw string) {
	t.Helper()
	e := wantRejected(t, v, raw, userphone.CodeUnauthorized, invalidDetail)
	if e.Detail != invalidDetail {
		t.Errorf("detail %q, want exactly %q", e.Detail, invalidDetail)
	}
}

func withLog(log *slog.Logger) func(*auth.OIDCConfig) {
	return func(c *auth.OIDCConfig) { c.Log = log }
}

func TestOIDCValidToken(t *testing.T) {
	for _, alg := range []jwa.SignatureAlgorithm{jwa.RS256(), jwa.PS256(), jwa.ES256(), jwa.EdDSA()} {
		t.Run(alg.String(), func(t *testing.T) {
			iss := authtest.NewIssuer(t, authtest.WithAlg(alg))
			v := iss.Verifier(t)
			if err := v.Ready(); err != nil {
				t.Fatalf("Ready = %v", err)
			}
			raw := iss.Token(t, map[string]any{"sub": "alice", "email": "alice@example.com", "locale": "de-DE"})
			id, err := v.Verify(t.Context(), raw)
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "alice" || id.Email != "alice@example.com" || id.Locale != "de-DE" ||
				!slices.Equal(id.Scopes, auth.AllScopes) || len(id.LinkedIdentities) != 0 {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

func TestOIDCRejections(t *testing.T) {
	iss := authtest.NewIssuer(t)
	log, logs := newLog()
	v := iss.Verifier(t, withLog(log))
	cur := iss.Current()
	var tokens []string
	reject := func(raw string, code userphone.ErrorCode, detail string) {
		t.Helper()
		tokens = append(tokens, raw)
		wantRejected(t, v, raw, code, detail)
	}

	reject("", userphone.CodeUnauthorized, "no bearer token")
	for _, raw := range []string{"garbage", "a.b.c", "Bearer x.y.z", "eyJhbGciOiJSUzI1NiJ9...", strings.Repeat("x", 200)} {
		reject(raw, userphone.CodeUnauthorized, "malformed")
	}

	// Signature-type failures: one generic detail.
	invalid := map[string]string{
		"alg none":               iss.TokenWith(t, nil, authtest.Unsigned()),
		"alg none, no kid":       iss.TokenWith(t, nil, authtest.Unsigned(), authtest.NoKID()),
		"HS256 with PEM":         iss.TokenWith(t, nil, authtest.SignedWith(jwa.HS256(), publicPEM(t, cur))),
		"HS256 with JWK":         iss.TokenWith(t, nil, authtest.SignedWith(jwa.HS256(), publicJWK(t, cur))),
		"HS512 with PEM":         iss.TokenWith(t, nil, authtest.SignedWith(jwa.HS512(), publicPEM(t, cur))),
		"right kid, foreign key": iss.TokenWith(t, nil, authtest.SignedWith(jwa.RS256(), authtest.NewKey(t, jwa.RS256()).Private)),
		"RS512 by the key":       iss.TokenWith(t, nil, authtest.SignedWith(jwa.RS512(), cur.Private)),
		"ES256 on RSA kid":       iss.TokenWith(t, nil, authtest.SignedWith(jwa.ES256(), ecKey(t))),
		"PS256 on RS256 key":     iss.TokenWith(t, nil, authtest.SignedWith(jwa.PS256(), cur.Private)),
		"crit header":            iss.TokenWith(t, nil, authtest.Header("crit", []string{"exp"}), authtest.Header("exp", 1)),
	}
	for name, raw := range invalid {
		t.Run(name, func(t *testing.T) {
			tokens = append(tokens, raw)
			wantInvalid(t, v, raw)
		})
	}

	// Claim failures keep their own details.
	now := time.Now()
	for name, tc := range map[string]struct {
		claims map[string]any
		detail string
	}{
		"expired":        {map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}, "has expired; get a new one."},
		"no exp":         {map[string]any{"exp": nil}, "no expiry"},
		"not yet valid":  {map[string]any{"nbf": now.Add(2 * time.Minute).Unix()}, "not valid yet"},
		"wrong issuer":   {map[string]any{"iss": iss.URL() + "/"}, "wrong issuer"},
		"no issuer":      {map[string]any{"iss": nil}, "wrong issuer"},
		"wrong audience": {map[string]any{"aud": "account"}, "wrong audience"},
		"no audience":    {map[string]any{"aud": nil}, "wrong audience"},
		"no sub":         {map[string]any{"sub": nil}, "no subject"},
		"empty sub":      {map[string]any{"sub": ""}, "no subject"},
	} {
		t.Run(name, func(t *testing.T) {
			raw := iss.Token(t, tc.claims)
			tokens = append(tokens, raw)
			e := wantRejected(t, v, raw, userphone.CodeUnauthorized, tc.detail)
			if strings.Contains(e.Detail, "userphone token") {
				t.Errorf("detail %q points OIDC users at the dev CLI", e.Detail)
			}
		})
	}

	// Within the leeway.
	for _, c := range []map[string]any{
		{"exp": now.Add(-50 * time.Second).Unix()},
		{"nbf": now.Add(50 * time.Second).Unix()},
	} {
		if _, err := v.Verify(t.Context(), iss.Token(t, c)); err != nil {
			t.Errorf("claims %v within 60 s leeway rejected: %v", c, err)
		}
	}

	// The debug log says why, and never quotes a token.
	out := logs.String()
	for _, reason := range []string{"algorithm not allowed", "signature does not verify", "key does not fit the algorithm", "critical header", "expired", "no sub"} {
		if !strings.Contains(out, reason) {
			t.Errorf("debug log lacks reason %q:\n%s", reason, out)
		}
	}
	for _, raw := range tokens {
		if piece := auth.TokenPiece(raw, out); piece != "" {
			t.Errorf("log contains %q from a token", piece)
		}
	}
}

func publicPEM(t *testing.T, k *authtest.Key) []byte {
	t.Helper()
	var pub rsa.PublicKey
	if err := exportPublic(k, &pub); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func publicJWK(t *testing.T, k *authtest.Key) []byte {
	t.Helper()
	b, err := json.Marshal(k.Public)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestOIDCKeyTypeMustFitAlgorithm(t *testing.T) {
	iss := authtest.NewIssuer(t, authtest.WithAlg(jwa.ES256()))
	rsaKey := iss.AddKey(t, jwa.RS256())
	edKey := iss.AddKey(t, jwa.EdDSA())
	v := iss.Verifier(t)
	ec := iss.Current()
	// Real signatures, each by the private key that matches its kid, under
	// an algorithm that does not fit that key.
	wantInvalid(t, v, iss.TokenWith(t, nil, authtest.SignedWith(jwa.ES256(), ecKey(t)), authtest.KID(rsaKey.KID)))
	wantInvalid(t, v, iss.TokenWith(t, nil, authtest.SignedWith(jwa.RS256(), rsaKey.Private), authtest.KID(ec.KID)))
	wantInvalid(t, v, iss.TokenWith(t, nil, authtest.SignedWith(jwa.EdDSA(), edKey.Private), authtest.KID(rsaKey.KID)))
	// And each fits its own.
	for _, k := range []*authtest.Key{ec, rsaKey, edKey} {
		if _, err := v.Verify(t.Context(), iss.TokenWith(t, nil, authtest.SignedBy(k))); err != nil {
			t.Errorf("%s token rejected: %v", k.Alg, err)
		}
	}
}

func TestOIDCTokenWithoutKID(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t, func(c *auth.OIDCConfig) { c.RefreshInterval = 20 * time.Millisecond })
	if _, err := v.Verify(t.Context(), iss.TokenWith(t, nil, authtest.NoKID())); err != nil {
		t.Fatalf("no kid, one key: %v", err)
	}
	iss.AddKey(t, jwa.RS256())
	fetches := iss.JWKSFetches()
	waitFor(t, func() bool { return iss.JWKSFetches() > fetches+1 })
	wantInvalid(t, v, iss.TokenWith(t, nil, authtest.NoKID()))
}

func TestOIDCUnknownKIDRefetchIsRateLimited(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	stranger := authtest.NewKey(t, jwa.RS256())
	raw := iss.TokenWith(t, nil, authtest.SignedBy(stranger))
	before := iss.JWKSFetches()

	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Go(func() { _, errs[i] = v.Verify(t.Context(), raw) })
	}
	wg.Wait()
	for _, err := range errs {
		if e := userphone.AsError(err); e == nil || e.Code != userphone.CodeUnauthorized || e.Detail != invalidDetail {
			t.Fatalf("concurrent Verify = %v, want %q", err, invalidDetail)
		}
	}
	if n := iss.JWKSFetches() - before; n != 1 {
		t.Errorf("50 tokens with an unknown kid caused %d JWKS fetches, want 1", n)
	}
	// Within the gap (default 10 s), no more.
	for range 20 {
		wantInvalid(t, v, raw)
	}
	if n := iss.JWKSFetches() - before; n != 1 {
		t.Errorf("%d JWKS fetches within the refetch gap, want 1", n)
	}
}

func TestOIDCUnknownKIDRefetchAfterGap(t *testing.T) {
	iss := authtest.NewIssuer(t)
	const gap = 300 * time.Millisecond
	v := iss.Verifier(t, func(c *auth.OIDCConfig) { c.UnknownKIDRefetch = gap })
	raw := iss.TokenWith(t, nil, authtest.SignedBy(authtest.NewKey(t, jwa.RS256())))
	before := iss.JWKSFetches()
	start := time.Now()
	deadline := start.Add(3 * gap)
	for time.Now().Before(deadline) {
		wantInvalid(t, v, raw)
		time.Sleep(10 * time.Millisecond)
	}
	n := iss.JWKSFetches() - before
	maxFetches := int(time.Since(start)/gap) + 1
	if n < 2 || n > maxFetches {
		t.Errorf("%d refetches in %v with a %v gap, want 2..%d", n, time.Since(start), gap, maxFetches)
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t, func(c *auth.OIDCConfig) { c.RefreshInterval = 50 * time.Millisecond })
	old := iss.Current()
	oldRaw := iss.Token(t, nil)

	next := iss.Rotate(t)
	if next == old || iss.Current() != next {
		t.Fatal("Rotate did not make a new current key")
	}
	newRaw := iss.Token(t, map[string]any{"sub": "rotated"})
	id, err := v.Verify(t.Context(), newRaw)
	if err != nil {
		t.Fatalf("token of the rotated key rejected: %v", err)
	}
	if id.Subject != "rotated" {
		t.Errorf("subject %q", id.Subject)
	}
	if _, err := v.Verify(t.Context(), oldRaw); err != nil {
		t.Fatalf("token of the old key rejected while it is published: %v", err)
	}

	iss.RemoveKey(old)
	waitFor(t, func() bool {
		_, err := v.Verify(t.Context(), oldRaw)
		return err != nil
	})
	wantInvalid(t, v, oldRaw)
	if _, err := v.Verify(t.Context(), newRaw); err != nil {
		t.Errorf("current key's token rejected after removing the old key: %v", err)
	}
}

func TestOIDCIssuerUnreachableAtStart(t *testing.T) {
	iss := authtest.NewIssuer(t)
	iss.SetDown(true)
	log, logs := newLog()
	cfg := iss.Config()
	cfg.Log = log
	v, err := auth.NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if iss.DiscoveryFetches() != 0 {
		t.Error("NewOIDC did I/O")
	}
	raw := iss.Token(t, nil)
	checkUnavailable := func() {
		t.Helper()
		e := wantRejected(t, v, raw, userphone.CodeServiceUnavailable, "The token issuer's keys are not loaded yet; try again shortly.")
		if e.RetryAfter != 5*time.Second {
			t.Errorf("RetryAfter %v, want 5s", e.RetryAfter)
		}
		if err := v.Ready(); err == nil || !errors.Is(err, userphone.ErrUnavailable) {
			t.Errorf("Ready = %v, want an error wrapping ErrUnavailable", err)
		}
	}
	checkUnavailable() // before Run

	authtest.Start(t, v)
	waitFor(t, func() bool { return iss.DiscoveryFetches() >= 1 && strings.Contains(logs.String(), "level=WARN") })
	checkUnavailable()
	if err := v.Ready(); !strings.Contains(err.Error(), "503") {
		t.Errorf("Ready error %q does not say why", err)
	}

	iss.SetDown(false)
	authtest.WaitReady(t, v, 5*time.Second)
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatalf("after the issuer came up: %v", err)
	}
}

func TestOIDCDiscoveryIssuerMismatch(t *testing.T) {
	iss := authtest.NewIssuer(t)
	iss.SetDiscoveryIssuer("https://evil.example.com/realms/test")
	log, logs := newLog()
	cfg := iss.Config()
	cfg.Log = log
	v, err := auth.NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	authtest.Start(t, v)
	waitFor(t, func() bool { return strings.Contains(logs.String(), "level=ERROR") })
	out := logs.String()
	if !strings.Contains(out, "another issuer") || !strings.Contains(out, "evil.example.com") {
		t.Errorf("log does not explain the mismatch:\n%s", out)
	}
	if iss.JWKSFetches() != 0 {
		t.Error("keys fetched from a discovery document for another issuer")
	}
	if err := v.Ready(); err == nil || !errors.Is(err, userphone.ErrUnavailable) {
		t.Errorf("Ready = %v", err)
	}
	wantRejected(t, v, iss.Token(t, nil), userphone.CodeServiceUnavailable, "not loaded")
}

func TestOIDCScopes(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	for name, tc := range map[string]struct {
		claims map[string]any
		want   []string
	}{
		"scope string": {map[string]any{"scope": "openid " + auth.ScopeCheck}, []string{"openid", auth.ScopeCheck}},
		"scp array":    {map[string]any{"scope": nil, "scp": []string{auth.ScopeUpdate}}, []string{auth.ScopeUpdate}},
		"both":         {map[string]any{"scope": auth.ScopeCheck, "scp": []string{auth.ScopeUpdate, auth.ScopeCheck}}, []string{auth.ScopeCheck, auth.ScopeUpdate}},
		"none":         {map[string]any{"scope": nil}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			id, err := v.Verify(t.Context(), iss.Token(t, tc.claims))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(id.Scopes, tc.want) {
				t.Errorf("scopes %v, want %v", id.Scopes, tc.want)
			}
		})
	}
}

func TestOIDCLinkedIdentity(t *testing.T) {
	iss := authtest.NewIssuer(t)
	required := iss.Verifier(t, func(c *auth.OIDCConfig) { c.RequiredLinkedIdentity = "fleet" })
	notRequired := iss.Verifier(t)
	otherClaim := iss.Verifier(t, func(c *auth.OIDCConfig) {
		c.RequiredLinkedIdentity, c.LinkedIdentityClaim = "fleet", "federated"
	})

	missing := iss.Token(t, nil)
	e := wantRejected(t, required, missing, userphone.CodeMissingLinkedIdentity, linkedIdentityDetail)
	if e.Detail != linkedIdentityDetail {
		t.Errorf("detail %q, want PACE's %q", e.Detail, linkedIdentityDetail)
	}
	wantRejected(t, required, iss.Token(t, map[string]any{"linked_identities": []string{"other"}}),
		userphone.CodeMissingLinkedIdentity, linkedIdentityDetail)
	if _, err := notRequired.Verify(t.Context(), missing); err != nil {
		t.Errorf("not required, yet rejected: %v", err)
	}
	// An invalid token is unauthorized, not missing a linked identity.
	wantInvalid(t, required, iss.TokenWith(t, nil, authtest.Unsigned()))

	for name, tc := range map[string]struct {
		v     auth.Verifier
		claim map[string]any
		want  []string
	}{
		"string":       {required, map[string]any{"linked_identities": "fleet"}, []string{"fleet"}},
		"array":        {required, map[string]any{"linked_identities": []string{"other", "fleet"}}, []string{"other", "fleet"}},
		"not required": {notRequired, map[string]any{"linked_identities": []string{"other"}}, []string{"other"}},
		"other claim":  {otherClaim, map[string]any{"federated": []any{"fleet"}}, []string{"fleet"}},
	} {
		t.Run(name, func(t *testing.T) {
			id, err := tc.v.Verify(t.Context(), iss.Token(t, tc.claim))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(id.LinkedIdentities, tc.want) {
				t.Errorf("LinkedIdentities %v, want %v", id.LinkedIdentities, tc.want)
			}
		})
	}
}

func TestOIDCLocale(t *testing.T) {
	iss := authtest.NewIssuer(t)
	v := iss.Verifier(t)
	for _, tc := range []struct {
		claims map[string]any
		want   string
	}{
		{map[string]any{"preferred_language": "fr"}, "fr"},
		{map[string]any{"preferred_language": "fr", "locale": "de"}, "de"},
		{nil, ""},
	} {
		id, err := v.Verify(t.Context(), iss.Token(t, tc.claims))
		if err != nil {
			t.Fatal(err)
		}
		if id.Locale != tc.want {
			t.Errorf("claims %v: locale %q, want %q", tc.claims, id.Locale, tc.want)
		}
	}
}

func TestNewOIDCValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]auth.OIDCConfig{
		"no issuer":        {Policy: auth.Policy{Audience: "userphone"}},
		"no audience":      {Policy: auth.Policy{Issuer: "https://id.example.com"}},
		"relative issuer":  {Policy: auth.Policy{Issuer: "id.example.com", Audience: "userphone"}},
		"issuer query":     {Policy: auth.Policy{Issuer: "https://id.example.com?x=1", Audience: "userphone"}},
		"ftp issuer":       {Policy: auth.Policy{Issuer: "ftp://id.example.com", Audience: "userphone"}},
		"negative refresh": {Policy: auth.Policy{Issuer: "https://id.example.com", Audience: "userphone"}, RefreshInterval: -1},
	} {
		if _, err := auth.NewOIDC(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := auth.NewOIDC(auth.OIDCConfig{Policy: auth.Policy{Issuer: "https://id.example.com/realms/pace", Audience: "userphone"}}); err != nil {
		t.Error(err)
	}
}

// An issuer that answers, but badly: each answer keeps the keys unloaded.
func TestOIDCBoundedFetch(t *testing.T) {
	for name, tc := range map[string]struct {
		contentType string
		status      int
		body        func(srvURL string) []byte
	}{
		"not JSON":  {"text/html", 200, func(string) []byte { return []byte(`{"keys":[]}`) }},
		"not 200":   {"application/json", 404, func(string) []byte { return []byte(`{}`) }},
		"too large": {"application/json", 200, func(string) []byte { return append([]byte(`{"keys":[`), bytes.Repeat([]byte(" "), 2<<20)...) }},
		"no keys":   {"application/json", 200, func(string) []byte { return []byte(`{"keys":[]}`) }},
		"hmac key": {"application/json", 200, func(string) []byte {
			return []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)
		}},
	} {
		t.Run(name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
					w.Header().Set("Content-Type", "application/json")
					_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/certs"})
					return
				}
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = w.Write(tc.body(srv.URL))
			}))
			defer srv.Close()
			log, logs := newLog()
			v, err := auth.NewOIDC(auth.OIDCConfig{Policy: auth.Policy{Issuer: srv.URL, Audience: "userphone"}, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { defer close(done); v.Run(ctx) }()
			waitFor(t, func() bool { return strings.Contains(logs.String(), "level=WARN") })
			cancel()
			<-done
			if err := v.Ready(); err == nil {
				t.Fatal("ready")
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exportPublic(k *authtest.Key, dst any) error { return jwk.Export(k.Public, dst) }
