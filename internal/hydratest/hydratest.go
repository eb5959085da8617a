// Package hydratest runs Ory Hydra (v2.3.0), a real OAuth2/OIDC server, for
// tests: it starts `hydra serve all` on free loopback ports with an
// in-memory database, creates clients through the admin API, and mints
// access tokens for a user by running the authorization-code flow
// programmatically (Hydra's login and consent requests are accepted through
// the admin API). Access tokens are JWTs or opaque, as the server's
// strategy says.
//
//	h := hydratest.Start(t)                             // JWT access tokens
//	c := h.NewClient(t, []string{"userphone"}, auth.AllScopes)
//	tok := h.Token(t, c, "user-1", "a@example.com", auth.AllScopes, []string{"userphone"})
//	// h.Issuer(), h.JWKSURI(), h.IntrospectionURL(), h.Down(), h.Up(), ...
//
//	o := hydratest.Start(t, hydratest.Opaque())          // opaque access tokens
//
// Hydra is the binary that scripts/hydra/install.sh builds; where it is
// missing the test skips, or fails under USERPHONE_TEST_STRICT=1.
//
// Both Hydra ports are reached through fronts of this package, so that a
// test can make the issuer refuse connections (Down, Up) or answer every
// request with an error status (FailWith) while Hydra keeps its state; Stop
// and Restart end and start the Hydra process itself, which on the default
// in-memory database loses every client, token and key.
package hydratest

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for Postgres's schema

	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/store/storetest"
)

// Version is the Hydra version that scripts/hydra/install.sh builds.
const Version = "v2.3.0"

// BinaryEnv names the variable that overrides where the Hydra binary is.
const BinaryEnv = "USERPHONE_TEST_HYDRA"

// RedirectURI is the redirect URI of every client; nothing listens there,
// the code is read from Hydra's redirect.
const RedirectURI = "http://127.0.0.1:1/callback"

// Strategy is Hydra's access-token strategy (strategies.access_token).
type Strategy string

const (
	StrategyJWT    Strategy = "jwt"    // signed RS256 JWTs, verifiable with the JWKS
	StrategyOpaque Strategy = "opaque" // random strings, to introspect
)

// Binary returns the path of the Hydra binary: $USERPHONE_TEST_HYDRA, or
// $(go env GOPATH)/bin/hydra-v2.3.0 as scripts/hydra/install.sh builds it.
// It returns an error if there is no executable file there.
func Binary() (string, error) {
	return testenv.ToolBinary(BinaryEnv, "hydra-"+Version, "scripts/hydra/install.sh")
}

// Option changes Start's defaults.
type Option func(*options)

type options struct {
	strategy  Strategy
	claims    []string
	accessTTL time.Duration
	dsn       string
	postgres  bool
	pgBase    string
	set       map[string]any
}

// WithStrategy chooses the access-token strategy; the default is
// StrategyJWT.
func WithStrategy(s Strategy) Option { return func(o *options) { o.strategy = s } }

// Opaque is WithStrategy(StrategyOpaque).
func Opaque() Option { return WithStrategy(StrategyOpaque) }

// TopLevelClaims names the claims of the consent session's access_token
// part that a JWT access token carries at the top level
// (oauth2.allowed_top_level_claims). The default is email and locale. For
// every strategy they are also under "ext", in the JWT and in the
// introspection answer.
func TopLevelClaims(names ...string) Option {
	return func(o *options) { o.claims = names }
}

// AccessTokenTTL sets how long access tokens live (ttl.access_token); the
// default is an hour.
func AccessTokenTTL(d time.Duration) Option { return func(o *options) { o.accessTTL = d } }

// DSN makes Hydra keep its state in the database at dsn (migrated by
// `hydra migrate sql` first) instead of in memory, so that it survives
// Restart.
func DSN(dsn string) Option { return func(o *options) { o.dsn = dsn } }

