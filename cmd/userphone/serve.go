package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/pace/userphone/app"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
)

// serve runs the service until ctx ends: the outside world from the
// configuration (providers, token verification, metrics), the service
// assembled by app.New, its database migrated, its workers started, its
// API served; then a graceful shutdown.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	obs := newObservers(cfg)
	// Providers first: a bad setting must stop start-up before it touches
	// the database.
	sender, err := newSender(cfg, log, obs.delivery)
	if err != nil {
		return err
	}
	if cfg.App.Flow.Secret, err = loadSecret(cfg); err != nil {
		return err
	}
	verifier, err := newVerifier(ctx, cfg, log)
	if err != nil {
		return err
	}
	if cfg.LimitsOff {
		log.Warn("every abuse limit is off (USERPHONE_LIMITS=off): one client may send any number of SMS; for load tests only")
	}
	cfg.App.Log = log
	a, err := app.New(cfg.App, app.Parts{Verifier: verifier, Sender: sender, Metrics: obs.metrics})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := pingDatabase(ctx, a.Store, cfg); err != nil {
		return err
	}
	if err := a.Migrate(ctx); err != nil {
		return err
	}
	metricsSrv, err := obs.serve(cfg, log)
	if err != nil {
		return err
	}
	defer metricsSrv.Close() // last, so a scrape sees the shutdown
	if err := a.Start(ctx); err != nil {
		return err
	}
	return serveHTTP(ctx, cfg, a, log)
}

// serveHTTP serves the API until ctx ends, then lets the requests in
// flight and the jobs finish within the shutdown timeout.
func serveHTTP(ctx context.Context, cfg config, a *app.App, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return &settingError{"USERPHONE_ADDR", fmt.Sprintf("cannot listen on %s (%v); free the port or choose another address", cfg.Addr, err)}
	}
	srv := &http.Server{
		Handler: a.Handler,
		// Slow clients must not hold connections: headers within 5 s, a
		// whole (small) request within 15 s.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("userphone listening", "addr", ln.Addr().String(), "api", cfg.App.PublicURL+openapi.BasePath,
		"database", string(a.Store.Dialect()), "data_dir", cfg.App.Store.DataDir)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := a.Stop(shutdownCtx); err != nil {
		log.Warn("job workers did not stop in time; unfinished jobs run again after the next start", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// migrate applies the migrations of the store and the job queue, and exits.
func migrate(ctx context.Context, cfg config, log *slog.Logger) error {
	cfg.App.Store.Logger, cfg.App.Jobs.Log = log, log
	st, err := store.Open(cfg.App.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := pingDatabase(ctx, st, cfg); err != nil {
		return err
	}
	if err := app.MigrateDatabase(ctx, st, cfg.App.Jobs); err != nil {
		return err
	}
	v, _, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	log.Info("database is migrated", "database", string(st.Dialect()), "version", v)
	return nil
}

// pingDatabase says, in one sentence, what to do when the database cannot
// be reached.
func pingDatabase(ctx context.Context, st *store.Store, cfg config) error {
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := st.Ping(pingCtx)
	if err == nil {
		return nil
	}
	// One line: pgx's connect errors span several.
	reason := strings.Join(strings.Fields(err.Error()), " ")
	if st.Dialect() == store.Postgres {
		return fmt.Errorf("cannot reach PostgreSQL (%s); start it, or fix USERPHONE_DATABASE_URL", reason)
	}
	return fmt.Errorf("cannot open the SQLite file in %s (%s); check USERPHONE_DATA_DIR", cfg.App.Store.DataDir, reason)
}
