package server

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
)

// errorKinds is the one place where an error code becomes an HTTP status
// and a title. The spec's ErrorCode schema documents the same table.
var errorKinds = map[userphone.ErrorCode]struct {
	status int
	title  string
}{
	userphone.CodeUnauthorized:             {http.StatusUnauthorized, "Unauthorized"},
	userphone.CodeMissingLinkedIdentity:    {http.StatusUnauthorized, "Missing linked identity for authorized access"},
	userphone.CodeInsufficientScope:        {http.StatusForbidden, "Insufficient scope"},
	userphone.CodeInvalidRequest:           {http.StatusBadRequest, "Invalid request"},
	userphone.CodeUnsupportedMediaType:     {http.StatusUnsupportedMediaType, "Unsupported media type"},
	userphone.CodeInvalidPhoneNumber:       {http.StatusUnprocessableEntity, "Invalid phone number"},
	userphone.CodePhoneNumberNotAllowed:    {http.StatusUnprocessableEntity, "Phone number not allowed"},
	userphone.CodeEmailRequired:            {http.StatusConflict, "E-mail address required"},
	userphone.CodeEmailConfirmationPending: {http.StatusConflict, "E-mail confirmation pending"},
	userphone.CodeNoPendingVerification:    {http.StatusNotFound, "No pending verification"},
	userphone.CodeVerificationExpired:      {http.StatusNotFound, "Verification expired"},
	userphone.CodeInvalidCode:              {http.StatusUnprocessableEntity, "Invalid code"},
	userphone.CodeTooManyAttempts:          {http.StatusTooManyRequests, "Too many attempts"},
	userphone.CodeRateLimited:              {http.StatusTooManyRequests, "Rate limited"},
	userphone.CodeNotFound:                 {http.StatusNotFound, "Not found"},
	userphone.CodeMethodNotAllowed:         {http.StatusMethodNotAllowed, "Method not allowed"},
	userphone.CodeRequestTooLarge:          {http.StatusRequestEntityTooLarge, "Request too large"},
	userphone.CodeCrossSiteRequest:         {http.StatusForbidden, "Cross-site request"},
	userphone.CodeInternal:                 {http.StatusNotImplemented, "Internal server error"},
	userphone.CodeServiceUnavailable:       {http.StatusServiceUnavailable, "Service unavailable"},
}

// unavailableRetryAfter is what a client is told to wait while the database
// is away: long enough not to hammer it, short enough for a restart.
const unavailableRetryAfter = 5 * time.Second

// publicError turns any error into one the caller may see. Errors that are
// not *userphone.Error are logged with the request id and hidden.
func publicError(c *gin.Context, err error) *userphone.Error {
	if e := userphone.AsError(err); e != nil {
		return e
	}
	log := loggerFrom(c)
	switch {
	case errors.Is(err, userphone.ErrUnavailable):
		log.Warn("database unavailable", "request_id", requestID(c), "err", err)
		return &userphone.Error{Code: userphone.CodeServiceUnavailable,
			Detail: "The database cannot be reached; try again shortly.", RetryAfter: unavailableRetryAfter}
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		log.Info("request cancelled by the client", "request_id", requestID(c))
	default:
		log.Error("internal error", "request_id", requestID(c), "err", err)
	}
	return &userphone.Error{Code: userphone.CodeInternal,
		Detail: "Something unexpected happened; the request id names it in the server's log."}
}

// writeError answers with a JSON:API error document. It is the only writer
// of error responses, for handlers, middleware and the router alike.
func writeError(c *gin.Context, err error) {
	e := publicError(c, err)
	kind, ok := errorKinds[e.Code]
	if !ok {
		kind = errorKinds[userphone.CodeInternal]
	}
	doc := api.Error{
		Id:     requestID(c),
		Status: strconv.Itoa(kind.status),
		Code:   api.ErrorCode(e.Code),
		Title:  kind.title,
	}
	if e.Detail != "" {
		doc.Detail = &e.Detail
	}
	if e.Pointer != "" || e.Parameter != "" {
		doc.Source = &struct {
			Parameter *string `json:"parameter,omitempty"`
			Pointer   *string `json:"pointer,omitempty"`
		}{}
		if e.Pointer != "" {
			doc.Source.Pointer = &e.Pointer
		}
		if e.Parameter != "" {
			doc.Source.Parameter = &e.Parameter
		}
	}
	if e.RemainingAttempts != nil {
		doc.Meta = &api.Error_Meta{RemainingAttempts: e.RemainingAttempts}
	}
	if kind.status == http.StatusTooManyRequests || kind.status == http.StatusServiceUnavailable {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	c.Set(errorCodeKey, string(e.Code))
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
	w.Header().Set("Content-Type", "application/vnd.api+json")
}

func loggerFrom(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(loggerKey); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}