// Postgres makes Hydra keep its state in a new schema of the PostgreSQL
// database at baseURL ("" means the tests' own, storetest.PostgresURL),
// made by storetest.Schema and dropped when the test ends, so
// that it survives Restart. To take the database away from Hydra, give a
// baseURL whose host is a testservers.TCPProxy: Hydra then answers
// introspection with 200 {"active":false}, not with an error.
func Postgres(baseURL string) Option {
	return func(o *options) { o.postgres, o.pgBase = true, baseURL }
}

// Set sets a Hydra configuration key, dotted ("ttl.refresh_token"), to v.
func Set(key string, v any) Option {
	return func(o *options) { o.set[key] = v }
}

// Server is a running Hydra. Its methods are safe for concurrent use.
type Server struct {
	bin, dir, config string
	strategy         Strategy
	dsn              string
	hydraPublic      string // Hydra's own listeners, behind the fronts
	hydraAdmin       string
	public, admin    *front
	issuer           string
	log              testenv.SyncBuffer

	mu   sync.Mutex
	proc *process
}

type process struct {
	cmd    *exec.Cmd
	exited chan error
}

// Start starts Hydra, waits until it is ready, and stops it when the test
// ends. Hydra's output is logged if the test failed.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := options{strategy: StrategyJWT, claims: []string{"email", "locale"}, accessTTL: time.Hour, dsn: "memory", set: map[string]any{}}
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := Binary()
	if err != nil {
		testenv.Missing(t, "Hydra "+Version, err)
	}
	if o.postgres {
		// Registered before Start's cleanup, so the schema is dropped
		// after Hydra stopped.
		o.dsn = storetest.Schema(t, cmp.Or(o.pgBase, storetest.PostgresURL()), "hydra_")
	}
	s := &Server{bin: bin, dir: t.TempDir(), strategy: o.strategy, dsn: o.dsn}
	s.hydraPublic, s.hydraAdmin = testenv.FreeAddr(t), testenv.FreeAddr(t)
	s.public = newFront(t, s.hydraPublic)
	s.admin = newFront(t, s.hydraAdmin)
	s.issuer = "http://" + s.public.addr

	s.config = filepath.Join(s.dir, "hydra.yaml") // JSON is YAML
	if err := os.WriteFile(s.config, s.configFile(t, o), 0o600); err != nil {
		t.Fatal(err)
	}
	if o.dsn != "memory" {
		s.run(t, "migrate", "sql", "--yes", "--read-from-env", "--config", s.config)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("hydra output:\n%s", s.log.String())
		}
	})
	s.startProcess(t)
	return s
}

