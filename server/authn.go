package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/routers"
	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
)

// requiredScopes returns the scopes of the operation's OAuth2 requirement;
// secured is false for public operations such as the confirmation pages.
func requiredScopes(route *routers.Route) (scopes []string, secured bool) {
	reqs := route.Spec.Security
	if route.Operation.Security != nil {
		reqs = *route.Operation.Security
	}
	for _, req := range reqs {
		if s, ok := req["OAuth2"]; ok {
			return s, true
		}
	}
	return nil, false
}

// authenticate verifies the request's bearer token and its scopes, and
// puts the identity on the request's context for the handler.
func (v *validator) authenticate(c *gin.Context, scopes []string) error {
	raw, present := bearerToken(c.GetHeader("Authorization"))
	id, err := v.verifier.Verify(c.Request.Context(), raw)
	if err != nil {
		// RFC 6750: a 401 names the scheme, and says invalid_token only when
		// a token came. Other failures (503 while the issuer's keys load)
		// are no challenge.
		switch code := userphone.ErrorCodeOf(err); {
		case code != userphone.CodeUnauthorized && code != userphone.CodeMissingLinkedIdentity:
		case present:
			c.Header("WWW-Authenticate", `Bearer realm="userphone", error="invalid_token"`)
		default:
			c.Header("WWW-Authenticate", `Bearer realm="userphone"`)
		}
		return err
	}
	for _, s := range scopes {
		if !auth.HasScope(id, s) {
			c.Header("WWW-Authenticate", fmt.Sprintf(`Bearer realm="userphone", error="insufficient_scope", scope=%q`, strings.Join(scopes, " ")))
			return userphone.Errorf(userphone.CodeInsufficientScope,
				"The token lacks the scope %q that this operation needs.", s)
		}
	}
	c.Set(subjectKey, id.Subject)
	c.Request = c.Request.WithContext(withIdentity(c.Request.Context(), id))
	return nil
}

// bearerToken extracts the token of an RFC 6750 Authorization header; the
// scheme is case-insensitive. Another scheme (Basic, say) counts as no
// bearer token at all.
func bearerToken(header string) (token string, present bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

type identityKey struct{}

func withIdentity(ctx context.Context, id userphone.Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// identityFrom returns the identity that the validator authenticated. A
// secured handler without one is a wiring bug, not a client error.
func identityFrom(ctx context.Context) userphone.Identity {
	id, ok := ctx.Value(identityKey{}).(userphone.Identity)
	if !ok {
		panic("server: no authenticated identity on a secured operation")
	}
	return id
}
