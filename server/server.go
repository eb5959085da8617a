// Package server owns the HTTP side of userphone: routing under the base
// path, authentication and kin-openapi validation of every request, the
// strict-server handlers that call the flow, the confirmation pages, the
// routes of the API reference page (package apidocs), and the mapping of
// errors to JSON:API documents, with the error codes only HTTP answers.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/server/apidocs"
)

// Config wires the server to the flow and to token verification.
type Config struct {
	Flow     Flow
	Verifier auth.Verifier
	// Log is where requests and errors are logged; nil discards.
	Log *slog.Logger
	// Ready reports whether the service can serve; nil means always.
	Ready func(context.Context) error
	// PublicURL is where clients reach this instance; the spec it serves
	// names it first (openapi.ServedBy). Empty serves the spec as it is.
	PublicURL string

	// IPRate is how many requests per second one client address may make
	// on average (a token bucket's refill rate), in this process; 0 turns
	// the limit off. IPBurst is the bucket's size, what a client may send
	// at once; below 1 it is one second's worth (IPRate, at least 1). /health/*
	// is never limited. DefaultConfig gives both their defaults.
	IPRate  float64
	IPBurst int
	// TrustedProxies lists the proxies (CIDRs or addresses) whose
	// X-Forwarded-For names the client: the right-most address in it that
	// is not a trusted proxy is the client. Empty trusts none; the TCP
	// peer is then the client, and X-Forwarded-For is ignored.
	TrustedProxies []string

	// Deprecation and Sunset go on every answer of an operation the spec
	// marks deprecated, as the Deprecation (RFC 9745) and Sunset (RFC 8594)
	// headers; a zero time sends no such header.
	Deprecation, Sunset time.Time
	// Observer is told of every answered request, for metrics; nil tells
	// no one and adds nothing to a request.
	Observer Observer
}

// DefaultConfig is the HTTP side's settings unless an operator says
// otherwise; the flow, the verifier and the rest are the caller's.
func DefaultConfig() Config {
	return Config{
		// A client app makes a handful of calls per screen; 20/s with
		// bursts of 40 never touches a person and slows a script to a crawl.
		IPRate:  20,
		IPBurst: 40,
		// When this service's first contract release (CHANGELOG 1.0.0)
		// marked PACE's phone operations deprecated, as PACE's spec does;
		// an operator sets PACE's own date if known.
		Deprecation: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC),
	}
}

// New returns the service's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	log := logs.OrDiscard(cfg.Log)
	engine, err := newEngine(cfg.TrustedProxies, log)
	if err != nil {
		return nil, err
	}
	v, err := newValidator(cfg.Verifier, deprecationHeaders(cfg.Deprecation, cfg.Sunset))
	if err != nil {
		return nil, err
	}
	middleware, err := commonMiddleware(cfg, log, v)
	if err != nil {
		return nil, err
	}
	engine.Use(middleware...)
	engine.NoRoute(notFound)
	engine.NoMethod(methodNotAllowed)
	routePublicPages(engine, cfg.Ready, cfg.PublicURL)
	routeAPI(engine, cfg.Flow, v)
	return engine, nil
}

