package flow_test

import (
	"bytes"
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// These tests put a second request exactly into the gap between two reads
// of the first, where a real race would have to land by chance.

// hookStore runs hook once, right after the named Tx method returns.
type hookStore struct {
	userphone.Store
	method string
	hook   func()
	once   sync.Once
}

func (s *hookStore) InTx(ctx context.Context, fn func(userphone.Tx) error) error {
	return s.Store.InTx(ctx, func(tx userphone.Tx) error { return fn(&hookTx{Tx: tx, s: s}) })
}

func (s *hookStore) Read(ctx context.Context, fn func(userphone.Tx) error) error {
	return s.Store.Read(ctx, func(tx userphone.Tx) error { return fn(&hookTx{Tx: tx, s: s}) })
}

func (s *hookStore) fire(method string) {
	if method == s.method && s.hook != nil {
		s.once.Do(s.hook)
	}
}

type hookTx struct {
	userphone.Tx
	s *hookStore
}

// SQLTx passes the job queue through to the real transaction.
func (t *hookTx) SQLTx() (*sql.Tx, bool) {
	return t.Tx.(interface{ SQLTx() (*sql.Tx, bool) }).SQLTx()
}

func (t *hookTx) ChangeByEmailToken(ctx context.Context, h []byte) (*userphone.PhoneChange, error) {
	c, err := t.Tx.ChangeByEmailToken(ctx, h)
	t.s.fire("ChangeByEmailToken")
	return c, err
}

func (t *hookTx) GetUser(ctx context.Context, id string) (userphone.User, bool, error) {
	u, ok, err := t.Tx.GetUser(ctx, id)
	t.s.fire("GetUser")
	return u, ok, err
}

// recorder is the outside world's phone and mailbox.
type recorder struct {
	mu   sync.Mutex
	sent []userphone.Message
	// settle waits until the queue has delivered what it can.
	settle func()
}

func (r *recorder) Send(_ context.Context, m userphone.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, m)
	return nil
}

func (r *recorder) last(t *testing.T) userphone.Message {
	r.settle()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sent) == 0 {
		t.Fatal("nothing was sent")
	}
	return r.sent[len(r.sent)-1]
}

func (r *recorder) count() int {
	r.settle()
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sent)
}

// newService runs the flow on st (base, possibly wrapped) with a real job
// queue on base that delivers to sent; configure changes the flow's
// settings from the tests' defaults.
func newService(t *testing.T, base *store.Store, st userphone.Store, sent *recorder, now func() time.Time, configure ...func(*flow.Config)) *flow.Service {
	queue, err := jobs.New(base, jobs.Config{Workers: 2, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := queue.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := flow.Config{
		ProcessTTL: 24 * time.Hour, ResendCooldown: time.Minute, MaxCodeAttempts: 5,
		Secret: bytes.Repeat([]byte{1}, 32), ConfirmURL: "http://userphone.test/confirm",
	}
	for _, f := range configure {
		f(&cfg)
	}
	svc, err := flow.New(st, queue, cfg, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := queue.Start(context.Background(), svc, sent); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { queue.Stop(context.Background()) })
	sent.settle = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := queue.WaitIdle(ctx); err != nil {
			t.Fatalf("queue did not settle: %v", err)
		}
	}
	return svc
}

const numberA, numberB = "+4915112345678", "+4915798765432"

// ticking is a clock that moves a minute per call, past every cool-down.
func ticking() func() time.Time {
	var mu sync.Mutex
	now := time.Now()
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Minute)
		return now
	}
}

func tokenOf(t *testing.T, m userphone.Message) string {
	i := bytes.Index([]byte(m.Text), []byte("token="))
	if i < 0 {
		t.Fatalf("no link in %q", m.Text)
	}
	end := i + len("token=")
	for end < len(m.Text) && m.Text[end] != '\n' && m.Text[end] != ' ' {
		end++
	}
	return m.Text[i+len("token=") : end]
}

