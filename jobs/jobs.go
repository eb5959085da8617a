// Package jobs owns the durable work of the service, on River in the
// service's own database: sending each message after the transaction that
// announced it commits, retrying it with backoff, and the periodic expiry
// sweep and retention purge, which run once per cluster.
package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/store"
)

// Config tunes the queue. DefaultConfig gives every field its default,
// with the reason next to it.
type Config struct {
	// Workers is how many messages one replica sends at once; 0 makes an
	// API-only replica that inserts jobs but works none, and
	// WorkersForDialect picks the dialect's default.
	Workers int
	// MaxAttempts is how often a message is tried before the change is
	// marked as failed delivery.
	MaxAttempts int
	// FirstRetry is the wait after the first failure; it doubles with each
	// further one, with jitter.
	FirstRetry time.Duration
	// Retention is how long finished changes are kept.
	Retention time.Duration
	// PollInterval is how often an idle replica looks for new jobs.
	PollInterval time.Duration
	// RescueAfter is how long a send may stay "running" before the job is
	// taken for orphaned (its replica was killed) and handed to another
	// replica at once. It must exceed JobTimeout. The cluster's leader
	// looks every 30 s (River's fixed interval), so an orphan is picked up
	// within RescueAfter + 30 s.
	RescueAfter time.Duration
	Log         *slog.Logger
}

// DefaultConfig is the queue's configuration unless an operator says
// otherwise.
func DefaultConfig() Config {
	return Config{
		Workers:      WorkersForDialect,
		MaxAttempts:  DefaultMaxAttempts,
		FirstRetry:   DefaultFirstRetry,
		Retention:    DefaultRetention,
		PollInterval: DefaultPollInterval,
		RescueAfter:  DefaultRescueAfter,
	}
}

// WorkersForDialect, as Config.Workers, picks the number of workers by
// the database: sends wait on providers (a few hundred ms each), not the
// CPU, so a replica on PostgreSQL sends PostgresWorkers at once, about a
// hundred SMS a second through a real provider; SQLite's pool has 4
// connections, and SQLiteWorkers leave it room to answer requests.
const (
	WorkersForDialect = -1
	PostgresWorkers   = 32
	SQLiteWorkers     = 4
)

// Database is what the queue needs of the store: its dialect, and the
// pools under it, in which the queue keeps its own tables: PostgreSQL's
// pgx pool (nil on SQLite) and the database/sql one.
type Database interface {
	Dialect() store.Dialect
	SQLDB() *sql.DB
	Pool() *pgxpool.Pool
}

const (
	// DefaultMaxAttempts with a 10 s first retry spans about 1.5 h of
	// backoff: long enough to ride out a provider's outage, short enough
	// that the user still waits for the message.
	DefaultMaxAttempts = 10
	DefaultFirstRetry  = 10 * time.Second
	// DefaultRetention keeps finished changes for a month of support
	// questions, then forgets the numbers.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultPollInterval: on PostgreSQL an insert's NOTIFY wakes the
	// workers at once and polling is the fallback; SQLite cannot LISTEN, so
	// an idle replica polls. A user waits for the SMS; 200 ms costs one
	// indexed query.
	DefaultPollInterval = 200 * time.Millisecond
	// fetchCooldown is the least time between two fetches of a busy
	// replica. River fetches at most one job per free worker, so this
	// bounds a replica's sends to workers/fetchCooldown a second: River's
	// default of 100 ms held 4 workers to 40 messages a second under load.
	// 5 ms allows 800, and costs at most 200 small queries a second, only
	// while jobs keep coming.
	fetchCooldown = 5 * time.Millisecond
	// JobTimeout cuts off a send that hangs; it is then retried. Providers
	// answer within seconds, and SMTP's per-command timeout is cut short
	// by it too.
	JobTimeout = 20 * time.Second
	// DefaultRescueAfter: a little over JobTimeout, so that a live send is
	// never taken for an orphan; with the leader's 30 s interval an orphan
	// is picked up within 55 s.
	DefaultRescueAfter = JobTimeout + 5*time.Second
	// riverMigrationLock names the advisory lock of the job queue's
	// migrations ("userphone river migrate", in ASCII, as a number).
	riverMigrationLock int64 = 0x757072697665726d
	// maxRetryDelay caps the backoff.
	maxRetryDelay = time.Hour
	// sweepInterval is how often open changes past their limit are closed.
	sweepInterval = time.Minute
	purgeInterval = time.Hour
)

