package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone/gen/api"
)

// Keys of values that the middleware leaves on the gin context.
const (
	requestIDKey   = "userphone.request_id"
	operationIDKey = "userphone.operation_id"
	subjectKey     = "userphone.subject"
	errorCodeKey   = "userphone.error_code"
	loggerKey      = "userphone.logger"
)

// validRequestID accepts the ids that proxies and tracing systems send,
// and nothing that could forge or break a log line.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestIDs takes a valid incoming X-Request-Id or makes one, and returns
// it on every response, so a caller can quote it and an operator find it.
func requestIDs(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !validRequestID.MatchString(id) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-Id", id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// accessLog writes one line per request. It names the user by the token's
// subject and never logs a header, query or body, which hold tokens and
// codes.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Set(loggerKey, log)
		c.Next()
		attrs := []any{
			"request_id", requestID(c),
			"method", c.Request.Method,
			"route", c.FullPath(),
			"status", c.Writer.Status(),
			"duration", time.Since(start),
		}
		if op := c.GetString(operationIDKey); op != "" {
			attrs = append(attrs, "operation_id", op)
		}
		if sub := c.GetString(subjectKey); sub != "" {
			attrs = append(attrs, "sub", sub)
		}
		if code := c.GetString(errorCodeKey); code != "" {
			attrs = append(attrs, "error_code", code)
		}
		log.Info("request", attrs...)
	}
}

// recovered turns a panic into 501 internal-error carrying the request id,
// and logs the panic with that id.
func recovered(c *gin.Context, p any) {
	loggerFrom(c).Error("panic", "request_id", requestID(c), "panic", fmt.Sprint(p))
	writeError(c, fmt.Errorf("panic: %v", p))
}

// securityHeaders suits both the JSON API and the confirmation pages:
// responses hold personal data and one-time links, so nothing is cached,
// sniffed, framed or leaked through a Referer.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Next()
}

func notFound(c *gin.Context) {
	writeError(c, httpErrorf(api.ErrorCodeNotFound, "There is no route %s %s; see /openapi.yaml for the API.", c.Request.Method, c.Request.URL.Path))
}

func methodNotAllowed(c *gin.Context) {
	writeError(c, httpErrorf(api.ErrorCodeMethodNotAllowed, "%s is not allowed on %s; see /openapi.yaml for the methods.", c.Request.Method, c.Request.URL.Path))
}

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// htmlCharset names the charset of the HTML pages: the generated handlers
// send "text/html" alone, and a browser left to guess the charset of a
// page may guess one that turns text into markup.
func htmlCharset(c *gin.Context) {
	c.Writer = &charsetWriter{ResponseWriter: c.Writer}
	c.Next()
}

type charsetWriter struct{ gin.ResponseWriter }

func (w *charsetWriter) WriteHeader(code int) {
	if h := w.Header(); h.Get("Content-Type") == "text/html" {
		h.Set("Content-Type", "text/html; charset=utf-8")
	}
	w.ResponseWriter.WriteHeader(code)
}
