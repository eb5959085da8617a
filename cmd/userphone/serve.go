package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/server"
	"github.com/pace/userphone/store"
)

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	obs := newObservers(cfg)
	// Providers first: a bad setting must stop start-up before it touches
	// the database.
	sender, err := newSender(cfg, log, obs.delivery)
	if err != nil {
		return err
	}
	st, queue, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, err := loadSecret(cfg)
	if err != nil {
		return err
	}
	verifier, keysReady, err := newVerifier(ctx, cfg, log)
	if err != nil {
		return err
	}
	// A client sends one token with each request until it expires; checking
	// its signature every time would be half the cost of a request.
	verifier = auth.Cached(verifier, 0, 0, nil)
	svc, err := flow.New(st, queue, flow.Config{
		ProcessTTL:      cfg.ProcessTTL,
		ResendCooldown:  cfg.ResendCooldown,
		MaxCodeAttempts: cfg.MaxCodeAttempts,
		Secret:          secret,
		ConfirmURL:      cfg.PublicURL + server.BasePath + "/user/phone/confirm",
		Limits:          cfg.Limits,
		Observer:        obs.flow,
	}, log, nil)
	if err != nil {
		return err
	}
	handler, err := server.New(server.Config{Flow: svc, Verifier: verifier, Log: log, Observer: obs.server,
		IPRate: cfg.IPRate, IPBurst: cfg.IPBurst, TrustedProxies: cfg.TrustedProxies,
		Deprecation: cfg.Deprecation, Sunset: cfg.Sunset, Ready: func(ctx context.Context) error {
			if err := keysReady(); err != nil {
				return err
			}
			return st.Ready(ctx)
		}})
	if err != nil {
		return err
	}

	metricsSrv, err := obs.serve(cfg, st, queue, log)
	if err != nil {
		return err
	}
	defer metricsSrv.Close() // last, so a scrape sees the shutdown

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return &settingError{"USERPHONE_ADDR", fmt.Sprintf("cannot listen on %s (%v); free the port or choose another address", cfg.Addr, err)}
	}
	srv := &http.Server{
		Handler: handler,
		// Slow clients must not hold connections: headers within 5 s, a
		// whole (small) request within 15 s.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The workers outlive ctx (the signal) until the shutdown below stops them.
	if err := queue.Start(context.WithoutCancel(ctx), svc, sender); err != nil {
		return err
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("userphone listening", "addr", ln.Addr().String(), "api", cfg.PublicURL+server.BasePath,
		"database", string(st.Dialect()), "data_dir", cfg.DataDir)

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
	// Jobs in flight finish (or are retried after the next start: nothing
	// is lost, as they stay in the database until done).
	if err := queue.Stop(shutdownCtx); err != nil {
		log.Warn("job workers did not stop in time; unfinished jobs run again after the next start", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// newVerifier returns the token verifier: the OIDC issuer's when one is
// configured (its keys load in the background, and keysReady reports when
// they have), else the dev key's.
func newVerifier(ctx context.Context, cfg config, log *slog.Logger) (v auth.Verifier, keysReady func() error, err error) {
	policy := auth.Policy{
		Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience,
		RequiredLinkedIdentity: cfg.RequiredLinkedIdentity, LinkedIdentityClaim: cfg.LinkedIdentityClaim,
	}
	if cfg.OIDCIssuer == "" {
		keys, err := auth.LoadOrCreateDevKeys(cfg.DataDir)
		if err != nil {
			return nil, nil, err
		}
		log.Warn("running in dev mode: tokens are signed with the key in the data directory; " +
			"mint one with `userphone token`. Configure an OIDC issuer for production.")
		return keys.Verifier(policy, log, nil), func() error { return nil }, nil
	}
	oidc, err := auth.NewOIDC(auth.OIDCConfig{Policy: policy, Log: log})
	if err != nil {
		return nil, nil, &settingError{"USERPHONE_OIDC_ISSUER", err.Error()}
	}
	// The keys load and refresh until the process ends; an issuer that is
	// down at start-up leaves the service up but not ready.
	go oidc.Run(context.WithoutCancel(ctx))
	log.Info("tokens are verified against the OIDC issuer", "issuer", cfg.OIDCIssuer, "audience", cfg.OIDCAudience,
		"required_linked_identity", cfg.RequiredLinkedIdentity)
	return oidc, oidc.Ready, nil
}

func migrate(ctx context.Context, cfg config, log *slog.Logger) error {
	st, _, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	v, _, err := st.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	log.Info("database is migrated", "database", string(st.Dialect()), "version", v)
	return nil
}

// openStore opens and migrates the database, ours and the job queue's
// tables, with a sentence that says what to do when it cannot be reached.
func openStore(ctx context.Context, cfg config, log *slog.Logger) (*store.Store, *jobs.Queue, error) {
	st, err := store.Open(store.Config{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir, Logger: log, MaxConns: cfg.DatabaseMaxConns})
	if err != nil {
		return nil, nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := st.Ping(pingCtx); err != nil {
		st.Close()
		// One line: pgx's connect errors span several.
		reason := strings.Join(strings.Fields(err.Error()), " ")
		if st.Dialect() == store.Postgres {
			return nil, nil, fmt.Errorf("cannot reach PostgreSQL (%s); start it, or fix USERPHONE_DATABASE_URL", reason)
		}
		return nil, nil, fmt.Errorf("cannot open the SQLite file in %s (%s); check USERPHONE_DATA_DIR", cfg.DataDir, reason)
	}
	queue, err := jobs.New(st, jobs.Config{
		Workers: cfg.Workers, MaxAttempts: cfg.DeliveryMaxAttempts, FirstRetry: cfg.DeliveryFirstRetry,
		RescueAfter: cfg.DeliveryRescueAfter,
		Retention:   cfg.Retention, Log: log,
	})
	if err == nil {
		err = st.Migrate(ctx)
	}
	if err == nil {
		err = queue.Migrate(ctx)
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, queue, nil
}

// loadSecret returns USERPHONE_SECRET, or the secret kept in the data
// directory, made on first start. Replicas must share one secret, so
// production sets the variable.
func loadSecret(cfg config) ([]byte, error) {
	if cfg.Secret != nil {
		return cfg.Secret, nil
	}
	path := filepath.Join(cfg.DataDir, "secret")
	if b, err := os.ReadFile(path); err == nil {
		secret, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(secret) < secretBytes {
			return nil, fmt.Errorf("the secret file %s is damaged; delete it to make a new one (pending codes and links stop working)", path)
		}
		return secret, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	secret := make([]byte, secretBytes)
	_, _ = rand.Read(secret)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadSecret(cfg) // another process made it first
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(hex.EncodeToString(secret) + "\n"); err != nil {
		return nil, err
	}
	return secret, f.Sync()
}
