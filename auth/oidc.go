package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
)

const (
	defaultRefreshInterval   = 15 * time.Minute
	defaultUnknownKIDRefetch = 10 * time.Second
	// httpTimeout bounds each request to the issuer.
	httpTimeout = 10 * time.Second
	// maxDocumentSize bounds the discovery document and the JWKS.
	maxDocumentSize = 1 << 20
	// Loading is retried after backoffMin, doubling up to backoffMax.
	backoffMin = time.Second
	backoffMax = 30 * time.Second
	// issuerRetryAfter is what a client is told to wait while the issuer
	// cannot help: its keys are not loaded, or it cannot be asked about a
	// token.
	issuerRetryAfter = 5 * time.Second
)

var errNotLoaded = &userphone.Error{
	Code:       userphone.CodeServiceUnavailable,
	RetryAfter: issuerRetryAfter,
	Detail:     "The token issuer's keys are not loaded yet; try again shortly.",
}

// OIDCConfig configures an OIDC verifier.
type OIDCConfig struct {
	// Policy's Issuer and Audience are required. Issuer is the issuer
	// identifier, e.g. https://id.example.com/realms/pace for Keycloak; its
	// discovery document is at Issuer + "/.well-known/openid-configuration"
	// and must name exactly this issuer.
	Policy
	// HTTPClient fetches the discovery document and the keys; nil means a
	// client with a 10 s timeout. A client without a timeout gets 10 s per
	// request.
	HTTPClient *http.Client
	// RefreshInterval is how often the keys are fetched again in the
	// background; 0 means 15 minutes.
	RefreshInterval time.Duration
	// UnknownKIDRefetch is the least time between two fetches caused by
	// tokens with an unknown kid; 0 means 10 seconds.
	UnknownKIDRefetch time.Duration
	// Log receives load failures (Warn, Error), key changes (Info) and the
	// reasons for rejected tokens (Debug); nil discards.
	Log *slog.Logger
	// Clock is the time exp and nbf are checked against; nil means
	// time.Now. Fetch timing always uses the real clock.
	Clock func() time.Time
}

// OIDC verifies tokens of an OIDC issuer against the keys the issuer
// publishes. Its keys are loaded and refreshed by Run; until they are
// loaded, Verify answers service-unavailable and Ready reports an error.
type OIDC struct {
	cfg          OIDCConfig
	client       *http.Client
	log          *slog.Logger
	discoveryURL string
	verifier     tokenVerifier
	keys         atomic.Pointer[keySet]
	running      atomic.Bool

	mu      sync.Mutex // guards the fields below
	jwksURI string
	// introspectionEndpoint is the discovery document's, if it has one.
	introspectionEndpoint string
	lastErr               error         // why the last load failed; nil after a success
	refetching            chan struct{} // closed when the refetch in flight ends
	lastRefetch           time.Time     // start of the last unknown-kid refetch
}

// NewOIDC checks cfg and returns a verifier without keys; it does no I/O.
// Start Run to load them.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("oidc: an issuer is required")
	}
	if err := CheckIssuerURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("oidc: issuer %w", err)
	}
	if cfg.Audience == "" {
		return nil, errors.New("oidc: an audience is required")
	}
	if cfg.RefreshInterval < 0 || cfg.UnknownKIDRefetch < 0 {
		return nil, errors.New("oidc: intervals must not be negative")
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = defaultRefreshInterval
	}
	if cfg.UnknownKIDRefetch == 0 {
		cfg.UnknownKIDRefetch = defaultUnknownKIDRefetch
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: httpTimeout, CheckRedirect: checkRedirect}
	}
	o := &OIDC{
		cfg:          cfg,
		client:       client,
		log:          logs.OrDiscard(cfg.Log),
		discoveryURL: strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration",
	}
	o.verifier = tokenVerifier{policy: cfg.Policy, log: o.log, clock: cfg.Clock, key: o.keyFor}
	return o, nil
}

// CheckIssuerURL accepts an issuer identifier that keys may be fetched
// from: an https URL without user, query or fragment, or plain http only on
// a loopback address (a test issuer on this machine), since the keys that
// tokens are checked against must not travel unprotected.
func CheckIssuerURL(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		strings.HasSuffix(issuer, "?") || strings.HasSuffix(issuer, "#") || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an issuer URL; use e.g. https://id.example.com/realms/pace", issuer)
	}
	if u.Scheme == "https" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%q must use https (plain http only on a loopback address)", issuer)
}

// checkRedirect follows at most 3 redirects, and none from https to http.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("more than 3 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("redirect from https to http")
	}
	return nil
}

// Verify checks rawToken against the issuer's keys and the policy.
func (o *OIDC) Verify(ctx context.Context, rawToken string) (userphone.Identity, error) {
	return o.verifier.Verify(ctx, rawToken)
}

