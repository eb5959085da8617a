// Package store owns the service's persistent state: the GORM models, the
// versioned migrations for PostgreSQL and SQLite, and the queries behind
// userphone.Store. Both dialects run the same queries; where they differ
// (row locks), the difference is kept here.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	sqlite "github.com/libtnb/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
)

//go:embed migrations
var migrations embed.FS

// Dialect names the database behind a Store.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Config says which database to open.
type Config struct {
	// DatabaseURL is a postgres:// URL; empty means a SQLite file in DataDir.
	DatabaseURL string
	DataDir     string
	Logger      *slog.Logger
	// MaxConns caps the PostgreSQL pool, which the job queue shares; 0
	// means DefaultMaxConns. SQLite always uses sqliteConns.
	MaxConns int
}

// CheckDatabaseURL accepts what Open can open: a postgres:// (or
// postgresql://) URL, or the empty string for the SQLite file.
func CheckDatabaseURL(databaseURL string) error {
	if databaseURL == "" || strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		return nil
	}
	return errors.New("must be a postgres:// URL, or empty for the SQLite file in the data directory")
}

// DialectOf tells which database a URL that CheckDatabaseURL accepts names.
func DialectOf(databaseURL string) Dialect {
	if databaseURL == "" {
		return SQLite
	}
	return Postgres
}

// sqliteConns is SQLite's pool: WAL lets readers run beside the one
// writer; more connections would only queue on its single write lock.
const sqliteConns = 4

// DefaultConfig is the store's configuration unless an operator says
// otherwise: the embedded SQLite file in ./data, which needs no set-up.
func DefaultConfig() Config {
	return Config{DataDir: DefaultDataDir, MaxConns: DefaultMaxConns}
}

// DefaultDataDir is relative to the working directory, so that a first
// `go run` keeps its files (the SQLite file, and beside it the dev key, the
// secret and the dev outbox) where its user can see and delete them.
const DefaultDataDir = "./data"

// DefaultMaxConns sizes a 2-core replica's pool: 16 keep 64 concurrent
// requests and 32 delivery workers busy, and PostgreSQL's default
// max_connections of 100 leaves room for five replicas and the tools.
const DefaultMaxConns = 16

// Store is the GORM-backed userphone.Store.
type Store struct {
	db    *gorm.DB
	sqlDB *sql.DB
	// pool is PostgreSQL's one pool of connections, under GORM (through
	// pgx's database/sql adapter) and the job queue alike; nil on SQLite.
	pool    *pgxpool.Pool
	dialect Dialect
	log     *slog.Logger
}

var _ userphone.Store = (*Store)(nil)

// Open sets up the connection pool for the configured database without
// connecting; Ping tells whether the database answers, and Migrate brings
// its schema up to date.
func Open(cfg Config) (*Store, error) {
	log := logs.OrDiscard(cfg.Logger)
	gcfg := &gorm.Config{
		Logger:         logger.Discard,
		TranslateError: true,
		NowFunc:        func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		// Every write happens inside an explicit transaction of ours.
		SkipDefaultTransaction: true,
		// Open only sets up the pool; the caller pings with a timeout and a
		// sentence of its own, and tests can open a store on a dead address.
		DisableAutomaticPing: true,
	}
	if err := CheckDatabaseURL(cfg.DatabaseURL); err != nil {
		return nil, fmt.Errorf("the database URL %w", err)
	}
	s := &Store{log: log, dialect: DialectOf(cfg.DatabaseURL)}
	var err error
	if s.dialect == SQLite {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create the data directory %s: %w", cfg.DataDir, err)
		}
		s.db, err = gorm.Open(sqlite.Open(sqliteDSN(filepath.Join(cfg.DataDir, "userphone.db"))), gcfg)
	} else {
		s.pool, err = openPool(cfg)
		if err == nil {
			s.db, err = gorm.Open(postgres.New(postgres.Config{Conn: stdlib.OpenDBFromPool(s.pool)}), gcfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open the %s database: %w", s.dialect, err)
	}
	if s.sqlDB, err = s.db.DB(); err != nil {
		return nil, err
	}
	if s.dialect == SQLite {
		s.sqlDB.SetMaxOpenConns(sqliteConns)
	}
	return s, nil
}

// openPool sets up PostgreSQL's pool of cfg.MaxConns connections, without
// connecting.
func openPool(cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx's error quotes the URL, password and all.
		return nil, errors.New("the database URL does not parse; check USERPHONE_DATABASE_URL")
	}
	pc.MaxConns = int32(cmp.Or(cfg.MaxConns, DefaultMaxConns))
	pc.MaxConnIdleTime = 5 * time.Minute
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// Pool is PostgreSQL's pool, which the job queue shares; nil on SQLite.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// sqliteDSN sets up the SQLite file for a server: WAL so reads do not block
// on writes, a busy timeout so writers queue instead of failing, and
// immediate transactions so a transaction takes the write lock at BEGIN and
// cannot deadlock upgrading a read lock later.
// sqliteDSN is the driver's URI for the file at path. The path is
// escaped: a "?" or "#" in a directory name would otherwise end it, and
// the database would be another file.
func sqliteDSN(path string) string {
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?_txlock=immediate" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)"
}

// Dialect tells which database the store uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB exposes the GORM handle, for tests and tools.
func (s *Store) DB() *gorm.DB { return s.db }

// SQLDB is the pool under the store, for the job queue, which keeps its
// tables in the same database.
func (s *Store) SQLDB() *sql.DB { return s.sqlDB }

// Close closes the connection pool.
func (s *Store) Close() error {
	err := s.sqlDB.Close()
	if s.pool != nil {
		s.pool.Close() // the adapter's Close leaves the pool open
	}
	return err
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", userphone.ErrUnavailable, err)
	}
	return nil
}

