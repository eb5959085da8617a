package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/openapi"
)

// errorKinds is the one place where an error code becomes an HTTP status
// and a title. The codes are the spec's (its ErrorCode schema documents
// the same table); the domain's codes are a part of them.
var errorKinds = map[api.ErrorCode]struct {
	status int
	title  string
}{
	api.ErrorCodeUnauthorized:             {http.StatusUnauthorized, "Unauthorized"},
	api.ErrorCodeMissingLinkedIdentity:    {http.StatusUnauthorized, "Missing linked identity for authorized access"},
	api.ErrorCodeInsufficientScope:        {http.StatusForbidden, "Insufficient scope"},
	api.ErrorCodeInvalidRequest:           {http.StatusBadRequest, "Invalid request"},
	api.ErrorCodeUnsupportedMediaType:     {http.StatusUnsupportedMediaType, "Unsupported media type"},
	api.ErrorCodeInvalidPhoneNumber:       {http.StatusUnprocessableEntity, "Invalid phone number"},
	api.ErrorCodePhoneNumberNotAllowed:    {http.StatusUnprocessableEntity, "Phone number not allowed"},
	api.ErrorCodeEmailRequired:            {http.StatusConflict, "E-mail address required"},
	api.ErrorCodeEmailNotVerified:         {http.StatusConflict, "E-mail address not verified"},
	api.ErrorCodeEmailConfirmationPending: {http.StatusConflict, "E-mail confirmation pending"},
	api.ErrorCodeNoPendingVerification:    {http.StatusNotFound, "No pending verification"},
	api.ErrorCodeVerificationExpired:      {http.StatusNotFound, "Verification expired"},
	api.ErrorCodeInvalidCode:              {http.StatusUnprocessableEntity, "Invalid code"},
	api.ErrorCodeCodeExpired:              {http.StatusUnprocessableEntity, "Code expired"},
	api.ErrorCodeTooManyAttempts:          {http.StatusTooManyRequests, "Too many attempts"},
	api.ErrorCodeRateLimited:              {http.StatusTooManyRequests, "Rate limited"},
	api.ErrorCodeNotFound:                 {http.StatusNotFound, "Not found"},
	api.ErrorCodeMethodNotAllowed:         {http.StatusMethodNotAllowed, "Method not allowed"},
	api.ErrorCodeRequestTooLarge:          {http.StatusRequestEntityTooLarge, "Request too large"},
	api.ErrorCodeCrossSiteRequest:         {http.StatusForbidden, "Cross-site request"},
	api.ErrorCodeInternalError:            {http.StatusNotImplemented, "Internal server error"},
	api.ErrorCodeServiceUnavailable:       {http.StatusServiceUnavailable, "Service unavailable"},
}

// fieldPointers says where each of the domain's inputs sits in a request
// body, as a JSON pointer (RFC 6901).
var fieldPointers = map[userphone.Field]string{
	userphone.FieldPhoneNumber: "/data/attributes/phoneNumber",
}

// unavailableRetryAfter is what a client is told to wait while the database
// is away: long enough not to hammer it, short enough for a restart.
const unavailableRetryAfter = 5 * time.Second

// httpError is an error that only the HTTP layer answers with: a request
// that breaks the spec, a route or method that does not exist, a body too
// large, a cross-site form. Its code is one of the spec's.
type httpError struct {
	code   api.ErrorCode
	detail string
	// pointer is a JSON pointer into the request body; parameter names
	// the offending query parameter or header.
	pointer, parameter string
}

func (e *httpError) Error() string { return string(e.code) + ": " + e.detail }

func httpErrorf(code api.ErrorCode, format string, args ...any) *httpError {
	return &httpError{code: code, detail: fmt.Sprintf(format, args...)}
}

// problem is an error as the caller sees it, whichever layer made it.
type problem struct {
	code               api.ErrorCode
	detail             string
	pointer, parameter string
	remainingAttempts  *int
	retryAfter         time.Duration
}

// publicProblem turns any error into one the caller may see. Errors that
// are neither the domain's nor the HTTP layer's are logged with the
// request id and hidden.
func publicProblem(c *gin.Context, err error) problem {
	var he *httpError
	if errors.As(err, &he) {
		return problem{code: he.code, detail: he.detail, pointer: he.pointer, parameter: he.parameter}
	}
	if e := userphone.AsError(err); e != nil {
		return problem{code: api.ErrorCode(e.Code), detail: e.Detail, pointer: fieldPointers[e.Field],
			remainingAttempts: e.RemainingAttempts, retryAfter: e.RetryAfter}
	}
	log := loggerFrom(c)
	switch {
	case errors.Is(err, userphone.ErrUnavailable):
		log.Warn("database unavailable", "request_id", requestID(c), "err", err)
		return problem{code: api.ErrorCodeServiceUnavailable,
			detail: "The database cannot be reached; try again shortly.", retryAfter: unavailableRetryAfter}
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		log.Info("request cancelled by the client", "request_id", requestID(c))
	default:
		log.Error("internal error", "request_id", requestID(c), "err", err)
	}
	return problem{code: api.ErrorCodeInternalError,
		detail: "Something unexpected happened; the request id names it in the server's log."}
}

// writeError answers with a JSON:API error document. It is the only writer
// of error responses, for handlers, middleware and the router alike.
func writeError(c *gin.Context, err error) {
	p := publicProblem(c, err)
	kind, ok := errorKinds[p.code]
	if !ok {
		kind = errorKinds[api.ErrorCodeInternalError]
	}
	doc := api.Error{Id: requestID(c), Status: strconv.Itoa(kind.status), Code: p.code, Title: kind.title}
	if p.detail != "" {
		doc.Detail = &p.detail
	}
	if p.pointer != "" || p.parameter != "" {
		doc.Source = &struct {
			Parameter *string `json:"parameter,omitempty"`
			Pointer   *string `json:"pointer,omitempty"`
		}{}
		if p.pointer != "" {
			doc.Source.Pointer = &p.pointer
		}
		if p.parameter != "" {
			doc.Source.Parameter = &p.parameter
		}
	}
	if p.remainingAttempts != nil {
		doc.Meta = &api.Error_Meta{RemainingAttempts: p.remainingAttempts}
	}
	if kind.status == http.StatusTooManyRequests || kind.status == http.StatusServiceUnavailable {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(p.retryAfter.Seconds()))))
	}
	c.Set(errorCodeKey, string(p.code))
	writeJSONAPI(c, kind.status, api.ErrorDocument{Errors: []api.Error{doc}})
	c.Abort()
}

func writeJSONAPI(c *gin.Context, status int, body any) {
	c.Render(status, jsonAPI{body})
}

// jsonAPI renders JSON with JSON:API's media type.
type jsonAPI struct{ body any }

func (r jsonAPI) Render(w http.ResponseWriter) error {
	r.WriteContentType(w)
	return jsonEncode(w, r.body)
}

func (jsonAPI) WriteContentType(w http.ResponseWriter) {
	w.Header().Set("Content-Type", openapi.MediaTypeJSONAPI)
}

// loggerFrom returns the request's logger, which accessLog puts on the
// context; a request that never met accessLog logs nowhere.
func loggerFrom(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		return l.(*slog.Logger)
	}
	return logs.OrDiscard(nil)
}