// configFile is Hydra's configuration for s and o, as JSON (which YAML
// reads): the listeners behind the fronts, the issuer the fronts make,
// the token strategy and the claims tokens may carry.
func (s *Server) configFile(t testing.TB, o options) []byte {
	cfg := map[string]any{}
	set := func(key string, v any) { setDotted(cfg, key, v) }
	ph, pp := hostPort(s.hydraPublic)
	ah, ap := hostPort(s.hydraAdmin)
	set("dsn", o.dsn)
	set("serve.public.host", ph)
	set("serve.public.port", pp)
	set("serve.admin.host", ah)
	set("serve.admin.port", ap)
	set("serve.cookies.same_site_mode", "Lax")
	set("urls.self.issuer", s.issuer)
	set("urls.self.public", "http://"+s.public.addr+"/")
	set("urls.self.admin", "http://"+s.admin.addr+"/")
	// Nothing serves these: Token reads the challenges from the redirects.
	set("urls.login", "http://127.0.0.1:1/login")
	set("urls.consent", "http://127.0.0.1:1/consent")
	set("urls.error", "http://127.0.0.1:1/error")
	set("secrets.system", []string{randomString(t, 32)})
	set("strategies.access_token", string(o.strategy))
	set("strategies.jwt.scope_claim", "list")
	set("oauth2.allowed_top_level_claims", o.claims)
	set("oauth2.mirror_top_level_claims", true)
	set("ttl.access_token", o.accessTTL.String())
	set("log.level", "warn")
	set("log.leak_sensitive_values", true)
	for k, v := range o.set {
		set(k, v)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setDotted sets m's member at the dotted key ("serve.public.port"),
// making the maps on the way.
func setDotted(m map[string]any, key string, v any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[parts[len(parts)-1]] = v
}

func hostPort(addr string) (string, int) {
	h, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return h, n
}

// env is the environment of Hydra: none of the developer's variables, which
// Hydra would read as configuration (DSN, SECRETS_SYSTEM, ...).
func (s *Server) env() []string {
	env := []string{"HOME=" + s.dir, "SQA_OPT_OUT=true"}
	for _, k := range []string{"PATH", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if s.dsn != "memory" {
		env = append(env, "DSN="+s.dsn) // for migrate sql --read-from-env
	}
	return env
}

func (s *Server) run(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hydra %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (s *Server) startProcess(t testing.TB) {
	t.Helper()
	cmd := exec.Command(s.bin, "serve", "all", "--dev", "--sqa-opt-out", "--config", s.config)
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = &s.log, &s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("hydra: %v", err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	testenv.WaitReady(t, "hydra", p.exited, 60*time.Second, func() bool {
		return testenv.AnswersOK("http://"+s.hydraAdmin+"/health/ready") && testenv.AnswersOK("http://"+s.hydraPublic+"/health/ready")
	}, nil)
}

// Stop ends the Hydra process (SIGTERM, then SIGKILL after 10 s); the
// fronts stay, and answer 502 until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	testenv.StopGroup(p.cmd, p.exited, 10*time.Second)
	s.public.transport.CloseIdleConnections()
	s.admin.transport.CloseIdleConnections()
}

// Restart stops Hydra if it runs and starts it again with the same
// configuration and ports. On the in-memory database it comes back empty:
// no clients, no tokens, new signing keys.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.startProcess(t)
}

// Down makes both of Hydra's addresses refuse connections, and closes the
// open ones; Hydra keeps running and keeps its state.
func (s *Server) Down() { s.public.down(); s.admin.down() }

// Up makes both addresses serve again after Down.
func (s *Server) Up(t testing.TB) {
	t.Helper()
	s.public.up(t)
	s.admin.up(t)
}

// FailWith makes both addresses answer every request with status (503,
// say) and a JSON error body; 0 passes requests to Hydra again.
func (s *Server) FailWith(status int) { s.public.failWith(status); s.admin.failWith(status) }

// Strategy is the server's access-token strategy.
func (s *Server) Strategy() Strategy { return s.strategy }

// Issuer is the issuer identifier: the iss of tokens, of introspection
// answers and of the discovery document (no trailing slash).
func (s *Server) Issuer() string { return s.issuer }

// PublicURL is the base of the public API (/oauth2/auth, /oauth2/token,
// /oauth2/revoke, /.well-known/...), with a trailing slash.
func (s *Server) PublicURL() string { return "http://" + s.public.addr + "/" }

// AdminURL is the base of the admin API (/admin/clients,
// /admin/oauth2/introspect, ...), with a trailing slash. It needs no
// authentication.
func (s *Server) AdminURL() string { return "http://" + s.admin.addr + "/" }

// DiscoveryURL is where the OpenID Connect discovery document is.
func (s *Server) DiscoveryURL() string { return s.issuer + "/.well-known/openid-configuration" }

// JWKSURI is where Hydra publishes the keys that sign JWT access tokens.
func (s *Server) JWKSURI() string { return s.issuer + "/.well-known/jwks.json" }

// IntrospectionURL is the RFC 7662 endpoint, on the admin port. It is not
// in the discovery document and needs no client authentication.
func (s *Server) IntrospectionURL() string { return s.AdminURL() + "admin/oauth2/introspect" }

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.PublicURL() + "oauth2/token" }

// Log is Hydra's output so far.
func (s *Server) Log() string { return s.log.String() }

// Client is an OAuth2 client of the server, authenticating with
// client_secret_basic.
type Client struct {
	ID       string
	Secret   string
	Audience []string // the audiences it may request
	Scopes   []string // the scopes it may request
}

// NewClient creates a client that may request audience and scopes, with
// the grant types authorization_code, refresh_token and
// client_credentials and the redirect URI RedirectURI.
func (s *Server) NewClient(t testing.TB, audience, scopes []string) Client {
	t.Helper()
	secret := randomString(t, 24)
	body := map[string]any{
		"client_name":                "hydratest",
		"client_secret":              secret,
		"grant_types":                []string{"authorization_code", "refresh_token", "client_credentials"},
		"response_types":             []string{"code"},
		"redirect_uris":              []string{RedirectURI},
		"scope":                      strings.Join(scopes, " "),
		"audience":                   nonNil(audience),
		"token_endpoint_auth_method": "client_secret_basic",
	}
	var got struct {
		ClientID string `json:"client_id"`
	}
	s.adminJSON(t, http.MethodPost, "admin/clients", body, http.StatusCreated, &got)
	return Client{ID: got.ClientID, Secret: secret, Audience: audience, Scopes: scopes}
}

// Token mints an access token for subject through the authorization-code
// flow, granted scopes and audience, with email as a claim (left out if
// empty): at the top level of a JWT and under "ext" of JWTs and
// introspection answers.
func (s *Server) Token(t testing.TB, c Client, subject, email string, scopes, audience []string) string {
	t.Helper()
	claims := map[string]any{}
	if email != "" {
		claims["email"] = email
	}
	return s.TokenWith(t, c, TokenRequest{Subject: subject, Scopes: scopes, Audience: audience, Claims: claims}).AccessToken
}

// TokenRequest says what TokenWith asks for.
type TokenRequest struct {
	Subject  string
	Scopes   []string       // requested and granted
	Audience []string       // requested and granted (aud)
	Claims   map[string]any // the consent session's access_token claims ("ext")
	IDClaims map[string]any // the consent session's id_token claims
}

// TokenResponse is the token endpoint's answer.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

// TokenWith runs the authorization-code flow for r: it asks /oauth2/auth,
// accepts the login and consent requests through the admin API, and trades
// the code for tokens.
func (s *Server) TokenWith(t testing.TB, c Client, r TokenRequest) TokenResponse {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	state := randomString(t, 16)
	q := url.Values{
		"client_id":     {c.ID},
		"response_type": {"code"},
		"redirect_uri":  {RedirectURI},
		"scope":         {strings.Join(r.Scopes, " ")},
		"state":         {state},
	}
	if len(r.Audience) > 0 {
		q.Set("audience", strings.Join(r.Audience, " "))
	}
	next := s.PublicURL() + "oauth2/auth?" + q.Encode()

	loc := redirect(t, browser, next)
	challenge := loc.Query().Get("login_challenge")
	if challenge == "" {
		t.Fatalf("hydratest: /oauth2/auth redirected to %s, not to the login page", loc)
	}
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	s.adminJSON(t, http.MethodPut, "admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(challenge),
		map[string]any{"subject": r.Subject}, http.StatusOK, &accepted)

	loc = redirect(t, browser, accepted.RedirectTo)
	challenge = loc.Query().Get("consent_challenge")
	if challenge == "" {
		t.Fatalf("hydratest: the login redirected to %s, not to the consent page", loc)
	}
	session := map[string]any{"access_token": nonNilMap(r.Claims), "id_token": nonNilMap(r.IDClaims)}
	s.adminJSON(t, http.MethodPut, "admin/oauth2/auth/requests/consent/accept?consent_challenge="+url.QueryEscape(challenge),
		map[string]any{
			"grant_scope":                 nonNil(r.Scopes),
			"grant_access_token_audience": nonNil(r.Audience),
			"session":                     session,
		}, http.StatusOK, &accepted)

	loc = redirect(t, browser, accepted.RedirectTo)
	if e := loc.Query().Get("error"); e != "" {
		t.Fatalf("hydratest: authorization failed: %s: %s", e, loc.Query().Get("error_description"))
	}
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != state {
		t.Fatalf("hydratest: the consent redirected to %s, not to the client with a code", loc)
	}
	return s.tokenEndpoint(t, c, url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {code},
		"redirect_uri": {RedirectURI},
	})
}

// ClientToken mints an access token by the client_credentials grant: its
// sub is the client's ID, and it has no user claims.
func (s *Server) ClientToken(t testing.TB, c Client, scopes, audience []string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {strings.Join(scopes, " ")}}
	if len(audience) > 0 {
		form.Set("audience", strings.Join(audience, " "))
	}
	return s.tokenEndpoint(t, c, form).AccessToken
}

