// Package authtest runs a real OIDC issuer on httptest for tests and
// benchmarks: discovery document, JWKS, keys to rotate, and tokens signed
// with real keys, including deliberately bad ones.
//
//	iss := authtest.NewIssuer(t)
//	v := iss.Verifier(t)                 // *auth.OIDC, running and ready
//	raw := iss.Token(t, map[string]any{"sub": "alice", "email": "a@example.com"})
//	id, err := v.Verify(ctx, raw)
package authtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/pace/userphone/auth"
)

// Audience is the aud of tokens from Token, and the audience of Config.
const Audience = "userphone"

// Subject is the sub of tokens from Token unless the claims say otherwise.
const Subject = "user-1"

// Realm is the path of the issuer under the server's URL, as in Keycloak.
const Realm = "/realms/test"

// Key is a signing key of the issuer.
type Key struct {
	Alg     jwa.SignatureAlgorithm
	KID     string
	Private jwk.Key // with kid and alg
	Public  jwk.Key // with kid, alg and use "sig"; what the JWKS publishes
	raw     any     // the private key as crypto type, for signing
}

// NewKey generates a key for alg (RS256 and PS256: RSA 2048; ES256: P-256;
// EdDSA: Ed25519) with a thumbprint kid. It is not published anywhere.
func NewKey(t testing.TB, alg jwa.SignatureAlgorithm) *Key {
	t.Helper()
	var raw any
	var err error
	switch alg.String() {
	case jwa.RS256().String(), jwa.PS256().String():
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256().String():
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.EdDSA().String():
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("authtest: no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	priv, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := jwk.AssignKeyID(priv); err != nil {
		t.Fatal(err)
	}
	must(t, priv.Set(jwk.AlgorithmKey, alg))
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	must(t, pub.Set(jwk.KeyUsageKey, "sig"))
	kid, _ := priv.KeyID()
	return &Key{Alg: alg, KID: kid, Private: priv, Public: pub, raw: raw}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Issuer is an OIDC issuer served by httptest. Its methods are safe for
// concurrent use.
type Issuer struct {
	srv    *httptest.Server
	issuer string

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64

	mu              sync.Mutex
	published       []*Key
	current         *Key
	down            bool
	discoveryIssuer string
}

// IssuerOption changes NewIssuer's defaults.
type IssuerOption func(*issuerOptions)

type issuerOptions struct {
	alg jwa.SignatureAlgorithm
}

// WithAlg makes the issuer's first key one for alg instead of RS256.
func WithAlg(alg jwa.SignatureAlgorithm) IssuerOption {
	return func(o *issuerOptions) { o.alg = alg }
}

// NewIssuer starts an issuer with one published RS256 key (see WithAlg),
// closed when the test ends. Its issuer identifier is URL().
func NewIssuer(t testing.TB, opts ...IssuerOption) *Issuer {
	t.Helper()
	o := issuerOptions{alg: jwa.RS256()}
	for _, opt := range opts {
		opt(&o)
	}
	iss := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Realm+"/.well-known/openid-configuration", iss.serveDiscovery)
	mux.HandleFunc("GET "+Realm+"/protocol/openid-connect/certs", iss.serveJWKS)
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	iss.issuer = iss.srv.URL + Realm
	k := NewKey(t, o.alg)
	iss.published = []*Key{k}
	iss.current = k
	return iss
}

// URL is the issuer identifier: the iss of its tokens and the Issuer to
// configure.
func (i *Issuer) URL() string { return i.issuer }

// JWKSURI is where the issuer publishes its keys.
func (i *Issuer) JWKSURI() string { return i.issuer + "/protocol/openid-connect/certs" }

// Client returns an HTTP client for the issuer's server.
func (i *Issuer) Client() *http.Client { return i.srv.Client() }

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	i.discoveryFetches.Add(1)
	i.mu.Lock()
	down, name := i.down, i.discoveryIssuer
	i.mu.Unlock()
	if down {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	if name == "" {
		name = i.issuer
	}
	writeJSON(w, map[string]any{
		"issuer":                                name,
		"jwks_uri":                              i.JWKSURI(),
		"authorization_endpoint":                i.issuer + "/protocol/openid-connect/auth",
		"token_endpoint":                        i.issuer + "/protocol/openid-connect/token",
		"id_token_signing_alg_values_supported": []string{"RS256", "PS256", "ES256", "EdDSA"},
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	i.jwksFetches.Add(1)
	i.mu.Lock()
	down := i.down
	set := jwk.NewSet()
	for _, k := range i.published {
		_ = set.AddKey(k.Public)
	}
	i.mu.Unlock()
	if down {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// JWKSFetches counts the requests for the JWKS so far, including those
// answered 503 while down.
func (i *Issuer) JWKSFetches() int { return int(i.jwksFetches.Load()) }

// DiscoveryFetches counts the requests for the discovery document so far.
func (i *Issuer) DiscoveryFetches() int { return int(i.discoveryFetches.Load()) }

// SetDown makes the issuer answer every request with 503 (true) or serve
// again (false).
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// SetDiscoveryIssuer makes the discovery document name issuer instead of
// URL(); "" restores the truth.
func (i *Issuer) SetDiscoveryIssuer(issuer string) {
	i.mu.Lock()
	i.discoveryIssuer = issuer
	i.mu.Unlock()
}

// Current is the key Token signs with.
func (i *Issuer) Current() *Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current
}

// Keys are the published keys.
func (i *Issuer) Keys() []*Key {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]*Key(nil), i.published...)
}

// AddKey generates a key for alg and publishes it without making it
// current.
func (i *Issuer) AddKey(t testing.TB, alg jwa.SignatureAlgorithm) *Key {
	t.Helper()
	k := NewKey(t, alg)
	i.mu.Lock()
	i.published = append(i.published, k)
	i.mu.Unlock()
	return k
}

// Rotate publishes a new key of the current key's algorithm and makes it
// current; the old key stays published until RemoveKey.
func (i *Issuer) Rotate(t testing.TB) *Key {
	t.Helper()
	k := i.AddKey(t, i.Current().Alg)
	i.mu.Lock()
	i.current = k
	i.mu.Unlock()
	return k
}

// RemoveKey stops publishing k. If k was current, the newest remaining
// key becomes current.
func (i *Issuer) RemoveKey(k *Key) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n, p := range i.published {
		if p == k {
			i.published = append(i.published[:n:n], i.published[n+1:]...)
			break
		}
	}
	if i.current == k && len(i.published) > 0 {
		i.current = i.published[len(i.published)-1]
	}
}

// Claims returns the claims Token sets by default: iss, aud, sub, iat,
// exp (in an hour) and a scope with both of the service's scopes.
func (i *Issuer) Claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   i.issuer,
		"aud":   []string{Audience},
		"sub":   Subject,
		"iat":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"scope": strings.Join(auth.AllScopes, " "),
	}
}

