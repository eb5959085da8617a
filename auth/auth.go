// Package auth owns bearer tokens: minting dev tokens and verifying incoming
// ones, either against the dev key or against an OIDC issuer's published
// keys. It knows nothing of HTTP.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/pace/userphone"
)

const (
	// DevIssuer is the iss of tokens minted by dev keys.
	DevIssuer = "userphone-dev"
	// DevAudience is the aud of tokens minted by dev keys.
	DevAudience = "userphone"
)

const (
	ScopeUpdate = "user:users.phone:update"
	ScopeCheck  = "user:users.phone:check"
)

// AllScopes lists every scope the service knows.
var AllScopes = []string{ScopeUpdate, ScopeCheck}

// DefaultLinkedIdentityClaim is the claim that lists the identity
// providers a user has linked when Policy.LinkedIdentityClaim is empty.
const DefaultLinkedIdentityClaim = "linked_identities"

// leeway absorbs clock drift between the token issuer and this server.
const leeway = 60 * time.Second

// Verifier checks a raw bearer token (without the "Bearer " prefix) and
// returns who it names. Every error it returns is a *userphone.Error.
type Verifier interface {
	Verify(ctx context.Context, rawToken string) (userphone.Identity, error)
}

// Policy is what every verifier checks beyond the signature.
type Policy struct {
	// Issuer is the exact iss a token must carry.
	Issuer string
	// Audience must be one of the token's aud values.
	Audience string
	// RequiredLinkedIdentity names an identity provider the user must have
	// linked (listed in LinkedIdentityClaim); empty turns the check off.
	RequiredLinkedIdentity string
	// LinkedIdentityClaim is the claim listing the user's linked
	// identities, a string or an array of strings; empty means
	// DefaultLinkedIdentityClaim.
	LinkedIdentityClaim string
}

func (p Policy) linkedIdentityClaim() string {
	if p.LinkedIdentityClaim == "" {
		return DefaultLinkedIdentityClaim
	}
	return p.LinkedIdentityClaim
}

// HasScope reports whether id was granted scope.
func HasScope(id userphone.Identity, scope string) bool {
	return slices.Contains(id.Scopes, scope)
}

// allowedAlgs are the only algorithms any verifier accepts. Symmetric ones
// are excluded so that a public key can never double as an HMAC secret.
var allowedAlgs = []string{
	jwa.RS256().String(), jwa.PS256().String(), jwa.ES256().String(), jwa.EdDSA().String(),
}

func unauthorized(detail string) *userphone.Error {
	return &userphone.Error{Code: userphone.CodeUnauthorized, Detail: detail}
}

// The details callers see. Everything about the signature (algorithm, key
// selection, the signature itself) shares errInvalid, so that an answer
// never tells a prober which part of a forgery failed.
var (
	errNoToken   = unauthorized("The request has no bearer token; send `Authorization: Bearer <token>`.")
	errMalformed = unauthorized("The bearer token is malformed.")
	errInvalid   = unauthorized("The bearer token is invalid.")
	errIssuer    = unauthorized("The bearer token has the wrong issuer.")
	errAudience  = unauthorized("The bearer token has the wrong audience.")
	errNoExpiry  = unauthorized("The bearer token has no expiry (exp claim).")
	errExpired   = unauthorized("The bearer token has expired; get a new one.")
	errNotYet    = unauthorized("The bearer token is not valid yet; check the clocks of the token issuer and this server.")
	errNoSubject = unauthorized("The bearer token names no subject (sub claim).")

	errNoLinkedIdentity = &userphone.Error{
		Code:   userphone.CodeMissingLinkedIdentity,
		Detail: "Linked identity is needed to access this resource, please check why the user does not have a linked identity",
	}
)

// rejection is a refused token: what the caller is told, and why, for the
// debug log. Neither may hold the token or any part of it; attrs may name
// the kid or a known algorithm.
type rejection struct {
	public *userphone.Error
	reason string
	attrs  []slog.Attr
}

func (r *rejection) Error() string { return r.reason }

func reject(public *userphone.Error, reason string, attrs ...slog.Attr) error {
	return &rejection{public: public, reason: reason, attrs: attrs}
}

// keyFunc returns the one key that may verify a token whose header names
// kid (possibly empty) and alg (already allow-listed), or a rejection.
type keyFunc func(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) (*publicKey, error)