// Ready reports whether the store can serve: the database answers, and its
// schema is at least at the newest migration this binary knows. A newer
// schema is accepted: migrations only add (columns, tables, indexes), so
// the replicas a rolling upgrade has not reached yet keep serving after the
// first new one migrated.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	applied, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("%w: read the schema version: %v", userphone.ErrUnavailable, err)
	}
	if applied < latest {
		return fmt.Errorf("%w: the database schema is at migration %d, this binary needs %d; run `userphone migrate`",
			userphone.ErrUnavailable, applied, latest)
	}
	return nil
}

// Migrate applies the pending migrations of the store's dialect. On
// PostgreSQL an advisory lock keeps replicas that start together from
// migrating at the same time.
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.migrator()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate the %s database: %w", s.dialect, err)
	}
	for _, r := range results {
		s.log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// SchemaVersion returns the applied and the newest known migration version.
func (s *Store) SchemaVersion(ctx context.Context) (applied, latest int64, err error) {
	p, err := s.migrator()
	if err != nil {
		return 0, 0, err
	}
	// goose creates its version table when asked for the version: look
	// first, so that reading never writes (a probe, `userphone audit`).
	if s.db.WithContext(ctx).Migrator().HasTable(versionTable) {
		if applied, err = p.GetDBVersion(ctx); err != nil {
			return 0, 0, err
		}
	}
	sources := p.ListSources()
	if len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	return applied, latest, nil
}

// versionTable is where goose keeps the applied migrations.
const versionTable = "goose_db_version"

func (s *Store) migrator() (*goose.Provider, error) {
	dir, err := fs.Sub(migrations, "migrations/"+string(s.dialect))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithTableName(versionTable)}
	dialect := goose.DialectSQLite3
	if s.dialect == Postgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, s.sqlDB, dir, opts...)
}

// InTx runs fn in one transaction. A uniqueness conflict with a concurrent
// transaction comes back as userphone.ErrConflict, so the caller can retry.
func (s *Store) InTx(ctx context.Context, fn func(userphone.Tx) error) error {
	if s.pool != nil {
		return translate(s.inPgxTx(ctx, fn))
	}
	err := s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		return fn(&tx{db: db, dialect: s.dialect, locking: true})
	})
	return translate(err)
}

// inPgxTx runs fn in a transaction that pgx begins on one connection of
// the pool, with GORM's statements on the same connection: the job
// queue's pgx driver inserts into that transaction (PgxTxOf), and its
// insert's NOTIFY wakes the workers when it commits.
func (s *Store) inPgxTx(ctx context.Context, fn func(userphone.Tx) error) error {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var pc *pgx.Conn
	if err := conn.Raw(func(driverConn any) error {
		pc = driverConn.(*stdlib.Conn).Conn()
		return nil
	}); err != nil {
		return err
	}
	ptx, err := pc.Begin(ctx)
	if err != nil {
		return err
	}
	// Whatever fn did (an error, a panic), the connection goes back to the
	// pool out of the transaction; after a commit this does nothing.
	defer ptx.Rollback(context.WithoutCancel(ctx))
	db := s.db.Session(&gorm.Session{NewDB: true, Context: ctx})
	db.Statement.ConnPool = conn
	if err := fn(&tx{db: db, dialect: s.dialect, locking: true, pgxTx: ptx}); err != nil {
		return err
	}
	return ptx.Commit(ctx)
}