// Flow is what the workers need of the change flow.
type Flow interface {
	// Compose builds the message; current is false when a newer message
	// or the change's end has made it stale, and it must not be sent.
	Compose(ctx context.Context, m userphone.Outgoing) (msg userphone.Message, current bool, err error)
	// DeliveryFailed ends the change that m belongs to.
	DeliveryFailed(ctx context.Context, m userphone.Outgoing, reason string) error
	SweepExpired(ctx context.Context) (int64, error)
	Purge(ctx context.Context, olderThan time.Duration) (int64, error)
}

// Queue inserts jobs in the callers' transactions and, unless it is
// API-only, works them.
type Queue struct {
	st     Database
	cfg    Config
	log    *slog.Logger
	db     *sql.DB
	client riverClient
	// set by Start, read by the workers
	flow    Flow
	sender  userphone.Sender
	started bool
}

// New sets up the queue on the store's database. It does not start work.
// A zero field of cfg takes its DefaultConfig value.
func New(st Database, cfg Config) (*Queue, error) {
	cfg = withDefaults(cfg, st.Dialect())
	if cfg.RescueAfter <= JobTimeout {
		return nil, fmt.Errorf("jobs: the rescue delay %v must exceed the job timeout %v, or live sends would be taken for orphans", cfg.RescueAfter, JobTimeout)
	}
	log := logs.OrDiscard(cfg.Log)
	q := &Queue{cfg: cfg, log: log, db: st.SQLDB(), st: st}
	workers := river.NewWorkers()
	river.AddWorker(workers, &sendWorker{q: q})
	river.AddWorker(workers, &sweepWorker{q: q})
	river.AddWorker(workers, &purgeWorker{q: q})
	rc := &river.Config{
		Workers:              workers,
		MaxAttempts:          cfg.MaxAttempts,
		RetryPolicy:          backoff{first: cfg.FirstRetry, rescueAfter: cfg.RescueAfter},
		FetchPollInterval:    cfg.PollInterval,
		FetchCooldown:        min(cfg.PollInterval, fetchCooldown),
		JobTimeout:           JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		Logger:               log,
	}
	if cfg.Workers > 0 {
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		rc.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(sweepInterval),
				func() (river.JobArgs, *river.InsertOpts) { return sweepArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(purgeInterval),
				func() (river.JobArgs, *river.InsertOpts) { return purgeArgs{}, nil }, &river.PeriodicJobOpts{RunOnStart: true}),
		}
	}
	var err error
	if st.Dialect() == store.Postgres {
		q.client, err = newRiverClient(riverpgxv5.New(st.Pool()), rc, store.PgxTxOf, log)
	} else {
		q.client, err = newRiverClient(riversqlite.New(st.SQLDB()), rc, store.SQLTxOf, log)
	}
	if err != nil {
		return nil, fmt.Errorf("set up the job queue: %w", err)
	}
	return q, nil
}

func withDefaults(cfg Config, dialect store.Dialect) Config {
	def := DefaultConfig()
	if cfg.Workers == WorkersForDialect {
		cfg.Workers = PostgresWorkers
		if dialect == store.SQLite {
			cfg.Workers = SQLiteWorkers
		}
	}
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, def.MaxAttempts)
	cfg.FirstRetry = cmp.Or(cfg.FirstRetry, def.FirstRetry)
	cfg.Retention = cmp.Or(cfg.Retention, def.Retention)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, def.PollInterval)
	cfg.RescueAfter = cmp.Or(cfg.RescueAfter, def.RescueAfter)
	return cfg
}

// Migrate applies River's own migrations, beside the store's.
func (q *Queue) Migrate(ctx context.Context) error {
	// River's migrator takes no lock, and replicas that start together
	// would create its tables at once: on PostgreSQL one session-level
	// advisory lock lets one replica migrate while the others wait.
	if q.st.Dialect() == store.Postgres {
		conn, err := q.st.SQLDB().Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate the job queue's tables: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", riverMigrationLock); err != nil {
			return fmt.Errorf("lock the job queue's migration: %w", err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", riverMigrationLock)
		}()
	}
	if err := q.client.migrate(ctx); err != nil {
		return fmt.Errorf("migrate the job queue's tables: %w", err)
	}
	return nil
}

// Start begins working jobs with flow and sender, unless the queue is
// API-only.
func (q *Queue) Start(ctx context.Context, flow Flow, sender userphone.Sender) error {
	q.flow, q.sender = flow, sender
	if q.cfg.Workers == 0 {
		q.log.Info("no job workers on this replica (USERPHONE_WORKERS=0): messages are sent by other replicas")
		return nil
	}
	if err := q.client.Start(ctx); err != nil {
		return err
	}
	q.started = true
	return nil
}

