package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
)

// Introspection defaults.
const (
	// DefaultIntrospectionCache is how long an active answer is trusted
	// (never past the token's exp): a token revoked at the issuer is
	// refused within it, while a client's burst of requests costs one
	// question to the issuer.
	DefaultIntrospectionCache = 30 * time.Second
	// refusalCache is how long an inactive answer is kept: long enough
	// that a client retrying a dead token does not hammer the issuer,
	// short enough that a token that was not yet known is soon taken.
	refusalCache = 5 * time.Second
)

var (
	errInactive   = unauthorized("The bearer token is not active: revoked, expired or unknown to the issuer; get a new one.")
	errNotAccess  = unauthorized("The bearer token is not an access token.")
	errIssuerDown = &userphone.Error{
		Code:       userphone.CodeServiceUnavailable,
		RetryAfter: issuerRetryAfter,
		Detail:     "The token issuer cannot be asked about the bearer token right now; try again shortly.",
	}
)

// IntrospectionConfig configures RFC 7662 token introspection, for
// issuers that hand out opaque access tokens.
type IntrospectionConfig struct {
	// Policy's Issuer and Audience are checked as for a JWT.
	Policy
	// URL is the introspection endpoint, e.g. Ory Hydra's
	// {admin}/admin/oauth2/introspect: https, or http on a loopback
	// address. When empty, Discovered names it.
	URL string
	// Discovered returns the endpoint the issuer's discovery document
	// names (OIDC.IntrospectionEndpoint), empty while it names none.
	Discovered func() string
	// ClientID and ClientSecret authenticate this service to the endpoint
	// with HTTP Basic (RFC 7662 2.1); empty sends none, for an endpoint
	// that only a private network reaches.
	ClientID, ClientSecret string
	// HTTPClient asks the endpoint; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Log receives the endpoint's failures (Warn) and the reasons for
	// refused tokens (Debug); nil discards.
	Log *slog.Logger
	// Clock is the time exp and nbf are checked against; nil is time.Now.
	Clock func() time.Time
}

// Introspector verifies opaque access tokens by asking the issuer (RFC
// 7662), and checks the answer as a JWT's claims are checked. Wrap it in
// CachedIntrospection.
type Introspector struct {
	cfg    IntrospectionConfig
	client *http.Client
	log    *slog.Logger
}

// NewIntrospector checks cfg; it does no I/O.
func NewIntrospector(cfg IntrospectionConfig) (*Introspector, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("introspection: an issuer and an audience are required")
	}
	switch {
	case cfg.URL != "":
		if err := CheckIssuerURL(cfg.URL); err != nil {
			return nil, fmt.Errorf("introspection: the endpoint %w", err)
		}
	case cfg.Discovered == nil:
		return nil, errors.New("introspection: an endpoint is required")
	}
	if (cfg.ClientID == "") != (cfg.ClientSecret == "") {
		return nil, errors.New("introspection: a client id needs its secret, and a secret its client id")
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: httpTimeout, CheckRedirect: checkRedirect}
	}
	return &Introspector{cfg: cfg, client: client, log: logs.OrDiscard(cfg.Log)}, nil
}

// Verify asks the issuer about rawToken and checks its answer.
func (i *Introspector) Verify(ctx context.Context, rawToken string) (userphone.Identity, error) {
	id, err := i.verify(ctx, rawToken)
	return id, publicRefusal(ctx, i.log, err)
}

func (i *Introspector) verify(ctx context.Context, rawToken string) (userphone.Identity, error) {
	if rawToken == "" {
		return userphone.Identity{}, reject(errNoToken, "no token")
	}
	endpoint := i.cfg.URL
	if endpoint == "" {
		endpoint = i.cfg.Discovered()
	}
	if endpoint == "" {
		return userphone.Identity{}, reject(errMalformed, "not a JWT, and no introspection endpoint is known")
	}
	answer, err := i.ask(ctx, endpoint, rawToken)
	if err != nil {
		// No error text: a transport error may quote the form, token and all.
		i.log.WarnContext(ctx, "the token issuer's introspection endpoint did not answer", "url", endpoint, "reason", introspectionFailure(err))
		return userphone.Identity{}, reject(errIssuerDown, "introspection failed")
	}
	if active, _ := answer["active"].(bool); !active {
		return userphone.Identity{}, reject(errInactive, "not active")
	}
	if use, ok := answer["token_use"]; ok && use != "access_token" {
		return userphone.Identity{}, reject(errNotAccess, "token_use is not access_token")
	}
	tok, err := claimsOf(answer)
	if err != nil {
		return userphone.Identity{}, reject(errMalformed, "introspection claims unreadable")
	}
	return checkClaims(tok, i.cfg.Policy, i.cfg.Clock)
}