func codeOf(m userphone.Message) string { return m.Text[:6] }

// withVerifiedNumberAndPendingChange gives alice numberA and a pending
// change to numberB, and returns the link's token.
func withVerifiedNumberAndPendingChange(t *testing.T, svc *flow.Service, sent *recorder) (userphone.Identity, string) {
	ctx := context.Background()
	alice := userphone.Identity{Subject: "alice", Email: "alice@example.com"}
	if _, _, err := svc.RequestChange(ctx, alice, numberA); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, alice, codeOf(sent.last(t))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.RequestChange(ctx, alice, numberB); err != nil {
		t.Fatal(err)
	}
	return alice, tokenOf(t, sent.last(t))
}

// On PostgreSQL a PUT can commit between Confirm's first, unlocked read of
// the link and its lock on the user. (SQLite's immediate transactions
// serialise the two whole requests, so the gap does not exist there.)
func TestConfirmDoesNotReviveAChangeCancelledInTheGap(t *testing.T) {
	base := storetest.New(t, store.Postgres)
	hooked := &hookStore{Store: base, method: "ChangeByEmailToken"}
	sent := &recorder{}
	svc := newService(t, base, hooked, sent, ticking())
	alice, token := withVerifiedNumberAndPendingChange(t, svc, sent)
	hooked.hook = func() {
		// The user takes it back: PUT of their verified number cancels the change.
		if _, created, err := svc.RequestChange(context.Background(), alice, numberA); err != nil || created {
			t.Errorf("cancelling PUT: created=%v err=%v", created, err)
		}
	}
	before := sent.count()
	conf, err := svc.Confirm(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if conf.State != flow.LinkUsed || sent.count() != before {
		t.Fatalf("confirm after the cancel: state %v, %d messages sent", conf.State, sent.count()-before)
	}
	p, _, _ := svc.Check(context.Background(), alice)
	if p.Pending != nil {
		t.Fatalf("the cancelled change is open again: %+v", p.Pending)
	}
}

func TestConfirmRefusesALinkReplacedInTheGap(t *testing.T) {
	base := storetest.New(t, store.Postgres)
	hooked := &hookStore{Store: base, method: "ChangeByEmailToken"}
	sent := &recorder{}
	svc := newService(t, base, hooked, sent, ticking())
	alice, token := withVerifiedNumberAndPendingChange(t, svc, sent)
	hooked.hook = func() {
		// A resend: a new link replaces the old one.
		if _, _, err := svc.RequestChange(context.Background(), alice, numberB); err != nil {
			t.Errorf("resend: %v", err)
		}
	}
	conf, err := svc.Confirm(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if conf.State != flow.LinkUnknown {
		t.Fatalf("the replaced link answered %v, want LinkUnknown", conf.State)
	}
	if m := sent.last(t); m.Channel != userphone.ChannelEmail {
		t.Fatalf("the replaced link sent a %s", m.Channel)
	}
}

// A verify that commits between Check's two reads must not make the user
// look as if they had no number.
func TestCheckSeesOneSnapshot(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			base := storetest.New(t, d)
			hooked := &hookStore{Store: base, method: "GetUser"}
			sent := &recorder{}
			svc := newService(t, base, hooked, sent, ticking())
			alice := userphone.Identity{Subject: "alice", Email: "alice@example.com"}
			if _, _, err := svc.RequestChange(context.Background(), alice, numberA); err != nil {
				t.Fatal(err)
			}
			code := codeOf(sent.last(t))
			hooked.hook = func() {
				if _, err := svc.Verify(context.Background(), alice, code); err != nil {
					t.Errorf("verify in the gap: %v", err)
				}
			}
			p, found, err := svc.Check(context.Background(), alice)
			if err != nil || !found {
				t.Fatalf("Check = %+v, found %v, err %v; want the pending number", p, found, err)
			}
			if p.Number != numberA {
				t.Fatalf("Check = %+v", p)
			}
		})
	}
}