func (s *Server) tokenEndpoint(t testing.TB, c Client, form url.Values) TokenResponse {
	t.Helper()
	var tr TokenResponse
	status, body := s.clientPost(t, c, s.TokenURL(), form)
	if status != http.StatusOK {
		t.Fatalf("hydratest: token endpoint: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("hydratest: token endpoint answered %s: %v", body, err)
	}
	return tr
}

// Revoke revokes token (access or refresh) at /oauth2/revoke as client c,
// which must be the client the token was issued to. A revoked token
// introspects as inactive; a JWT stays valid for whoever only checks its
// signature.
func (s *Server) Revoke(t testing.TB, c Client, token string) {
	t.Helper()
	status, body := s.clientPost(t, c, s.PublicURL()+"oauth2/revoke", url.Values{"token": {token}})
	if status != http.StatusOK {
		t.Fatalf("hydratest: revoke: %d %s", status, body)
	}
}

// Introspect asks the admin introspection endpoint about token and returns
// the answer as JSON.
func (s *Server) Introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	resp, err := http.PostForm(s.IntrospectionURL(), url.Values{"token": {token}})
	if err != nil {
		t.Fatalf("hydratest: introspect: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("hydratest: introspect: %d %s", resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("hydratest: introspect answered %s: %v", b, err)
	}
	return m
}

func (s *Server) clientPost(t testing.TB, c Client, u string, form url.Values) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("hydratest: POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (s *Server) adminJSON(t testing.TB, method, path string, body any, want int, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, s.AdminURL()+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("hydratest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("hydratest: %s %s: %d %s", method, path, resp.StatusCode, rb)
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			t.Fatalf("hydratest: %s %s answered %s: %v", method, path, rb, err)
		}
	}
}

