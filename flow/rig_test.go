package flow_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// The flow's rules are tested here, at the business layer, on a real
// database of each dialect: a rig is the flow on a migrated store, with a
// recording queue in place of River and a clock the test moves by hand.

const numberA, numberB = "+4915112345678", "+4915798765432"

// rigOptions change a rig from the tests' defaults: no limits, a fresh
// database, the rig's own clock.
type rigOptions struct {
	limits flow.Limits
	// store is the database to use, so that two rigs share one.
	store *store.Config
	// clock is the rig's clock; tests share one between rigs.
	clock *testenv.Clock
	// now replaces the clock, e.g. with one that ticks by itself.
	now func() time.Time
	// wrap puts something between the flow and the store: a race's hook
	// or a lost commit.
	wrap     func(userphone.Store) userphone.Store
	observer flow.Observer
	// configure changes the flow's other settings.
	configure func(*flow.Config)
}

type rig struct {
	t     testing.TB
	svc   *flow.Service
	store *store.Store
	clock *testenv.Clock
	queue *recordingQueue
	// logs is what the flow logged.
	logs *testenv.SyncBuffer
}

// forEachDialect runs fn on a fresh rig of every dialect.
func forEachDialect(t *testing.T, o rigOptions, fn func(t *testing.T, r *rig)) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, newRig(t, d, o))
		})
	}
}

func newRig(t testing.TB, d store.Dialect, o rigOptions) *rig {
	t.Helper()
	cfg := storetest.Config(t, d)
	if o.store != nil {
		cfg = *o.store
	}
	st, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, store: st, clock: o.clock, logs: &testenv.SyncBuffer{}}
	if r.clock == nil {
		r.clock = testenv.NewClock(time.Now())
	}
	now := o.now
	if now == nil {
		now = r.clock.Now
	}
	var below userphone.Store = st
	if o.wrap != nil {
		below = o.wrap(st)
	}
	r.queue = &recordingQueue{Store: below, t: t}
	fc := flow.DefaultConfig()
	fc.Secret, fc.Limits, fc.Observer = bytes.Repeat([]byte{1}, flow.MinSecretBytes), o.limits, o.observer
	fc.ConfirmURL = "http://userphone.test" + openapi.BasePath + openapi.ConfirmPath
	if o.configure != nil {
		o.configure(&fc)
	}
	if r.svc, err = flow.New(r.queue, r.queue, fc, slog.New(slog.NewTextHandler(r.logs, nil)), now); err != nil {
		t.Fatal(err)
	}
	r.queue.svc = r.svc
	return r
}

// recordingQueue is the flow's store and queue at once: it keeps what a
// transaction enqueues and, once that transaction has committed, delivers
// it at once, as a worker of the real queue would: composed by the flow,
// and sent only while it is current. What a rolled-back transaction
// enqueued is never sent.
type recordingQueue struct {
	userphone.Store
	t    testing.TB
	svc  *flow.Service
	mu   sync.Mutex
	sent []userphone.Message
}

// enqueuingTx is a transaction of the recording queue's store, with the
// messages it enqueued.
type enqueuingTx struct {
	userphone.Tx
	pending []userphone.Outgoing
}

func (q *recordingQueue) InTx(ctx context.Context, fn func(userphone.Tx) error) error {
	var tx *enqueuingTx
	err := q.Store.InTx(ctx, func(inner userphone.Tx) error {
		tx = &enqueuingTx{Tx: inner}
		return fn(tx)
	})
	if err != nil {
		return err
	}
	for _, m := range tx.pending {
		msg, current, err := q.svc.Compose(context.WithoutCancel(ctx), m)
		if err != nil {
			// The change committed; a worker would retry the send. A test
			// must hear of it, but the flow must not take it for its own.
			q.t.Errorf("compose %s after the commit: %v", m.Kind, err)
			continue
		}
		if current {
			q.mu.Lock()
			q.sent = append(q.sent, msg)
			q.mu.Unlock()
		}
	}
	return nil
}