// ask posts the token to the endpoint and returns its JSON answer.
func (i *Introspector) ask(ctx context.Context, endpoint, rawToken string) (map[string]any, error) {
	form := url.Values{"token": {rawToken}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if i.cfg.ClientID != "" {
		// RFC 6749 2.3.1: both form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(i.cfg.ClientID), url.QueryEscape(i.cfg.ClientSecret))
	}
	resp, err := i.client.Do(req)
	if err != nil {
		return nil, errUnreachable
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, &statusError{resp.StatusCode}
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, errNotJSON
	}
	var answer map[string]any
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxDocumentSize))
	dec.UseNumber()
	if err := dec.Decode(&answer); err != nil {
		return nil, errNotJSON
	}
	return answer, nil
}

var (
	errUnreachable = errors.New("unreachable")
	errNotJSON     = errors.New("the answer is not a JSON object")
)

type statusError struct{ status int }

func (e *statusError) Error() string { return fmt.Sprintf("status %d, want 200", e.status) }

// introspectionFailure says why asking failed, in words that hold nothing
// of the token.
func introspectionFailure(err error) string {
	var se *statusError
	switch {
	case errors.As(err, &se) && (se.status == http.StatusUnauthorized || se.status == http.StatusForbidden):
		return se.Error() + ": check USERPHONE_OIDC_CLIENT_ID and USERPHONE_OIDC_CLIENT_SECRET"
	case errors.Is(err, errUnreachable), errors.Is(err, errNotJSON), errors.As(err, &se):
		return err.Error()
	}
	return "the request could not be made"
}

// notClaims are the members of an introspection answer that describe the
// answer, not the token's claims.
var notClaims = []string{"active", "token_use", "token_type", "ext", "username", "obfuscated_subject"}

// claimsOf turns an active answer into a token whose claims checkClaims
// reads: the answer's members, and the members of "ext" (where Ory Hydra
// puts the claims a login added, such as email) that the answer does not
// have itself.
func claimsOf(answer map[string]any) (jwt.Token, error) {
	claims := map[string]any{}
	for k, v := range answer {
		claims[k] = v
	}
	for _, k := range notClaims {
		delete(claims, k)
	}
	if ext, ok := answer["ext"].(map[string]any); ok {
		for k, v := range ext {
			if _, taken := claims[k]; !taken {
				claims[k] = v
			}
		}
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	tok := jwt.New()
	return tok, json.Unmarshal(raw, tok)
}

// publicRefusal is what the caller of a verifier sees of err: the
// rejection's public error, a copy, with its reason in the debug log.
func publicRefusal(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	r, ok := err.(*rejection)
	if !ok { // not reached: verifiers return only rejections
		r = &rejection{public: errInvalid, reason: "internal: " + err.Error()}
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		attrs := append([]slog.Attr{slog.String("reason", r.reason)}, r.attrs...)
		log.LogAttrs(ctx, slog.LevelDebug, "token rejected", attrs...)
	}
	// A copy, so that no caller can change the detail others see.
	public := *r.public
	return &public
}

// ByTokenShape sends a token that has a JWT's shape (three dot-separated
// parts) to jwts, and any other to opaque: an issuer may hand out either,
// and only its JWTs can be checked against its keys.
func ByTokenShape(jwts, opaque Verifier) Verifier {
	return &byTokenShape{jwts: jwts, opaque: opaque}
}

type byTokenShape struct{ jwts, opaque Verifier }

func (v *byTokenShape) Verify(ctx context.Context, rawToken string) (userphone.Identity, error) {
	if strings.Count(rawToken, ".") == 2 {
		return v.jwts.Verify(ctx, rawToken)
	}
	return v.opaque.Verify(ctx, rawToken)
}

// Ready is the JWT verifier's: the keys must be loaded; introspection
// needs nothing loaded.
func (v *byTokenShape) Ready() error {
	if r, ok := v.jwts.(interface{ Ready() error }); ok {
		return r.Ready()
	}
	return nil
}

// ForIssuer is how an issuer's tokens are verified: a JWT against its keys
// (cached until exp, at most DefaultCacheTTL), any other token by
// introspection (an active answer cached for at most introspectionCache).
func ForIssuer(keys *OIDC, introspection *Introspector, introspectionCache time.Duration) Verifier {
	return ByTokenShape(Cached(keys, 0, 0, nil), CachedIntrospection(introspection, introspectionCache, nil))
}