// Read runs fn in a read-only transaction, so that its reads see one
// snapshot: a verify that commits between two reads cannot make a user look
// as if they had no number at all. On SQLite a read-only transaction is a
// deferred one, which takes no write lock.
func (s *Store) Read(ctx context.Context, fn func(userphone.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	err := s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		return fn(&tx{db: db, dialect: s.dialect})
	}, opts)
	return translate(err)
}

// phoneOfQuery is one statement, so it reads one snapshot without a
// transaction: on PostgreSQL one round trip instead of four (BEGIN, two
// reads, COMMIT). At most one change per user is open (a partial unique
// index), so the join yields at most one row.
const phoneOfQuery = `SELECT u.id, u.email, u.locale, u.phone_number, u.phone_verified_at, u.created_at, u.updated_at,
  c.id, c.phone_number, c.status, c.email_token_hash, c.code_hash, c.attempts, c.sends, c.last_sent_at,
  c.cancel_reason, c.created_at, c.updated_at, c.expires_at, c.closed_at, c.version
FROM users u LEFT JOIN phone_changes c ON c.user_id = u.id AND c.status IN ?
WHERE u.id = ?`

func (s *Store) PhoneOf(ctx context.Context, userID string) (userphone.User, bool, *userphone.PhoneChange, error) {
	// Rows, not Scan: GORM's Scan formats the SQL with its arguments for a
	// log line on every call, a tenth of a GET's time.
	rows, err := s.db.WithContext(ctx).Raw(phoneOfQuery, userphone.OpenStatuses, userID).Rows()
	if err != nil {
		return userphone.User{}, false, nil, translate(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return userphone.User{}, false, nil, translate(rows.Err())
	}
	var u userRow
	var c struct {
		ID, PhoneNumber, Status, CancelReason *string
		EmailTokenHash, CodeHash              []byte
		Attempts, Sends, Version              *int
		LastSentAt, ClosedAt                  *time.Time
		CreatedAt, UpdatedAt, ExpiresAt       *time.Time
	}
	err = rows.Scan(&u.ID, &u.Email, &u.Locale, &u.PhoneNumber, &u.PhoneVerifiedAt, &u.CreatedAt, &u.UpdatedAt,
		&c.ID, &c.PhoneNumber, &c.Status, &c.EmailTokenHash, &c.CodeHash, &c.Attempts, &c.Sends, &c.LastSentAt,
		&c.CancelReason, &c.CreatedAt, &c.UpdatedAt, &c.ExpiresAt, &c.ClosedAt, &c.Version)
	if err != nil {
		return userphone.User{}, false, nil, translate(err)
	}
	if c.ID == nil {
		return u.domain(), true, nil, nil
	}
	change := changeRow{ID: *c.ID, UserID: u.ID, PhoneNumber: *c.PhoneNumber, Status: *c.Status,
		EmailTokenHash: c.EmailTokenHash, CodeHash: c.CodeHash, Attempts: *c.Attempts, Sends: *c.Sends,
		LastSentAt: c.LastSentAt, CancelReason: *c.CancelReason, CreatedAt: *c.CreatedAt, UpdatedAt: *c.UpdatedAt,
		ExpiresAt: *c.ExpiresAt, ClosedAt: c.ClosedAt, Version: *c.Version}
	return u.domain(), true, change.domain(), nil
}

// translate maps driver errors onto the domain's sentinel errors, and
// leaves domain errors as they are.
func translate(err error) error {
	if err == nil || userphone.AsError(err) != nil {
		return err
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return fmt.Errorf("%w: %v", userphone.ErrConflict, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01": // serialization failure, deadlock
			return fmt.Errorf("%w: %v", userphone.ErrConflict, err)
		case "57P01", "57P02", "57P03": // admin shutdown, crash shutdown, cannot connect now
			return fmt.Errorf("%w: %v", userphone.ErrUnavailable, err)
		}
	}
	// A connection that went away, or never came: the database restarts
	// or fails over, and the client should try again shortly. Class 08 is
	// SQL's "connection exception".
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || pgconn.SafeToRetry(err) ||
		(pgErr != nil && strings.HasPrefix(pgErr.Code, "08")) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %v", userphone.ErrUnavailable, err)
	}
	return err
}