// Stop lets running jobs finish within ctx, then stops.
func (q *Queue) Stop(ctx context.Context) error {
	if !q.started {
		return nil
	}
	q.started = false
	return q.client.Stop(ctx)
}

// Enqueue inserts ms in tx, the store transaction of the state change that
// announces them, in one statement: the jobs commit or roll back with that
// change.
func (q *Queue) Enqueue(ctx context.Context, tx userphone.Tx, ms ...userphone.Outgoing) error {
	args := make([]river.JobArgs, len(ms))
	for i, m := range ms {
		args[i] = sendArgs{Outgoing: m}
	}
	return q.client.insertIn(ctx, tx, args...)
}

// backoff waits first × 2^(n-1) after the n-th failure, capped, with up to
// ±20 % jitter so that retries after an outage do not arrive together.
//
// A job rescued from a killed replica runs again at once: it did not fail,
// and its user is waiting. River's rescuer asks for the retry time of a job
// that has been running for longer than rescueAfter, which no live job can
// (JobTimeout is shorter).
type backoff struct{ first, rescueAfter time.Duration }

func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	if b.rescueAfter > 0 && job.AttemptedAt != nil && time.Since(*job.AttemptedAt) >= b.rescueAfter {
		return time.Now()
	}
	n := max(len(job.Errors), 1)
	d := b.first
	for i := 1; i < n && d < maxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, maxRetryDelay)
	jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(d))
	return time.Now().Add(d + jitter)
}

// WaitIdle returns once no job is waiting to run or running, or when ctx
// ends. Jobs waiting for a retry do not count. Tests and tools use it to
// see the effects of what they just did.
func (q *Queue) WaitIdle(ctx context.Context) error {
	params := river.NewJobListParams().States(rivertype.JobStateAvailable, rivertype.JobStateRunning).First(1)
	for {
		res, err := q.client.JobList(ctx, params)
		if err != nil {
			return err
		}
		if len(res.Jobs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Queued returns the messages waiting to be sent (due, waiting for a
// retry, or scheduled), oldest first: what an API-only replica has queued
// for the others, for tools and tests that read it.
func (q *Queue) Queued(ctx context.Context) ([]userphone.Outgoing, error) {
	params := river.NewJobListParams().Kinds(sendArgs{}.Kind()).States(waitingStates...).First(10_000)
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("list the waiting messages: %w", err)
	}
	out := make([]userphone.Outgoing, 0, len(res.Jobs))
	for _, j := range res.Jobs {
		var a sendArgs
		if err := json.Unmarshal(j.EncodedArgs, &a); err != nil {
			return nil, fmt.Errorf("read waiting message %d: %w", j.ID, err)
		}
		out = append(out, a.Outgoing)
	}
	return out, nil
}

// waitingStates are those of a message not yet sent nor being sent.
var waitingStates = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStateRetryable, rivertype.JobStateScheduled}

// backlogQuery counts the messages waiting to be sent; the same SQL on
// both dialects, with no parameters, so no placeholder style matters.
var backlogQuery = "SELECT COUNT(*) FROM river_job WHERE kind = '" + sendArgs{}.Kind() + "' AND state IN ('" +
	string(waitingStates[0]) + "', '" + string(waitingStates[1]) + "', '" + string(waitingStates[2]) + "')"

// Backlog tells how many messages wait to be sent (due, waiting for a
// retry, or scheduled), and since when the oldest one that is due has
// waited for a worker: the zero time when none is due. Metrics read it on
// every scrape: two queries that read only the waiting jobs, of which a
// healthy queue has few; ctx bounds them. Every replica sees the whole
// cluster's queue.
func (q *Queue) Backlog(ctx context.Context) (waiting int, oldestDue time.Time, err error) {
	if err := q.db.QueryRowContext(ctx, backlogQuery).Scan(&waiting); err != nil {
		return 0, time.Time{}, fmt.Errorf("count the waiting messages: %w", err)
	}
	// A job is due from its scheduled time on, whether River has moved it
	// to available yet or not.
	params := river.NewJobListParams().Kinds(sendArgs{}.Kind()).States(waitingStates...).
		OrderBy(river.JobListOrderByScheduledAt, river.SortOrderAsc).First(1)
	res, err := q.client.JobList(ctx, params)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("find the oldest waiting message: %w", err)
	}
	if len(res.Jobs) > 0 && !res.Jobs[0].ScheduledAt.After(time.Now()) {
		oldestDue = res.Jobs[0].ScheduledAt
	}
	return waiting, oldestDue, nil
}
