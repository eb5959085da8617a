package flow_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pace/userphone"
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

// Unwrap lets the job queue reach the store's transaction (store.Unwrapper).
func (t *hookTx) Unwrap() userphone.Tx { return t.Tx }

// wrap puts s between the flow and st (app.Parts.WrapStore).
func (s *hookStore) wrap(st userphone.Store) userphone.Store {
	s.Store = st
	return s
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

// withVerifiedNumberAndPendingChange gives alice numberA and a pending
// change to numberB, and returns the link's token.
func withVerifiedNumberAndPendingChange(r *rig) (userphone.Identity, string) {
	alice := user("alice", "alice@example.com")
	r.verifyNumber(alice, numberA)
	r.request(alice, numberB)
	return alice, r.linkToken(alice.Email)
}

// On PostgreSQL a PUT can commit between Confirm's first, unlocked read of
// the link and its lock on the user. (SQLite's immediate transactions
// serialise the two whole requests, so the gap does not exist there.)
func TestConfirmDoesNotReviveAChangeCancelledInTheGap(t *testing.T) {
	hooked := &hookStore{method: "ChangeByEmailToken"}
	r := newRig(t, store.Postgres, rigOptions{wrap: hooked.wrap, now: ticking()})
	svc := r.svc
	alice, token := withVerifiedNumberAndPendingChange(r)
	hooked.hook = func() {
		// The user takes it back: PUT of their verified number cancels the change.
		if _, created, err := svc.RequestChange(context.Background(), alice, numberA); err != nil || created {
			t.Errorf("cancelling PUT: created=%v err=%v", created, err)
		}
	}
	before := len(r.messages())
	conf, err := svc.Confirm(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if conf.State != userphone.LinkUsed || len(r.messages()) != before {
		t.Fatalf("confirm after the cancel: state %v, %d messages sent", conf.State, len(r.messages())-before)
	}
	p, _, _ := svc.Check(context.Background(), alice)
	if p.Pending != nil {
		t.Fatalf("the cancelled change is open again: %+v", p.Pending)
	}
}

func TestConfirmRefusesALinkReplacedInTheGap(t *testing.T) {
	hooked := &hookStore{method: "ChangeByEmailToken"}
	r := newRig(t, store.Postgres, rigOptions{wrap: hooked.wrap, now: ticking()})
	svc := r.svc
	alice, token := withVerifiedNumberAndPendingChange(r)
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
	if conf.State != userphone.LinkUnknown {
		t.Fatalf("the replaced link answered %v, want LinkUnknown", conf.State)
	}
	if m := r.messages(); m[len(m)-1].Channel != userphone.ChannelEmail {
		t.Fatalf("the replaced link sent a %s", m[len(m)-1].Channel)
	}
}

// A verify that commits between Check's two reads must not make the user
// look as if they had no number.
func TestCheckSeesOneSnapshot(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			hooked := &hookStore{method: "GetUser"}
			r := newRig(t, d, rigOptions{wrap: hooked.wrap, now: ticking()})
			svc := r.svc
			alice := user("alice", "alice@example.com")
			r.request(alice, numberA)
			code := r.code(numberA)
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
