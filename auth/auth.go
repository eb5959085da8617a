// Package auth owns bearer tokens: minting dev tokens and verifying incoming
// ones. It knows nothing of HTTP.
package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
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

// leeway absorbs clock drift between the token issuer and this server.
const leeway = 60 * time.Second

// Verifier checks a raw bearer token (without the "Bearer " prefix) and
// returns who it names.
type Verifier interface {
	Verify(ctx context.Context, rawToken string) (userphone.Identity, error)
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

func unauthorized(detail string) error {
	return &userphone.Error{Code: userphone.CodeUnauthorized, Detail: detail}
}

var (
	errNoToken   = unauthorized("The request has no bearer token; send `Authorization: Bearer <token>`.")
	errMalformed = unauthorized("The bearer token is malformed.")
	errAlgorithm = unauthorized("The bearer token is signed with an algorithm this server does not accept; use RS256, PS256, ES256 or EdDSA.")
	errSignature = unauthorized("The bearer token is not signed by this server's key.")
	errIssuer    = unauthorized("The bearer token has the wrong issuer.")
	errAudience  = unauthorized("The bearer token has the wrong audience.")
	errNoExpiry  = unauthorized("The bearer token has no expiry (exp claim).")
	errExpired   = unauthorized("The bearer token has expired; get a new one with `userphone token`.")
	errNotYet    = unauthorized("The bearer token is not valid yet; check the clocks of the token issuer and this server.")
	errNoSubject = unauthorized("The bearer token names no subject (sub claim).")
)

// verify is the path every verifier shares: structure, algorithm, signature
// (by the library, with the key options given), then claims. Library errors
// are dropped rather than wrapped because they may quote parts of the token.
func verify(rawToken, issuer, audience string, clock func() time.Time, keyOpts ...jwt.ParseOption) (userphone.Identity, error) {
	if rawToken == "" {
		return userphone.Identity{}, errNoToken
	}
	msg, err := jws.Parse([]byte(rawToken), jws.WithCompact())
	if err != nil || len(msg.Signatures()) != 1 {
		return userphone.Identity{}, errMalformed
	}
	alg, ok := msg.Signatures()[0].ProtectedHeaders().Algorithm()
	if !ok || !slices.Contains(allowedAlgs, alg.String()) {
		return userphone.Identity{}, errAlgorithm
	}
	// Claims are checked by checkClaims, which gives each failure its own
	// detail, so the library's validation is off.
	opts := append([]jwt.ParseOption{jwt.WithValidate(false)}, keyOpts...)
	tok, err := jwt.Parse([]byte(rawToken), opts...)
	if err != nil {
		if errors.Is(err, jws.VerifyError()) {
			return userphone.Identity{}, errSignature
		}
		return userphone.Identity{}, errMalformed
	}
	return checkClaims(tok, issuer, audience, clock)
}

// checkClaims checks a token whose signature has been verified and returns
// the identity it names. clock may be nil (time.Now).
func checkClaims(tok jwt.Token, issuer, audience string, clock func() time.Time) (userphone.Identity, error) {
	if clock == nil {
		clock = time.Now
	}
	now := clock()

	if iss, _ := tok.Issuer(); iss != issuer {
		return userphone.Identity{}, errIssuer
	}
	if aud, _ := tok.Audience(); !slices.Contains(aud, audience) {
		return userphone.Identity{}, errAudience
	}
	exp, ok := tok.Expiration()
	if !ok {
		return userphone.Identity{}, errNoExpiry
	}
	if !now.Before(exp.Add(leeway)) {
		return userphone.Identity{}, errExpired
	}
	if nbf, ok := tok.NotBefore(); ok && now.Before(nbf.Add(-leeway)) {
		return userphone.Identity{}, errNotYet
	}
	sub, _ := tok.Subject()
	if sub == "" {
		return userphone.Identity{}, errNoSubject
	}

	id := userphone.Identity{
		Subject: sub,
		Email:   stringClaim(tok, "email"),
		Locale:  stringClaim(tok, "locale"),
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
	return id, nil
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
	case []string:
		return v
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