// newEngine sets gin up to route exactly the spec's paths and to believe
// only the trusted proxies about the client's address.
func newEngine(trustedProxies []string, log *slog.Logger) (*gin.Engine, error) {
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	// Lets handlers read what middleware put on the request's context
	// through the *gin.Context that the strict server hands them.
	engine.ContextWithFallback = true
	engine.HandleMethodNotAllowed = true
	engine.RedirectTrailingSlash = false
	engine.RedirectFixedPath = false
	// The client's address, for the limit and the audit trail: the TCP
	// peer, unless that is a trusted proxy; then X-Forwarded-For, read from
	// the right and skipping trusted proxies. Nothing else is believed
	// (gin's defaults trust every peer and X-Real-IP as well).
	if err := engine.SetTrustedProxies(trustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	engine.ForwardedByClientIP = true
	engine.RemoteIPHeaders = []string{"X-Forwarded-For"}
	engine.TrustedPlatform = "" // an appengine build would trust X-Appengine-Remote-Addr
	for _, p := range trustedProxies {
		if prefix, err := netip.ParsePrefix(p); err == nil && prefix.Bits() == 0 {
			log.Warn("the trusted proxies include every address, so any client can choose the address it is limited and audited by", "trusted_proxy", p)
		}
	}
	return engine, nil
}

// commonMiddleware is what every request meets. Every response, a 429
// included, carries the request id and the security headers and gets its
// access-log line (and its metrics); the client limit comes next, so a
// refused request costs no token check, validation or database work.
func commonMiddleware(cfg Config, log *slog.Logger, v *validator) ([]gin.HandlerFunc, error) {
	middleware := []gin.HandlerFunc{requestIDs, securityHeaders, htmlCharset, accessLog(log)}
	if cfg.Observer != nil {
		middleware = append(middleware, observeRequests(cfg.Observer, operationIDs(v.doc, openapi.BasePath)))
	}
	middleware = append(middleware, gin.CustomRecoveryWithWriter(nil, recovered))
	switch {
	case cfg.IPRate < 0 || math.IsNaN(cfg.IPRate) || math.IsInf(cfg.IPRate, 0):
		return nil, fmt.Errorf("the per-client request rate %v is not a rate; 0 turns the limit off", cfg.IPRate)
	case cfg.IPRate > 0:
		burst := cfg.IPBurst
		if burst < 1 {
			burst = max(int(math.Ceil(cfg.IPRate)), 1)
		}
		middleware = append(middleware, newIPLimiter(cfg.IPRate, burst, nil).limitClients)
	}
	return middleware, nil
}

// routePublicPages routes the probes, the spec and the API reference page:
// public, outside the base path, so neither authentication nor validation
// runs for them. Probes and tools may use HEAD as well as GET. The
// reference page replaces securityHeaders' Content-Security-Policy and
// Cache-Control with its own; the other hardening headers stay.
func routePublicPages(engine *gin.Engine, readiness func(context.Context) error, publicURL string) {
	spec := openapi.ServedBy(strings.TrimSuffix(publicURL, "/") + openapi.BasePath)
	if publicURL == "" {
		spec = openapi.Spec
	}
	for path, h := range map[string]gin.HandlerFunc{
		"/health/live":   func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "live"}) },
		"/health/ready":  ready(readiness),
		openapi.SpecPath: func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", spec) },
	} {
		engine.GET(path, h)
		engine.HEAD(path, h)
	}
	for _, r := range apidocs.Routes() {
		h := gin.WrapH(r.Handler)
		engine.GET(r.Path, h)
		engine.HEAD(r.Path, h)
	}
}

// routeAPI routes the spec's operations to the handlers, through the
// generated wrapper. The validator runs as route middleware, before the
// wrapper binds parameters, so every request meets the spec's checks
// first; before it, the confirmation form is refused when another site
// posted it.
func routeAPI(engine *gin.Engine, flow Flow, v *validator) {
	strict := api.NewStrictHandlerWithOptions(&handlers{flow: flow}, nil, api.StrictGinServerOptions{
		RequestErrorHandlerFunc: func(c *gin.Context, err error) {
			// Validation has passed, so this is a body that kin-openapi and
			// the generated types read differently: still the caller's fault.
			writeError(c, requestError(err))
		},
		HandlerErrorFunc:         writeError,
		ResponseErrorHandlerFunc: writeError,
	})
	confirmForm := sameOriginOnly(http.MethodPost, openapi.BasePath+openapi.ConfirmPath)
	api.RegisterHandlersWithOptions(engine.Group("", confirmForm, v.handle), strict, api.GinServerOptions{
		BaseURL: openapi.BasePath,
		ErrorHandler: func(c *gin.Context, err error, _ int) {
			writeError(c, requestError(err))
		},
	})
}

// readyTimeout keeps a probe from hanging on a stuck database; probes
// usually give up after a few seconds themselves.
const readyTimeout = 2 * time.Second

func ready(check func(context.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if check != nil {
			ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
			defer cancel()
			if err := check(ctx); err != nil {
				// The reason may hold a database address: it goes to the
				// log, and the answer only says where to look.
				loggerFrom(c).Warn("not ready", "request_id", requestID(c), "reason", err)
				writeError(c, &userphone.Error{Code: userphone.CodeServiceUnavailable,
					Detail: "The service is not ready: the database, its schema or the token keys are not; the server's log says which.", RetryAfter: unavailableRetryAfter})
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}