// Token signs the default claims (see Claims), changed by claims, with the
// current key. A claim given as nil is left out.
func (i *Issuer) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	return i.TokenWith(t, claims)
}

// TokenOption changes how TokenWith signs.
type TokenOption func(*tokenSpec)

type tokenSpec struct {
	alg      jwa.SignatureAlgorithm
	key      any // raw private key or []byte secret
	kid      string
	noKID    bool
	unsigned bool
	headers  map[string]any
}

// SignedBy signs with k (its alg and kid) instead of the current key.
func SignedBy(k *Key) TokenOption {
	return func(s *tokenSpec) { s.alg, s.key, s.kid = k.Alg, k.raw, k.KID }
}

// SignedWith signs with alg and key: a crypto private key, a jwk.Key, or
// a []byte secret for HS256. The kid stays that of the current key unless
// KID or NoKID says otherwise.
func SignedWith(alg jwa.SignatureAlgorithm, key any) TokenOption {
	return func(s *tokenSpec) { s.alg, s.key = alg, key }
}

// KID puts kid in the header.
func KID(kid string) TokenOption {
	return func(s *tokenSpec) { s.kid, s.noKID = kid, false }
}

// NoKID leaves the kid out of the header.
func NoKID() TokenOption {
	return func(s *tokenSpec) { s.noKID = true }
}

// Header adds a protected header.
func Header(name string, value any) TokenOption {
	return func(s *tokenSpec) {
		if s.headers == nil {
			s.headers = map[string]any{}
		}
		s.headers[name] = value
	}
}

// Unsigned makes an "alg":"none" token with an empty signature.
func Unsigned() TokenOption {
	return func(s *tokenSpec) { s.unsigned = true }
}

// TokenWith is Token with options for odd headers and keys.
func (i *Issuer) TokenWith(t testing.TB, claims map[string]any, opts ...TokenOption) string {
	t.Helper()
	c := i.Claims()
	for name, v := range claims {
		if v == nil {
			delete(c, name)
		} else {
			c[name] = v
		}
	}
	cur := i.Current()
	spec := tokenSpec{alg: cur.Alg, key: cur.raw, kid: cur.KID}
	for _, opt := range opts {
		opt(&spec)
	}
	if spec.unsigned {
		hdr := map[string]any{"alg": "none", "typ": "JWT"}
		if !spec.noKID && spec.kid != "" {
			hdr["kid"] = spec.kid
		}
		for k, v := range spec.headers {
			hdr[k] = v
		}
		return b64JSON(t, hdr) + "." + b64JSON(t, c) + "."
	}

	tok := jwt.New()
	for name, v := range c {
		must(t, tok.Set(name, v))
	}
	hdrs := jws.NewHeaders()
	if !spec.noKID && spec.kid != "" {
		must(t, hdrs.Set(jws.KeyIDKey, spec.kid))
	}
	for k, v := range spec.headers {
		must(t, hdrs.Set(k, v))
	}
	key := spec.key
	if jk, ok := key.(jwk.Key); ok {
		var raw any
		must(t, jwk.Export(jk, &raw))
		key = raw
	}
	b, err := jwt.Sign(tok, jwt.WithKey(spec.alg, key, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatalf("authtest: sign: %v", err)
	}
	return string(b)
}

func b64JSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Config is an OIDC configuration for this issuer: its URL, Audience, and
// a client for its server.
func (i *Issuer) Config() auth.OIDCConfig {
	return auth.OIDCConfig{
		Policy:     auth.Policy{Issuer: i.issuer, Audience: Audience},
		HTTPClient: i.Client(),
	}
}

// Verifier returns a verifier for this issuer (Config, changed by mods),
// running until the test ends, once its keys are loaded.
func (i *Issuer) Verifier(t testing.TB, mods ...func(*auth.OIDCConfig)) *auth.OIDC {
	t.Helper()
	cfg := i.Config()
	for _, m := range mods {
		m(&cfg)
	}
	o, err := auth.NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	Start(t, o)
	WaitReady(t, o, 10*time.Second)
	return o
}

// Start runs o.Run until the test ends; cleanup waits for Run to return.
func Start(t testing.TB, o *auth.OIDC) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// WaitReady fails the test unless o is ready within d.
func WaitReady(t testing.TB, o *auth.OIDC, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for o.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("authtest: verifier not ready after %v: %v", d, o.Ready())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