// Ready reports nil once the issuer's keys are loaded. Before, its error
// wraps userphone.ErrUnavailable and says why the last attempt failed.
func (o *OIDC) Ready() error {
	if o.keys.Load() != nil {
		return nil
	}
	o.mu.Lock()
	cause := o.lastErr
	o.mu.Unlock()
	return &notReadyError{issuer: o.cfg.Issuer, cause: cause}
}

type notReadyError struct {
	issuer string
	cause  error
}

func (e *notReadyError) Error() string {
	if e.cause == nil {
		return fmt.Sprintf("keys of token issuer %s not loaded yet", e.issuer)
	}
	return fmt.Sprintf("keys of token issuer %s not loaded: %v", e.issuer, e.cause)
}

func (e *notReadyError) Unwrap() []error {
	if e.cause == nil {
		return []error{userphone.ErrUnavailable}
	}
	return []error{userphone.ErrUnavailable, e.cause}
}

// errIssuerMismatch marks a discovery document for another issuer, which
// is a configuration error rather than an outage.
var errIssuerMismatch = errors.New("discovery document names another issuer")

// Run loads the issuer's keys, retrying with backoff (1 s doubling to
// 30 s) until they load, then refreshes them every RefreshInterval until
// ctx ends. A failed refresh keeps the keys loaded before. Run returns when
// ctx ends; a second concurrent Run returns at once.
func (o *OIDC) Run(ctx context.Context) {
	if !o.running.CompareAndSwap(false, true) {
		o.log.Error("auth: OIDC.Run is already running; ignoring the second call")
		return
	}
	defer o.running.Store(false)

	backoff := backoffMin
	var delay time.Duration
	for {
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		err := o.load(ctx)
		if ctx.Err() != nil {
			return
		}
		o.mu.Lock()
		o.lastErr = err
		o.mu.Unlock()
		if err == nil {
			backoff, delay = backoffMin, o.cfg.RefreshInterval
			continue
		}

		delay = backoff
		backoff = min(2*backoff, backoffMax)
		loaded := o.keys.Load() != nil
		if loaded {
			delay = min(delay, o.cfg.RefreshInterval)
		}
		level, msg := slog.LevelWarn, "auth: loading the token issuer's keys failed; tokens are refused with 503 until they load"
		if loaded {
			msg = "auth: refreshing the token issuer's keys failed; keeping the keys loaded before"
		}
		if errors.Is(err, errIssuerMismatch) {
			level = slog.LevelError
			msg = "auth: the OIDC discovery document names another issuer than the configured one; check the issuer URL (exact match, including a trailing slash)"
		}
		o.log.Log(ctx, level, msg, "issuer", o.cfg.Issuer, "error", err, "retry_in", delay)
	}
}

// load fetches the discovery document, then the keys it points to.
func (o *OIDC) load(ctx context.Context) error {
	doc, err := o.discover(ctx)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.jwksURI, o.introspectionEndpoint = doc.JWKSURI, doc.IntrospectionEndpoint
	o.mu.Unlock()
	return o.fetchKeys(ctx, doc.JWKSURI)
}

// IntrospectionEndpoint is the discovery document's introspection
// endpoint (RFC 8414), once it is loaded; empty when it names none.
func (o *OIDC) IntrospectionEndpoint() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.introspectionEndpoint
}

// discoveryDoc is what the service reads of the discovery document.
type discoveryDoc struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

func (o *OIDC) discover(ctx context.Context) (discoveryDoc, error) {
	var doc discoveryDoc
	body, err := o.get(ctx, o.discoveryURL)
	if err != nil {
		return doc, fmt.Errorf("discovery: %w", err)
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return doc, fmt.Errorf("discovery: %s is not a JSON object", o.discoveryURL)
	}
	if doc.Issuer != o.cfg.Issuer {
		return doc, fmt.Errorf("%w: %s names issuer %s, configured is %s",
			errIssuerMismatch, o.discoveryURL, clip(doc.Issuer), o.cfg.Issuer)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return doc, fmt.Errorf("discovery: %s has no usable jwks_uri (%s)", o.discoveryURL, clip(doc.JWKSURI))
	}
	if strings.HasPrefix(o.cfg.Issuer, "https:") && u.Scheme != "https" {
		return doc, fmt.Errorf("discovery: %s gives a jwks_uri without https (%s)", o.discoveryURL, clip(doc.JWKSURI))
	}
	if doc.IntrospectionEndpoint != "" && CheckIssuerURL(doc.IntrospectionEndpoint) != nil {
		o.log.Warn("the discovery document's introspection_endpoint is neither https nor on a loopback address; it is not used",
			"introspection_endpoint", clip(doc.IntrospectionEndpoint))
		doc.IntrospectionEndpoint = ""
	}
	return doc, nil
}