func (q *recordingQueue) Enqueue(_ context.Context, tx userphone.Tx, ms ...userphone.Outgoing) error {
	et, ok := tx.(*enqueuingTx)
	if !ok {
		return errors.New("enqueue outside a transaction of the store")
	}
	et.pending = append(et.pending, ms...)
	return nil
}

// messages returns everything sent so far, oldest first.
func (r *rig) messages() []userphone.Message {
	r.queue.mu.Lock()
	defer r.queue.mu.Unlock()
	return append([]userphone.Message(nil), r.queue.sent...)
}

// messagesTo returns what was sent to a number or an address.
func (r *rig) messagesTo(to string) []userphone.Message {
	var out []userphone.Message
	for _, m := range r.messages() {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// code returns the code of the newest SMS to number.
func (r *rig) code(number string) string {
	r.t.Helper()
	msgs := r.messagesTo(number)
	if len(msgs) == 0 {
		r.t.Fatalf("no SMS to %s: %+v", number, r.messages())
	}
	code, ok := testservers.SMSCode(msgs[len(msgs)-1].Text)
	if !ok {
		r.t.Fatalf("no code in the SMS %q", msgs[len(msgs)-1].Text)
	}
	return code
}

// linkToken returns the token of the newest confirmation e-mail to addr.
func (r *rig) linkToken(addr string) string {
	r.t.Helper()
	msgs := r.messagesTo(addr)
	if len(msgs) == 0 || msgs[len(msgs)-1].Kind != flow.KindConfirmChange {
		r.t.Fatalf("no confirmation e-mail to %s: %+v", addr, r.messages())
	}
	token, ok := testservers.ConfirmLinkToken(msgs[len(msgs)-1].Text)
	if !ok {
		r.t.Fatalf("no link in the e-mail %q", msgs[len(msgs)-1].Text)
	}
	return token
}

func user(sub, email string) userphone.Identity {
	return userphone.Identity{Subject: sub, Email: email}
}

// from is a context of a request from the client address ip.
func from(ip string) context.Context {
	return userphone.WithRequestMeta(ctx, userphone.RequestMeta{ClientIP: ip})
}

// request asks for a change that the test expects to start or resend.
func (r *rig) request(id userphone.Identity, number string) userphone.Phone {
	r.t.Helper()
	p, created, err := r.svc.RequestChange(context.Background(), id, number)
	if err != nil || !created {
		r.t.Fatalf("request %s for %s: created %v, %v", number, id.Subject, created, err)
	}
	return p
}

// verifyNumber walks a first number through to verified.
func (r *rig) verifyNumber(id userphone.Identity, number string) {
	r.t.Helper()
	r.request(id, number)
	if _, err := r.svc.Verify(context.Background(), id, r.code(number)); err != nil {
		r.t.Fatalf("verify %s: %v", number, err)
	}
}

// check returns what the user's phone reads now.
func (r *rig) check(id userphone.Identity) (userphone.Phone, bool) {
	r.t.Helper()
	p, found, err := r.svc.Check(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return p, found
}

// trailHas reports whether the user's audit trail holds an event of kind.
func (r *rig) trailHas(userID string, kind userphone.EventKind) bool {
	r.t.Helper()
	var n int64
	if err := r.store.DB().Table("phone_events").Where("user_id = ? AND kind = ?", userID, string(kind)).Count(&n).Error; err != nil {
		r.t.Fatal(err)
	}
	return n > 0
}

// wantRefusal asserts that err is the domain error code and returns it.
func wantRefusal(t testing.TB, err error, code userphone.ErrorCode) *userphone.Error {
	t.Helper()
	e := userphone.AsError(err)
	if e == nil || e.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
	return e
}

// wantLimited asserts a refusal of a limit that says when to come back,
// and that sent nothing.
func (r *rig) wantLimited(err error, code userphone.ErrorCode, sentBefore int) *userphone.Error {
	r.t.Helper()
	e := wantRefusal(r.t, err, code)
	if e.RetryAfter < time.Second {
		r.t.Fatalf("%s says to retry after %v", code, e.RetryAfter)
	}
	if n := len(r.messages()); n != sentBefore {
		r.t.Fatalf("a refused request sent %d messages", n-sentBefore)
	}
	return e
}