// publicKey is a verification key, prepared once when it is loaded.
type publicKey struct {
	kid  string
	algs []string // the allowed algorithms this key may verify
	raw  any      // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// newPublicKey prepares the public half of key for verification, or says
// why it cannot verify any allowed algorithm.
func newPublicKey(key jwk.Key) (*publicKey, error) {
	if _, ok := key.(jwk.UnsupportedKey); ok {
		return nil, fmt.Errorf("unsupported key type %q", key.KeyType().String())
	}
	switch key.KeyType().String() {
	case jwa.RSA().String(), jwa.EC().String(), jwa.OKP().String():
	default:
		return nil, fmt.Errorf("key type %q is not for signatures this server accepts", key.KeyType().String())
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("no public key: %w", err)
	}
	if err := pub.Validate(); err != nil {
		return nil, fmt.Errorf("invalid key: %w", err)
	}
	var algs []string
	for _, alg := range allowedAlgs {
		if keyFits(pub, alg) {
			algs = append(algs, alg)
		}
	}
	if len(algs) == 0 {
		return nil, errors.New("key fits none of RS256, PS256, ES256, EdDSA (by type, curve, alg or use)")
	}
	var raw any
	if err := jwk.Export(pub, &raw); err != nil {
		return nil, fmt.Errorf("export key: %w", err)
	}
	kid, _ := pub.KeyID()
	return &publicKey{kid: kid, algs: algs, raw: raw}, nil
}

// keyFits reports whether key may verify a signature made with alg: the
// right key type (and curve), and no "alg" or "use" of the key's own that
// says otherwise.
func keyFits(key jwk.Key, alg string) bool {
	if a, ok := key.Algorithm(); ok && a.String() != alg {
		return false
	}
	if use, ok := key.KeyUsage(); ok && use != "sig" {
		return false
	}
	if ops, ok := key.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return false
	}
	switch alg {
	case jwa.RS256().String(), jwa.PS256().String():
		_, ok := key.(jwk.RSAPublicKey)
		return ok
	case jwa.ES256().String():
		k, ok := key.(jwk.ECDSAPublicKey)
		if !ok {
			return false
		}
		crv, _ := k.Crv()
		return crv.String() == jwa.P256().String()
	case jwa.EdDSA().String():
		k, ok := key.(jwk.OKPPublicKey)
		if !ok {
			return false
		}
		crv, _ := k.Crv()
		return crv.String() == jwa.Ed25519().String()
	}
	return false
}

// tokenVerifier is the path every verifier shares: structure, algorithm,
// key selection, signature, then claims.
type tokenVerifier struct {
	policy Policy
	log    *slog.Logger
	clock  func() time.Time
	key    keyFunc
}

func (v *tokenVerifier) Verify(ctx context.Context, rawToken string) (userphone.Identity, error) {
	id, err := v.verify(ctx, rawToken)
	return id, publicRefusal(ctx, v.log, err)
}