// clip shortens a value from the issuer for an error message.
func clip(s string) string {
	const n = 200
	if len(s) > n {
		s = s[:n] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// get fetches a JSON document of at most maxDocumentSize bytes.
func (o *OIDC) get(ctx context.Context, uri string) ([]byte, error) {
	if o.client.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, httpTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err // a *url.Error naming the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: status %s, want 200", uri, resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, fmt.Errorf("GET %s: content type %s, want JSON", uri, clip(ct))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	if len(body) > maxDocumentSize {
		return nil, fmt.Errorf("GET %s: response larger than %d bytes", uri, maxDocumentSize)
	}
	return body, nil
}

// fetchKeys fetches the JWKS at uri and makes its usable keys the current
// ones. A set without usable keys is an error and changes nothing.
func (o *OIDC) fetchKeys(ctx context.Context, uri string) error {
	body, err := o.get(ctx, uri)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	set, err := jwk.Parse(body, jwk.WithStrictKeySetParsing(false), jwk.WithRejectDuplicateKID(false))
	if err != nil {
		return fmt.Errorf("keys: %s is not a JWK set", uri)
	}
	ks := &keySet{byKID: map[string]*publicKey{}}
	for i := range set.Len() {
		key, _ := set.Key(i)
		kid, _ := key.KeyID()
		pk, err := newPublicKey(key)
		if err != nil {
			o.log.Debug("auth: skipping a key of the token issuer", "kid", kid, "why", err)
			continue
		}
		if kid != "" {
			if _, dup := ks.byKID[kid]; dup {
				o.log.Warn("auth: the token issuer publishes two keys with one kid; using the first", "kid", kid)
				continue
			}
			ks.byKID[kid] = pk
		}
		ks.all = append(ks.all, pk)
	}
	if len(ks.all) == 0 {
		return fmt.Errorf("keys: %s holds no key for RS256, PS256, ES256 or EdDSA", uri)
	}
	old := o.keys.Swap(ks)
	switch {
	case old == nil:
		o.log.Info("auth: token issuer keys loaded", "issuer", o.cfg.Issuer, "kids", ks.kids())
	case !slices.Equal(old.kids(), ks.kids()):
		o.log.Info("auth: token issuer keys changed", "issuer", o.cfg.Issuer, "kids", ks.kids(), "before", old.kids())
	}
	return nil
}

// keySet is the usable keys of one JWKS, read-only once published.
type keySet struct {
	byKID map[string]*publicKey
	all   []*publicKey // in JWKS order, with or without kid
}

func (s *keySet) kids() []string {
	kids := make([]string, 0, len(s.all))
	for _, k := range s.all {
		kids = append(kids, k.kid)
	}
	return kids
}

// keyFor picks the key for a token: by kid, or the only key when the token
// has none. An unknown kid triggers a refetch, at most one per
// UnknownKIDRefetch, which concurrent callers share.
func (o *OIDC) keyFor(ctx context.Context, kid string, _ jwa.SignatureAlgorithm) (*publicKey, error) {
	ks := o.keys.Load()
	if ks == nil {
		return nil, reject(errNotLoaded, "issuer keys not loaded")
	}
	if kid == "" {
		if len(ks.all) == 1 {
			return ks.all[0], nil
		}
		return nil, reject(errInvalid, "no kid, and the issuer publishes several keys", slog.Int("keys", len(ks.all)))
	}
	if k, ok := ks.byKID[kid]; ok {
		return k, nil
	}
	ks, fetched := o.refetch(ctx, ks)
	if k, ok := ks.byKID[kid]; ok {
		return k, nil
	}
	return nil, reject(errInvalid, "unknown kid", kidAttr(kid), slog.Bool("refetched", fetched))
}

// refetch fetches the keys again unless that happened less than
// UnknownKIDRefetch ago, and returns the current set. seen is the set the
// caller found wanting. Callers arriving while a refetch is in flight wait
// for it (or their ctx) instead of starting another.
func (o *OIDC) refetch(ctx context.Context, seen *keySet) (*keySet, bool) {
	o.mu.Lock()
	if cur := o.keys.Load(); cur != seen {
		o.mu.Unlock() // changed since the caller looked: try that set
		return cur, true
	}
	if done := o.refetching; done != nil {
		o.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		return o.keys.Load(), true
	}
	if !o.lastRefetch.IsZero() && time.Since(o.lastRefetch) < o.cfg.UnknownKIDRefetch {
		o.mu.Unlock()
		return seen, false
	}
	o.lastRefetch = time.Now()
	done := make(chan struct{})
	o.refetching = done
	uri := o.jwksURI
	o.mu.Unlock()

	// The fetch serves every waiting caller, so this caller's cancellation
	// must not end it; get bounds it in time.
	err := o.fetchKeys(context.WithoutCancel(ctx), uri)

	o.mu.Lock()
	o.refetching = nil
	o.mu.Unlock()
	close(done)
	if err != nil {
		o.log.Warn("auth: refetching the token issuer's keys for an unknown kid failed; keeping the keys loaded before",
			"issuer", o.cfg.Issuer, "error", err)
	}
	return o.keys.Load(), true
}
