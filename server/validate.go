package server

import (
	"fmt"
	"net/http"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/openapi"
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

func newValidator(verifier auth.Verifier, deprecated http.Header) (*validator, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	// Route on the path alone: the server may run under any host name.
	doc.Servers = openapi3.Servers{{URL: openapi.BasePath}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the embedded spec: %w", err)
	}
	registerStrictJSONDecoders()
	return &validator{doc: doc, router: router, verifier: verifier, deprecated: deprecated}, nil
}

// handle runs before the generated wrapper binds parameters, so every
// request meets the spec's checks first: it names the operation, marks a
// deprecated one, authenticates, bounds the body and validates it.
func (v *validator) handle(c *gin.Context) {
	route, pathParams, err := v.router.FindRoute(openapi.Routable(c.Request))
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
		if err := v.authenticate(c, scopes); err != nil {
			writeError(c, err)
			return
		}
	}
	if err := validateBody(c, route, pathParams); err != nil {
		writeError(c, err)
		return
	}
	c.Next()
}

// validateBody checks the request against the operation's schema, after
// bounding the body it may read.
func validateBody(c *gin.Context, route *routers.Route, pathParams map[string]string) error {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	}
	if err := checkJSONAPIParameters(c.Request.Header.Get("Content-Type")); err != nil {
		return err
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
		return requestError(err)
	}
	return nil
}
