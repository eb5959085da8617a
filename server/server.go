// Package server owns the HTTP side of userphone: routing under the base
// path, authentication and kin-openapi validation of every request, the
// strict-server handlers that call the flow, the confirmation pages, and
// the mapping of errors to JSON:API documents.
package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
)

// BasePath is where the API lives, as in the spec's servers URL, so PACE's
// documented requests work with only the host changed.
const BasePath = "/user/2021-2"

// Config wires the server to the flow and to token verification.
type Config struct {
	Flow     *flow.Service
	Verifier auth.Verifier
	Log      *slog.Logger
	// Ready reports whether the service can serve; nil means always.
	Ready func(context.Context) error
}

// New returns the service's HTTP handler.
func New(cfg Config) (http.Handler, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	// Lets handlers read what middleware put on the request's context
	// through the *gin.Context that the strict server hands them.
	engine.ContextWithFallback = true
	engine.HandleMethodNotAllowed = true
	engine.RedirectTrailingSlash = false
	engine.RedirectFixedPath = false
	engine.Use(requestIDs, accessLog(log), gin.CustomRecoveryWithWriter(nil, recovered), securityHeaders)
	engine.NoRoute(notFound)
	engine.NoMethod(methodNotAllowed)

	// Probes and tools may use HEAD as well as GET.
	for path, h := range map[string]gin.HandlerFunc{
		"/health/live":  func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "live"}) },
		"/health/ready": ready(cfg.Ready),
		"/openapi.yaml": func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openapi.Spec) },
	} {
		engine.GET(path, h)
		engine.HEAD(path, h)
	}

	v, err := newValidator(BasePath, cfg.Verifier)
	if err != nil {
		return nil, err
	}
	strict := api.NewStrictHandlerWithOptions(&handlers{flow: cfg.Flow, basePath: BasePath}, nil, api.StrictGinServerOptions{
		RequestErrorHandlerFunc: func(c *gin.Context, err error) {
			// Validation has passed, so this is a body that kin-openapi and
			// the generated types read differently: still the caller's fault.
			writeError(c, requestError(err))
		},
		HandlerErrorFunc:         writeError,
		ResponseErrorHandlerFunc: writeError,
	})
	// The validator runs as route middleware, before the generated wrapper
	// binds parameters, so every request meets the spec's checks first.
	api.RegisterHandlersWithOptions(engine.Group("", v.handle), strict, api.GinServerOptions{
		BaseURL: BasePath,
		ErrorHandler: func(c *gin.Context, err error, _ int) {
			writeError(c, requestError(err))
		},
	})
	return engine, nil
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
				writeError(c, fmt.Errorf("%w: %v", userphone.ErrUnavailable, err))
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}
