package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/pace/userphone"
	"github.com/pace/userphone/store"
)

// seedConfig is the seed command's flags.
type seedConfig struct {
	DatabaseURL string
	DataDir     string
	Users       int64
	Changes     int64
	Events      bool
	Batch       int
	Prefix      string
	Span        time.Duration
	Seed        uint64
}

func seedFlags(args []string, getenv func(string) string, stderr io.Writer) (seedConfig, error) {
	var c seedConfig
	fs := flag.NewFlagSet("userphone-load seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.DatabaseURL, "database-url", getenv("USERPHONE_DATABASE_URL"), "a postgres:// URL; empty means the SQLite file in -data-dir (default $USERPHONE_DATABASE_URL)")
	fs.StringVar(&c.DataDir, "data-dir", envOr(getenv, "USERPHONE_DATA_DIR", "./data"), "the data directory with the SQLite file (default $USERPHONE_DATA_DIR, else ./data)")
	fs.Int64Var(&c.Users, "users", 1000, "users to add, each with a verified number")
	fs.Int64Var(&c.Changes, "changes", 0, "phone changes to add, spread round robin over the new users")
	fs.BoolVar(&c.Events, "events", true, "write each change's audit trail to phone_events too, as the flow does")
	fs.IntVar(&c.Batch, "batch", 5000, "users or changes (with their events) per transaction")
	fs.StringVar(&c.Prefix, "prefix", "seed-", "user ids are this prefix and a number; a later seed with the same prefix continues the numbering")
	fs.DurationVar(&c.Span, "span", 29*24*time.Hour, "spread the changes over this much of the past; keep it under USERPHONE_RETENTION (720h), or the purge deletes the oldest at the server's start")
	fs.Uint64Var(&c.Seed, "seed", 1, "the random seed: the same seed, counts and prefix give the same rows")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case c.Users < 1 || c.Changes < 0:
		return c, fmt.Errorf("%w: --users must be at least 1 and --changes not negative", errUsage)
	case c.Batch < 100:
		return c, fmt.Errorf("%w: --batch must be at least 100", errUsage)
	case c.Span < 48*time.Hour:
		return c, fmt.Errorf("%w: --span must be at least 48h, to have room for expired changes", errUsage)
	case strings.ContainsAny(c.Prefix, `%_\`) || c.Prefix == "":
		return c, fmt.Errorf("%w: --prefix must be non-empty, without %%, _ or \\", errUsage)
	}
	return c, nil
}

func seedCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := seedFlags(args, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "userphone-load seed: %v\n", err)
		return 2
	}
	if err := seed(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "userphone-load seed: %v\n", err)
		return 1
	}
	return 0
}

// seed migrates the database and adds the users, changes and events in
// bulk: COPY on PostgreSQL, multi-row INSERTs on SQLite, a transaction per
// batch.
func seed(ctx context.Context, cfg seedConfig, out io.Writer) error {
	st, err := openMigratedStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	db := st.DB().WithContext(ctx)
	g, err := newGenerator(db, cfg)
	if err != nil {
		return err
	}
	sink, closeSink, err := newBulkSink(ctx, st, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer closeSink()
	where := string(st.Dialect())
	if st.Dialect() == store.SQLite {
		where += " in " + cfg.DataDir
	}
	fmt.Fprintf(out, "seeding %s: %d users (%s%d…), %d changes, events %v; %d users or changes a transaction\n",
		where, cfg.Users, cfg.Prefix, g.userOff, cfg.Changes, cfg.Events, cfg.Batch)
	if err := g.writeWithProgress(ctx, sink, out); err != nil {
		return err
	}
	if st.Dialect() == store.Postgres {
		// As autovacuum would soon: the planner should know the tables' sizes.
		t0 := time.Now()
		if err := db.Exec("ANALYZE users, phone_changes, phone_events").Error; err != nil {
			return err
		}
		fmt.Fprintf(out, "analyzed the tables in %s\n", time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// openMigratedStore opens the database and migrates it, as the server does.
func openMigratedStore(ctx context.Context, cfg seedConfig) (*store.Store, error) {
	st, err := store.Open(store.Config{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir})
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := st.Ping(pingCtx); err != nil {
		st.Close()
		return nil, fmt.Errorf("the database does not answer: %w", err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// newGenerator continues the numbering of an earlier seed with the same
// prefix, and refuses to run the number ranges over.
func newGenerator(db *gorm.DB, cfg seedConfig) (*generator, error) {
	g := &generator{cfg: cfg, now: time.Now().UTC().Truncate(time.Microsecond), n: cfg.Users}
	if err := db.Raw("SELECT count(*) FROM users WHERE id LIKE ?", cfg.Prefix+"%").Scan(&g.userOff).Error; err != nil {
		return nil, err
	}
	if err := db.Raw("SELECT count(*) FROM phone_changes WHERE user_id LIKE ?", cfg.Prefix+"%").Scan(&g.changeOff).Error; err != nil {
		return nil, err
	}
	if g.userOff+cfg.Users > numberRange || g.changeOff+cfg.Changes > numberRange {
		return nil, fmt.Errorf("the number ranges (+49 177 and +49 179, 8 digits) hold %d users and %d changes per prefix; use another --prefix", numberRange, numberRange)
	}
	return g, nil
}

// newBulkSink picks COPY on a connection of its own for PostgreSQL, and
// multi-row INSERTs on the store's pool for SQLite.
func newBulkSink(ctx context.Context, st *store.Store, databaseURL string) (bulkSink, func(), error) {
	if st.Dialect() != store.Postgres {
		return &sqliteSink{db: st.SQLDB(), stmts: map[string]string{}}, func() {}, nil
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, nil, err
	}
	return &pgSink{conn: conn}, func() { conn.Close(context.Background()) }, nil
}

// writeWithProgress writes the rows with a progress line a second, then
// the totals and the rate.
func (g *generator) writeWithProgress(ctx context.Context, sink bulkSink, out io.Writer) error {
	var counts seedCounts
	start := time.Now()
	stopProgress := seedProgress(out, &counts, start)
	err := g.write(ctx, sink, &counts)
	stopProgress()
	if err != nil {
		return err
	}
	took := time.Since(start)
	total := counts.users.Load() + counts.changes.Load() + counts.events.Load()
	fmt.Fprintf(out, "seeded %d users, %d changes, %d events: %d rows in %s, %.0f rows/s\n",
		counts.users.Load(), counts.changes.Load(), counts.events.Load(), total, took.Round(time.Millisecond), float64(total)/took.Seconds())
	return nil
}

type seedCounts struct {
	users, changes, events atomic.Int64
}

func seedProgress(out io.Writer, c *seedCounts, start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		lastAt := start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				total := c.users.Load() + c.changes.Load() + c.events.Load()
				fmt.Fprintf(out, "  %5.0fs  users %d  changes %d  events %d  %.0f rows/s\n", now.Sub(start).Seconds(),
					c.users.Load(), c.changes.Load(), c.events.Load(), float64(total-last)/now.Sub(lastAt).Seconds())
				last, lastAt = total, now
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// bulkSink writes batches of rows, each batch in one transaction.
type bulkSink interface {
	begin(ctx context.Context) error
	write(ctx context.Context, table string, cols []string, rows [][]any) error
	commit(ctx context.Context) error
	rollback(ctx context.Context)
}

// pgSink COPYs rows on one connection.
type pgSink struct {
	conn *pgx.Conn
	tx   pgx.Tx
}

func (s *pgSink) begin(ctx context.Context) (err error) {
	s.tx, err = s.conn.Begin(ctx)
	return err
}

func (s *pgSink) write(ctx context.Context, table string, cols []string, rows [][]any) error {
	_, err := s.tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
	return err
}

func (s *pgSink) commit(ctx context.Context) error { return s.tx.Commit(ctx) }
func (s *pgSink) rollback(ctx context.Context)     { _ = s.tx.Rollback(ctx) }

// sqliteSink inserts many rows per statement, within SQLite's limit on
// bound parameters.
type sqliteSink struct {
	db    *sql.DB
	tx    *sql.Tx
	stmts map[string]string // full-size statements by table
}

const sqliteMaxParams = 32766

func (s *sqliteSink) begin(ctx context.Context) (err error) {
	s.tx, err = s.db.BeginTx(ctx, nil)
	return err
}

func (s *sqliteSink) write(ctx context.Context, table string, cols []string, rows [][]any) error {
	per := min(sqliteMaxParams/len(cols), 500)
	args := make([]any, 0, per*len(cols))
	for len(rows) > 0 {
		n := min(per, len(rows))
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		q := insertSQL(table, cols, n)
		if n == per {
			if cached, ok := s.stmts[table]; ok {
				q = cached
			} else {
				s.stmts[table] = q
			}
		}
		if _, err := s.tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

func insertSQL(table string, cols []string, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(one)
	}
	return b.String()
}

func (s *sqliteSink) commit(context.Context) error { return s.tx.Commit() }
func (s *sqliteSink) rollback(context.Context)     { _ = s.tx.Rollback() }

// generator makes the rows. Every value is a function of the seed and the
// row's index, so that a user's row can name the number and time of its
// latest verified change without keeping the changes in memory.
//
// The changes go round robin over the new users: change j is the
// (j / users)-th change of user j % users, and a user's changes follow
// each other in time. Every user's first change verified the number it
// started with; later ones went through the e-mail step (the user had a
// verified number) and ended verified, cancelled or expired, and a user's
// last change may still be open: awaiting the e-mail confirmation or the
// code, created within the last 23 hours so that neither the expiry sweep
// nor a request sees it expired. The user's number is the one of their
// latest verified change.
type generator struct {
	cfg                seedConfig
	now                time.Time
	n                  int64 // users in this run
	userOff, changeOff int64
	pcg                rand.PCG
	rng                *rand.Rand
}

// change is one planned phone change.
type change struct {
	j, u, k            int64
	id                 string
	userID, number     string
	status             userphone.ChangeStatus
	viaEmail, codeStep bool
	emailToken, code   []byte
	attempts, sends    int
	cancelReason       string
	created, confirmed time.Time
	lastSent, closed   time.Time // zero: none
	updated, expires   time.Time
}

func (g *generator) userID(u int64) string { return fmt.Sprintf("%s%d", g.cfg.Prefix, g.userOff+u) }

// changesOf returns how many changes user u gets.
func (g *generator) changesOf(u int64) int64 {
	k := g.cfg.Changes / g.n
	if u < g.cfg.Changes%g.n {
		k++
	}
	return k
}

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// userStart is when user u signed up: in the older half of the span.
func (g *generator) userStart(u int64) time.Time {
	f := float64(mix(g.cfg.Seed^uint64(g.userOff+u)<<1)>>11) / (1 << 53)
	return g.now.Add(-g.cfg.Span + time.Duration(f*float64(g.cfg.Span/2)))
}

// plan makes change j; it draws from a generator seeded with the seed and
// the change's global index, so the same change comes out every time.
// The draws' order is part of that: a change reordered is another change.
func (g *generator) plan(j int64) change {
	if g.rng == nil {
		g.rng = rand.New(&g.pcg)
	}
	g.pcg.Seed(g.cfg.Seed, uint64(g.changeOff+j))
	r := g.rng
	c := change{j: j, u: j % g.n, k: j / g.n}
	c.userID = g.userID(c.u)
	c.number = fmt.Sprintf("+49179%08d", g.changeOff+j)
	id, _ := uuid.NewRandomFromReader(r2reader{r})
	c.id = id.String()
	last := c.k == g.changesOf(c.u)-1
	c.viaEmail = c.k > 0

	start := g.userStart(c.u)
	window := g.now.Sub(start)
	c.created = start.Add(time.Duration(float64(window) * (float64(c.k) + 0.2 + 0.6*r.Float64()) / float64(g.changesOf(c.u)+1)))
	c.status = drawStatus(r, c.k == 0, last)
	c.created, c.status = g.fitCreatedToStatus(r, c.created, c.status)
	c.expires = c.created.Add(24 * time.Hour)
	c.drawMessages(r)
	c.drawEnd(r)
	return c
}

// drawStatus: a user's first change verified the number they started
// with; only their last may still be open.
func drawStatus(r *rand.Rand, first, last bool) userphone.ChangeStatus {
	roll := r.Float64()
	switch {
	case first:
		return userphone.StatusVerified
	case last && roll < 0.10:
		return userphone.StatusAwaitingEmailConfirmation
	case last && roll < 0.20:
		return userphone.StatusAwaitingCode
	case roll < 0.55:
		return userphone.StatusVerified
	case roll < 0.80:
		return userphone.StatusCancelled
	}
	return userphone.StatusExpired
}

// fitCreatedToStatus moves an open change into the last 23 hours, so that
// neither the expiry sweep nor a request sees it expired, and makes an
// expired change too young to have expired a cancelled one; the time it
// returns has the database's precision.
func (g *generator) fitCreatedToStatus(r *rand.Rand, created time.Time, status userphone.ChangeStatus) (time.Time, userphone.ChangeStatus) {
	if status.Open() {
		created = g.now.Add(-time.Hour - time.Duration(r.Float64()*float64(22*time.Hour)))
	}
	if status == userphone.StatusExpired && created.After(g.now.Add(-25*time.Hour)) {
		status = userphone.StatusCancelled
	}
	return created.Truncate(time.Microsecond), status
}

// drawMessages draws the e-mail step (a token, the confirmation a little
// later) and whether the change got to the code, and counts the messages
// sent.
func (c *change) drawMessages(r *rand.Rand) {
	c.confirmed = c.created
	if c.viaEmail {
		c.emailToken = randBytes(r, 32)
		c.confirmed = c.created.Add(time.Duration(10+r.IntN(600)) * time.Second)
	}
	switch c.status {
	case userphone.StatusVerified, userphone.StatusAwaitingCode:
		c.codeStep = true
	case userphone.StatusCancelled, userphone.StatusExpired:
		c.codeStep = !c.viaEmail || r.Float64() < 0.5
	}
	c.lastSent = c.created
	c.sends = 1
	if c.viaEmail && c.codeStep {
		c.lastSent = c.confirmed
		c.sends = 2
	}
}

// drawEnd draws how the change ended (wrong codes, the cancel reason, when
// it closed), or the code hash of one still awaiting it, and sets the
// last update.
func (c *change) drawEnd(r *rand.Rand) {
	switch c.status {
	case userphone.StatusVerified:
		if r.Float64() < 0.15 {
			c.attempts = 1 + r.IntN(2)
		}
		c.closed = c.lastSent.Add(time.Duration(15+r.IntN(600)) * time.Second)
	case userphone.StatusCancelled:
		switch p := r.Float64(); {
		case c.codeStep && p < 0.25:
			c.cancelReason, c.attempts = userphone.CancelTooManyAttempts, 5
		case p < 0.45:
			c.cancelReason = userphone.CancelAlreadyVerified
		case p < 0.50:
			c.cancelReason = userphone.CancelDeliveryFailed + ": refused"
		default:
			c.cancelReason = userphone.CancelSuperseded
		}
		c.closed = c.lastSent.Add(time.Duration(60+r.IntN(6*3600)) * time.Second)
	case userphone.StatusExpired:
		c.closed = c.expires.Add(time.Duration(r.IntN(60)) * time.Second)
	case userphone.StatusAwaitingCode:
		c.code = randBytes(r, 32)
	}
	c.updated = c.lastSent
	if !c.closed.IsZero() {
		c.updated = c.closed
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// r2reader reads random bytes from r, for uuid.
type r2reader struct{ r *rand.Rand }

func (x r2reader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(x.r.Uint32())
	}
	return len(p), nil
}

// timePtr is nil for the zero time: a column left NULL.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// userRow is user u's row: their number is that of their latest verified
// change, or one of their own when they have no changes.
func (g *generator) userRow(u int64) []any {
	id := g.userID(u)
	start := g.userStart(u).Truncate(time.Microsecond)
	number := fmt.Sprintf("+49177%08d", g.userOff+u)
	verifiedAt := start.Add(3 * time.Minute)
	updated := verifiedAt
	if k := g.changesOf(u); k > 0 {
		updated = g.plan((k-1)*g.n + u).updated
		for ; k > 0; k-- {
			if c := g.plan((k-1)*g.n + u); c.status == userphone.StatusVerified {
				number, verifiedAt = c.number, c.closed
				break
			}
		}
	}
	locale := "de"
	if mix(uint64(g.userOff+u))%10 < 3 {
		locale = "en"
	}
	user := userphone.User{ID: id, Email: id + "@example.com", Locale: locale, PhoneNumber: number, PhoneVerifiedAt: &verifiedAt}
	return store.UserValues(user, start, updated)
}

// row is the change's row. Its version counts the writes the flow made:
// one per message sent and per wrong code, and the one that closed it.
func (c change) row() []any {
	version := c.sends + c.attempts
	if !c.closed.IsZero() {
		version++
	}
	return store.ChangeValues(&userphone.PhoneChange{
		ID: c.id, UserID: c.userID, PhoneNumber: c.number, Status: c.status,
		EmailTokenHash: c.emailToken, CodeHash: c.code, Attempts: c.attempts, Sends: c.sends,
		LastSentAt: timePtr(c.lastSent), CancelReason: c.cancelReason,
		CreatedAt: c.created, UpdatedAt: c.updated, ExpiresAt: c.expires, ClosedAt: timePtr(c.closed),
	}, version)
}

// events is the change's audit trail, as the flow writes it.
func (g *generator) events(c change, r *rand.Rand, rows [][]any) [][]any {
	ipHash := fmt.Sprintf("%016x%016x", mix(uint64(g.userOff+c.u)), mix(uint64(g.userOff+c.u)+1))
	add := func(at time.Time, kind userphone.EventKind, detail string) {
		reqID := fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
		rows = append(rows, store.EventValues(userphone.Event{At: at, Kind: kind, UserID: c.userID, ChangeID: c.id,
			PhoneNumber: c.number, RequestID: reqID, ClientIPHash: ipHash, Detail: detail}))
	}
	add(c.created, userphone.EventRequested, "")
	if c.viaEmail {
		add(c.created, userphone.EventEmailSent, "")
	}
	if c.codeStep {
		if c.viaEmail {
			add(c.confirmed, userphone.EventEmailConfirmed, "")
		}
		add(c.confirmed, userphone.EventSMSSent, "")
	}
	for i := range c.attempts {
		add(c.confirmed.Add(time.Duration(i+1)*10*time.Second), userphone.EventVerifyFailed, "")
	}
	switch c.status {
	case userphone.StatusVerified:
		add(c.closed, userphone.EventVerified, "")
	case userphone.StatusCancelled:
		add(c.closed, userphone.EventCancelled, c.cancelReason)
	case userphone.StatusExpired:
		add(c.closed, userphone.EventExpired, "sweep")
	}
	return rows
}

// seedBatch is one transaction's rows.
type seedBatch struct {
	users, changes, events [][]any
}

// write produces the rows in batches on one goroutine and writes them on
// another, so that making rows and the database's work overlap.
func (g *generator) write(ctx context.Context, sink bulkSink, counts *seedCounts) error {
	batches := make(chan seedBatch, 2)
	genCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(batches)
		send := func(b seedBatch) bool {
			select {
			case batches <- b:
				return true
			case <-genCtx.Done():
				return false
			}
		}
		if g.userBatches(send) {
			g.changeBatches(send)
		}
	}()
	for b := range batches {
		if err := writeBatch(ctx, sink, b); err != nil {
			return err
		}
		counts.users.Add(int64(len(b.users)))
		counts.changes.Add(int64(len(b.changes)))
		counts.events.Add(int64(len(b.events)))
	}
	return ctx.Err()
}

// userBatches hands the users' rows to send, a batch at a time; false
// when send refused one.
func (g *generator) userBatches(send func(seedBatch) bool) bool {
	size := int64(g.cfg.Batch)
	for u := int64(0); u < g.n; u += size {
		rows := make([][]any, 0, min(size, g.n-u))
		for i := u; i < min(u+size, g.n); i++ {
			rows = append(rows, g.userRow(i))
		}
		if !send(seedBatch{users: rows}) {
			return false
		}
	}
	return true
}

// changeBatches hands the changes' rows, with their events, to send, a
// batch at a time, until send refuses one.
func (g *generator) changeBatches(send func(seedBatch) bool) {
	size := int64(g.cfg.Batch)
	evRNG := rand.New(rand.NewPCG(g.cfg.Seed, uint64(g.changeOff)^0x5eed))
	for j := int64(0); j < g.cfg.Changes; j += size {
		var b seedBatch
		for i := j; i < min(j+size, g.cfg.Changes); i++ {
			c := g.plan(i)
			b.changes = append(b.changes, c.row())
			if g.cfg.Events {
				b.events = g.events(c, evRNG, b.events)
			}
		}
		if !send(b) {
			return
		}
	}
}

// writeBatch writes b in one transaction, the users before the changes
// that refer to them.
func writeBatch(ctx context.Context, sink bulkSink, b seedBatch) error {
	if err := sink.begin(ctx); err != nil {
		return err
	}
	users, changes, events := store.BulkUsers(), store.BulkChanges(), store.BulkEvents()
	err := writeIf(ctx, sink, users.Name, users.Columns, b.users)
	if err == nil {
		err = writeIf(ctx, sink, changes.Name, changes.Columns, b.changes)
	}
	if err == nil {
		err = writeIf(ctx, sink, events.Name, events.Columns, b.events)
	}
	if err == nil {
		err = sink.commit(ctx)
	}
	if err != nil {
		sink.rollback(ctx)
	}
	return err
}

func writeIf(ctx context.Context, sink bulkSink, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	return sink.write(ctx, table, cols, rows)
}