// redirect GETs u and returns where it redirects to.
func redirect(t testing.TB, c *http.Client, u string) *url.URL {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("hydratest: GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 3 {
		t.Fatalf("hydratest: GET %s: %d, not a redirect: %s", u, resp.StatusCode, b)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("hydratest: GET %s: %v", u, err)
	}
	return loc
}

func randomString(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// DecodeJWT returns the header and claims of a JWT without checking its
// signature.
func DecodeJWT(t testing.TB, raw string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("hydratest: not a JWT: %q", raw)
	}
	for i, out := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("hydratest: JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("hydratest: JWT part %d: %v", i, err)
		}
	}
	return header, claims
}

// front is a reverse proxy on a fixed loopback address in front of one of
// Hydra's ports, which can refuse connections or answer an error status.
type front struct {
	addr      string
	proxy     *httputil.ReverseProxy
	transport *http.Transport

	mu     sync.Mutex
	srv    *http.Server
	status int
}

func newFront(t testing.TB, target string) *front {
	t.Helper()
	f := &front{transport: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(f.transport.CloseIdleConnections)
	f.proxy = &httputil.ReverseProxy{
		Transport: f.transport,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = target
			r.Out.Host = r.In.Host // Hydra sees the address the client used
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "hydratest: hydra is not running: "+err.Error(), http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	t.Cleanup(f.down)
	return f
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	status := f.status
	f.mu.Unlock()
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":"server_error","error_description":"hydratest: failing with %d"}`, status)
		return
	}
	f.proxy.ServeHTTP(w, r)
}

func (f *front) serve(ln net.Listener) {
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (f *front) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (f *front) up(t testing.TB) {
	t.Helper()
	f.mu.Lock()
	running := f.srv != nil
	f.mu.Unlock()
	if running {
		return
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after Close
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("hydratest: listen on %s again: %v", f.addr, err)
	}
	f.serve(ln)
}

func (f *front) failWith(status int) {
	f.mu.Lock()
	f.status = status
	f.mu.Unlock()
}