// verify returns the identity or a *rejection. Library errors are dropped
// rather than wrapped or logged because they may quote parts of the token.
func (v *tokenVerifier) verify(ctx context.Context, rawToken string) (userphone.Identity, error) {
	if rawToken == "" {
		return userphone.Identity{}, reject(errNoToken, "no token")
	}
	msg, err := jws.Parse([]byte(rawToken), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return userphone.Identity{}, reject(errMalformed, "not a compact JWS")
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	alg, ok := hdr.Algorithm()
	if !ok || !slices.Contains(allowedAlgs, alg.String()) {
		return userphone.Identity{}, reject(errInvalid, "algorithm not allowed", algAttr(alg, ok))
	}
	if _, ok := hdr.Critical(); ok {
		// RFC 7515 4.1.11: no extension is understood here.
		return userphone.Identity{}, reject(errInvalid, "critical header extensions", algAttr(alg, true))
	}
	kid, _ := hdr.KeyID()
	key, err := v.key(ctx, kid, alg)
	if err != nil {
		return userphone.Identity{}, err
	}
	if !slices.Contains(key.algs, alg.String()) {
		return userphone.Identity{}, reject(errInvalid, "key does not fit the algorithm", kidAttr(kid), algAttr(alg, true))
	}
	// Claims are checked by checkClaims, which gives each failure its own
	// detail, so the library's validation is off. With exactly one WithKey
	// the library verifies with that key and that algorithm only, and
	// refuses a header whose alg differs.
	tok, err := jwt.Parse([]byte(rawToken), jwt.WithValidate(false), jwt.WithKey(alg, key.raw))
	if err != nil {
		if errors.Is(err, jws.VerifyError()) {
			return userphone.Identity{}, reject(errInvalid, "signature does not verify", kidAttr(kid), algAttr(alg, true))
		}
		return userphone.Identity{}, reject(errMalformed, "claims unreadable", kidAttr(kid))
	}
	return checkClaims(tok, v.policy, v.clock)
}

// maxKIDLog bounds how much of an attacker-chosen kid reaches a log line.
const maxKIDLog = 64

func kidAttr(kid string) slog.Attr {
	if len(kid) > maxKIDLog {
		kid = kid[:maxKIDLog] + "…"
	}
	return slog.String("kid", kid)
}

// algAttr names the header's algorithm if it is one the library knows, so
// that an arbitrary header value never reaches a log line.
func algAttr(alg jwa.SignatureAlgorithm, present bool) slog.Attr {
	switch {
	case !present:
		return slog.String("alg", "(none given)")
	case alg.String() == "none":
		return slog.String("alg", "none")
	}
	if _, known := jwa.LookupSignatureAlgorithm(alg.String()); known {
		return slog.String("alg", alg.String())
	}
	return slog.String("alg", "(unknown)")
}

// checkClaims checks a token whose signature has been verified and returns
// the identity it names, or a *rejection. clock may be nil (time.Now).
func checkClaims(tok jwt.Token, p Policy, clock func() time.Time) (userphone.Identity, error) {
	if clock == nil {
		clock = time.Now
	}
	now := clock()

	if iss, _ := tok.Issuer(); iss != p.Issuer {
		return userphone.Identity{}, reject(errIssuer, "wrong issuer")
	}
	if aud, _ := tok.Audience(); !slices.Contains(aud, p.Audience) {
		return userphone.Identity{}, reject(errAudience, "wrong audience")
	}
	exp, ok := tok.Expiration()
	if !ok {
		return userphone.Identity{}, reject(errNoExpiry, "no exp")
	}
	if !now.Before(exp.Add(leeway)) {
		return userphone.Identity{}, reject(errExpired, "expired")
	}
	if nbf, ok := tok.NotBefore(); ok && now.Before(nbf.Add(-leeway)) {
		return userphone.Identity{}, reject(errNotYet, "not valid yet")
	}
	sub, _ := tok.Subject()
	if sub == "" {
		return userphone.Identity{}, reject(errNoSubject, "no sub")
	}

	id := identityOf(tok, p, sub, exp)
	if p.RequiredLinkedIdentity != "" && !slices.Contains(id.LinkedIdentities, p.RequiredLinkedIdentity) {
		return userphone.Identity{}, reject(errNoLinkedIdentity, "required linked identity missing",
			slog.String("required", p.RequiredLinkedIdentity))
	}
	return id, nil
}

// identityOf reads the user's identity from the claims of a checked token.
func identityOf(tok jwt.Token, p Policy, sub string, exp time.Time) userphone.Identity {
	id := userphone.Identity{
		Subject:         sub,
		Email:           stringClaim(tok, "email"),
		EmailUnverified: claimIsFalse(tok, "email_verified"),
		Locale:          stringClaim(tok, "locale"),
		Expiry:          exp,
	}
	if id.Locale == "" {
		id.Locale = stringClaim(tok, "preferred_language")
	}
	for _, name := range []string{"scope", "scp"} {
		var v any
		if tok.Get(name, &v) != nil {
			continue
		}
		for _, s := range scopeList(v) {
			if !slices.Contains(id.Scopes, s) {
				id.Scopes = append(id.Scopes, s)
			}
		}
	}
	var linked any
	if tok.Get(p.linkedIdentityClaim(), &linked) == nil {
		for _, s := range linkedList(linked) {
			if !slices.Contains(id.LinkedIdentities, s) {
				id.LinkedIdentities = append(id.LinkedIdentities, s)
			}
		}
	}
	return id
}

// claimIsFalse reports whether the claim is present and false: the JSON
// boolean (OIDC Core 5.1), or the string "false" that some providers send.
func claimIsFalse(tok jwt.Token, name string) bool {
	var v any
	if tok.Get(name, &v) != nil {
		return false
	}
	switch v := v.(type) {
	case bool:
		return !v
	case string:
		return strings.EqualFold(v, "false")
	}
	return false
}

func stringClaim(tok jwt.Token, name string) string {
	var v any
	if tok.Get(name, &v) != nil {
		return ""
	}
	s, _ := v.(string)
	return s
}

// scopeList accepts both shapes seen in the wild for scope and scp: a
// space-separated string (RFC 8693) and an array of strings.
func scopeList(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	}
	return stringArray(v)
}

// linkedList reads the linked-identity claim: one identity provider name
// as a string, or an array of them.
func linkedList(v any) []string {
	if s, ok := v.(string); ok {
		if s = strings.TrimSpace(s); s != "" {
			return []string{s}
		}
		return nil
	}
	return stringArray(v)
}

func stringArray(v any) []string {
	switch v := v.(type) {
	case []string:
		return slices.DeleteFunc(slices.Clone(v), func(s string) bool { return s == "" })
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
