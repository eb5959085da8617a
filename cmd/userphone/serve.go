package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/pace/userphone/app"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
)

// serve runs the service until ctx ends: the outside world from the
// configuration (providers, token verification, metrics), the service
// assembled by app.New, its database migrated, its workers started, its
// API served; then a graceful shutdown.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := checkServe(cfg); err != nil {
		return err
	}
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
	logTestNumbers(cfg.App.Flow, log, time.Now())
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
	if err := a.ClaimSecret(ctx); errors.Is(err, app.ErrSecretMismatch) {
		return &settingError{"USERPHONE_SECRET", "differs from the secret the database was set up with; every replica must use the same one (to change it on purpose, stop every replica and run `userphone rotate-secret` with the new one: docs/OPERATIONS.md)"}
	} else if err != nil {
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

// logTestNumbers says, at each start, how many test numbers there are and
// when they end; never their codes.
func logTestNumbers(f flow.Config, log *slog.Logger, now time.Time) {
	n := len(f.TestNumbers)
	switch {
	case n == 0:
	case f.TestNumbersUntil.IsZero():
		log.Warn("test numbers on (USERPHONE_TEST_NUMBERS): their changes send no SMS, their fixed codes verify them; they have no end date (USERPHONE_TEST_NUMBERS_UNTIL)", "test_numbers", n)
	case !f.TestNumbersOver(now):
		log.Warn("test numbers on (USERPHONE_TEST_NUMBERS): their changes send no SMS, their fixed codes verify them", "test_numbers", n, "until", f.TestNumbersUntil.Format(time.RFC3339))
	default:
		log.Warn("the test numbers have ended (USERPHONE_TEST_NUMBERS_UNTIL): requests for them are refused; renew the date or remove USERPHONE_TEST_NUMBERS", "test_numbers", n, "until", f.TestNumbersUntil.Format(time.RFC3339))
	}
}

// checkServe refuses the settings that would serve unsafely: dev sign-in
// where others than the developer may reach it, and replicas that could
// each make a secret of their own.
func checkServe(c config) error {
	onSQLite := c.App.Store.DatabaseURL == ""
	if c.Auth.Issuer == "" && !c.Dev && !(onSQLite && loopbackAddr(c.Addr)) {
		return &settingError{"USERPHONE_OIDC_ISSUER", "is not set, and dev sign-in (tokens from `userphone token`) runs only on the embedded SQLite database with a loopback USERPHONE_ADDR; set USERPHONE_OIDC_ISSUER, or USERPHONE_DEV=1 to run dev sign-in here on purpose"}
	}
	if !onSQLite && c.App.Flow.Secret == nil && !c.Dev {
		return &settingError{"USERPHONE_SECRET", "must be set with PostgreSQL: replicas share the database, and secrets each made its own would send codes the others refuse; make one with `openssl rand -hex 32` for every replica (or set USERPHONE_DEV=1 for one dev replica)"}
	}
	return nil
}

// loopbackAddr reports whether addr listens on this machine only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// rotateSecret records the configured secret as the database's, in place
// of the old one: the deliberate step of changing the secret. Every
// replica must be stopped first and started with the new secret; pending
// codes and links stop working.
func rotateSecret(ctx context.Context, cfg config, log *slog.Logger) error {
	var err error
	if cfg.App.Flow.Secret, err = loadSecret(cfg); err != nil {
		return err
	}
	cfg.App.Log = log
	a, err := app.New(cfg.App, app.Parts{})
	if err != nil {
		return err
	}
	defer a.Close()
	if err := requireMigrated(ctx, a.Store, cfg); err != nil {
		return err
	}
	if err := a.RotateSecret(ctx); err != nil {
		return err
	}
	log.Warn("the database now takes this secret: start every replica with it; codes and links sent before no longer work")
	return nil
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
