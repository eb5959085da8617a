package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/gen/api"
)

// maxBodyBytes bounds what a request may send. The largest valid body, a
// phone change, is under 300 bytes; 16 KiB leaves room for clients that pad
// JSON:API documents, and keeps validation cheap.
const maxBodyBytes = 16 << 10

// validator authenticates and validates each API request against the
// embedded spec before a handler sees it.
type validator struct {
	doc      *openapi3.T
	router   routers.Router
	verifier auth.Verifier
	// deprecated is set on every answer of a deprecated operation.
	deprecated http.Header
}

func newValidator(basePath string, verifier auth.Verifier, deprecated http.Header) (*validator, error) {
	doc, err := api.GetSwagger()
	if err != nil {
		return nil, fmt.Errorf("load the embedded spec: %w", err)
	}
	// Route on the path alone: the server may run under any host name.
	doc.Servers = openapi3.Servers{{URL: basePath}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the embedded spec: %w", err)
	}
	return &validator{doc: doc, router: router, verifier: verifier, deprecated: deprecated}, nil
}

func (v *validator) handle(c *gin.Context) {
	route, pathParams, err := v.router.FindRoute(c.Request)
	if err != nil {
		// gin routed this request to an operation of the spec, so the
		// embedded spec and the generated routes disagree: a build bug.
		writeError(c, fmt.Errorf("route %s %s is not in the embedded spec: %w", c.Request.Method, c.FullPath(), err))
		return
	}
	c.Set(operationIDKey, route.Operation.OperationID)
	if route.Operation.Deprecated {
		// Before anything can refuse the request: an error answer tells a
		// client about the deprecation too.
		for k, v := range v.deprecated {
			c.Writer.Header()[k] = v
		}
	}
	// The flow records the request's id and the client in its audit trail.
	c.Request = c.Request.WithContext(userphone.WithRequestMeta(c.Request.Context(),
		userphone.RequestMeta{ID: requestID(c), ClientIP: c.ClientIP()}))
	if scopes, secured := requiredScopes(route); secured {
		id, err := v.authenticate(c, scopes)
		if err != nil {
			writeError(c, err)
			return
		}
		c.Set(subjectKey, id.Subject)
		c.Request = c.Request.WithContext(withIdentity(c.Request.Context(), id))
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	}
	input := &openapi3filter.RequestValidationInput{
		Request:    c.Request,
		PathParams: pathParams,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, // authenticate did it, with our errors
			KeepValidatedValue: true,                                  // the strict handler binds this value
		},
	}
	if err := openapi3filter.ValidateRequest(c.Request.Context(), input); err != nil {
		writeError(c, requestError(err))
		return
	}
	c.Next()
}

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

func (v *validator) authenticate(c *gin.Context, scopes []string) (userphone.Identity, error) {
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
		return userphone.Identity{}, err
	}
	for _, s := range scopes {
		if !auth.HasScope(id, s) {
			c.Header("WWW-Authenticate", fmt.Sprintf(`Bearer realm="userphone", error="insufficient_scope", scope=%q`, strings.Join(scopes, " ")))
			return userphone.Identity{}, userphone.Errorf(userphone.CodeInsufficientScope,
				"The token lacks the scope %q that this operation needs.", s)
		}
	}
	return id, nil
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

// requestError explains a kin-openapi validation failure as a JSON:API
// error with a pointer to the offending field.
func requestError(err error) *userphone.Error {
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return userphone.Errorf(userphone.CodeInvalidRequest, "The request does not match the API's schema.")
	}
	if re.Parameter != nil {
		e := userphone.Errorf(userphone.CodeInvalidRequest, "The %s parameter %q is missing or invalid.", re.Parameter.In, re.Parameter.Name)
		if errors.Is(re.Err, openapi3filter.ErrInvalidRequired) {
			e.Detail = fmt.Sprintf("The %s parameter %q is required.", re.Parameter.In, re.Parameter.Name)
		}
		e.Parameter = re.Parameter.Name
		return e
	}
	var maxBytes *http.MaxBytesError
	var schemaErr *openapi3.SchemaError
	var parseErr *openapi3filter.ParseError
	switch {
	case errors.As(re.Err, &maxBytes):
		return userphone.Errorf(userphone.CodeRequestTooLarge, "The body is larger than %d bytes.", maxBodyBytes)
	case re.RequestBody == nil:
		return userphone.Errorf(userphone.CodeInvalidRequest, "The request does not match the API's schema.")
	case strings.HasPrefix(re.Reason, "header Content-Type has unexpected value"):
		return userphone.Errorf(userphone.CodeUnsupportedMediaType, "Send the body as %s.", quotedMediaTypes(re.RequestBody))
	case errors.Is(re.Err, openapi3filter.ErrInvalidRequired):
		return userphone.Errorf(userphone.CodeInvalidRequest, "The request has no body; send one as %s.", quotedMediaTypes(re.RequestBody))
	case errors.As(re.Err, &schemaErr):
		reason := strings.TrimSuffix(schemaErr.Reason, ".")
		path := schemaErr.JSONPointer()
		if len(path) == 0 {
			// The whole body is at fault; RFC 6901's pointer to it is "",
			// which JSON:API clients read as no pointer at all.
			return userphone.Errorf(userphone.CodeInvalidRequest, "The body is invalid: %s.", reason)
		}
		pointer := "/" + strings.Join(path, "/")
		e := userphone.Errorf(userphone.CodeInvalidRequest, "The field %s is invalid: %s.", pointer, reason)
		e.Pointer = pointer
		if schemaErr.SchemaField == "required" {
			e.Detail = fmt.Sprintf("The field %s is required.", pointer)
		}
		return e
	case errors.As(re.Err, &parseErr):
		return userphone.Errorf(userphone.CodeInvalidRequest, "The body is not valid %s.", mediaKind(re))
	}
	return userphone.Errorf(userphone.CodeInvalidRequest, "The body cannot be read as %s.", quotedMediaTypes(re.RequestBody))
}

func quotedMediaTypes(body *openapi3.RequestBody) string {
	types := make([]string, 0, len(body.Content))
	for t := range body.Content {
		types = append(types, `"`+t+`"`)
	}
	sort.Strings(types)
	return strings.Join(types, " or ")
}

func mediaKind(re *openapi3filter.RequestError) string {
	mt, _, _ := mime.ParseMediaType(re.Input.Request.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" {
		return "form data"
	}
	return "JSON"
}

func init() {
	// kin-openapi's JSON decoder reads the first value and ignores what
	// follows; a body with trailing data is not JSON, so refuse it.
	for _, mt := range []string{"application/json", "application/vnd.api+json"} {
		openapi3filter.RegisterBodyDecoder(mt, strictJSON)
	}
}

func strictJSON(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Reason: "data after the JSON value"}
	}
	return v, nil
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
