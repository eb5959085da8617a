// Package app owns the assembly of the whole service: the store, the job
// queue, the flow and the HTTP handler, wired to the outside world that the
// caller hands in (token verification, message delivery, metrics). The
// command and every test that needs the real service build it here, the
// same way.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/metrics"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/server"
	"github.com/pace/userphone/store"
)

// Config is the service's settings, grouped by the package they configure.
// DefaultConfig fills each group with its package's defaults.
type Config struct {
	Store store.Config
	Jobs  jobs.Config
	// Flow's ConfirmURL is derived from PublicURL when empty, and its
	// Observer is the metrics when there are any.
	Flow flow.Config
	// HTTP's Flow, Verifier, Log, Ready, Observer and PublicURL are set
	// by New.
	HTTP server.Config
	// PublicURL is where clients reach the service: the base of the link
	// in the confirmation e-mail.
	PublicURL string
	// Log is where the parts log; nil discards.
	Log *slog.Logger
}

// DefaultConfig is the whole service's configuration unless an operator
// says otherwise; each package gives its own defaults and their reasons.
func DefaultConfig() Config {
	return Config{
		Store: store.DefaultConfig(),
		Jobs:  jobs.DefaultConfig(),
		Flow:  flow.DefaultConfig(),
		HTTP:  server.DefaultConfig(),
	}
}

// Parts is the outside world of the service.
type Parts struct {
	// Verifier checks bearer tokens. When it has a Ready() error method
	// (an OIDC issuer whose keys load), readiness waits for it.
	Verifier auth.Verifier
	// Sender delivers the messages.
	Sender userphone.Sender
	// Metrics hears of the flow's steps, the requests, the queue and the
	// database pool; nil turns them off.
	Metrics *metrics.Metrics
	// Clock is the flow's clock; nil is the wall clock.
	Clock func() time.Time
	// WrapStore, if set, puts something between the flow and the store:
	// tests inject faults and races there.
	WrapStore func(userphone.Store) userphone.Store
}

// App is the assembled service. New builds it; Migrate brings the database
// up to date; Start starts the delivery workers; Handler serves HTTP; Stop
// and Close end it, in that order.
type App struct {
	Store   *store.Store
	Queue   *jobs.Queue
	Flow    *flow.Service
	Handler http.Handler
	sender  userphone.Sender
	// secretFingerprint names the flow's secret (flow.SecretFingerprint).
	secretFingerprint string
}

// New assembles the service without touching the database: Store.Ping or
// Migrate tell whether it answers.
func New(cfg Config, parts Parts) (*App, error) {
	log := logs.OrDiscard(cfg.Log)
	cfg.Store.Logger, cfg.Jobs.Log = log, log
	st, err := store.Open(cfg.Store)
	if err != nil {
		return nil, err
	}
	a := &App{Store: st, sender: parts.Sender, secretFingerprint: flow.SecretFingerprint(cfg.Flow.Secret)}
	if err := a.assemble(cfg, parts, log); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) assemble(cfg Config, parts Parts, log *slog.Logger) error {
	var err error
	if a.Queue, err = jobs.New(a.Store, cfg.Jobs); err != nil {
		return err
	}
	var flowStore userphone.Store = a.Store
	if parts.WrapStore != nil {
		flowStore = parts.WrapStore(a.Store)
	}
	if cfg.Flow.ConfirmURL == "" {
		cfg.Flow.ConfirmURL = cfg.PublicURL + openapi.BasePath + openapi.ConfirmPath
	}
	if parts.Metrics != nil {
		cfg.Flow.Observer, cfg.HTTP.Observer = parts.Metrics, parts.Metrics
		parts.Metrics.WatchQueue(a.Queue)
		parts.Metrics.WatchDB(a.Store.SQLDB())
		if pool := a.Store.Pool(); pool != nil {
			parts.Metrics.WatchPool(pool)
		}
	}
	if a.Flow, err = flow.New(flowStore, a.Queue, cfg.Flow, log, parts.Clock); err != nil {
		return err
	}
	cfg.HTTP.Flow, cfg.HTTP.Verifier, cfg.HTTP.Log, cfg.HTTP.PublicURL = a.Flow, parts.Verifier, log, cfg.PublicURL
	cfg.HTTP.Ready = a.readiness(parts.Verifier)
	a.Handler, err = server.New(cfg.HTTP)
	return err
}

// readiness is ready once the token keys (if the verifier loads any) and
// the database with its schema are.
func (a *App) readiness(verifier auth.Verifier) func(context.Context) error {
	keys, _ := verifier.(interface{ Ready() error })
	return func(ctx context.Context) error {
		if keys != nil {
			if err := keys.Ready(); err != nil {
				return err
			}
		}
		return a.Store.Ready(ctx)
	}
}

// Migrate applies the pending migrations of the store and of the job
// queue's tables.
func (a *App) Migrate(ctx context.Context) error {
	return migrateStoreAndQueue(ctx, a.Store, a.Queue)
}

// MigrateDatabase is Migrate without the rest of the service, for
// `userphone migrate`, which needs neither the flow's secret nor the
// providers.
func MigrateDatabase(ctx context.Context, st *store.Store, jobsCfg jobs.Config) error {
	q, err := jobs.New(st, jobsCfg)
	if err != nil {
		return err
	}
	return migrateStoreAndQueue(ctx, st, q)
}

func migrateStoreAndQueue(ctx context.Context, st *store.Store, q *jobs.Queue) error {
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	return q.Migrate(ctx)
}

// ErrSecretMismatch: the database was set up with another secret.
var ErrSecretMismatch = errors.New("the secret differs from the one this database was set up with")

// ClaimSecret records the fingerprint of the flow's secret in the database
// on the first start, and refuses a secret that differs from the recorded
// one: replicas with different secrets would each refuse the codes and
// links that the others send. Call it after Migrate.
func (a *App) ClaimSecret(ctx context.Context) error {
	recorded, err := a.Store.ClaimSecretFingerprint(ctx, a.secretFingerprint)
	if err != nil {
		return fmt.Errorf("read the secret's fingerprint: %w", err)
	}
	if recorded != a.secretFingerprint {
		return ErrSecretMismatch
	}
	return nil
}

// RotateSecret records the fingerprint of this secret in place of the old
// one. Replicas still running with the old secret keep running; stop them
// first (docs/OPERATIONS.md).
func (a *App) RotateSecret(ctx context.Context) error {
	return a.Store.ReplaceSecretFingerprint(ctx, a.secretFingerprint)
}

// Start starts the delivery workers, unless the queue is API-only. They
// outlive ctx's cancellation until Stop.
func (a *App) Start(ctx context.Context) error {
	return a.Queue.Start(context.WithoutCancel(ctx), a.Flow, a.sender)
}

// Stop lets the jobs in flight finish within ctx, then stops the workers;
// what does not finish runs again after the next start, as jobs stay in
// the database until done.
func (a *App) Stop(ctx context.Context) error {
	return a.Queue.Stop(ctx)
}

// Close closes the database pool; call it after Stop.
func (a *App) Close() error {
	return a.Store.Close()
}
