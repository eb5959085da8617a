package flow_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/store/storetest"
)

// steps is an observer that keeps what it is told.
type steps struct {
	mu       sync.Mutex
	kinds    []userphone.EventKind
	refusals []string
}

func (s *steps) ObserveStep(kind userphone.EventKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kinds = append(s.kinds, kind)
}

func (s *steps) ObserveRefusal(limit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusals = append(s.refusals, limit)
}

// take returns what was observed since the last take.
func (s *steps) take() ([]userphone.EventKind, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, r := s.kinds, s.refusals
	s.kinds, s.refusals = nil, nil
	return k, r
}

// conflicting makes its next few transactions lose a race after their
// work is done: fn runs in full, then the transaction rolls back with
// ErrConflict, as a serialization failure at commit would.
type conflicting struct {
	userphone.Store
	mu   sync.Mutex
	left int
}

func (s *conflicting) InTx(ctx context.Context, fn func(userphone.Tx) error) error {
	s.mu.Lock()
	lose := s.left > 0
	if lose {
		s.left--
	}
	s.mu.Unlock()
	if !lose {
		return s.Store.InTx(ctx, fn)
	}
	return s.Store.InTx(ctx, func(tx userphone.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return userphone.ErrConflict
	})
}

// The observer hears of a step once it has committed: not of a run that
// rolled back and ran again, nor of a refused request's rolled-back work.
func TestTheObserverHearsOnlyCommittedSteps(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			st := &conflicting{}
			obs := &steps{}
			wrap := func(base userphone.Store) userphone.Store { st.Store = base; return st }
			r := newRig(t, d, rigOptions{wrap: wrap, observer: obs, limits: flow.Limits{SMSPerHour: 1}})
			svc := r.svc
			ctx := context.Background()
			alice := userphone.Identity{Subject: "alice", Email: "alice@example.com"}

			// The first two runs lose their race; the third commits.
			st.left = 2
			if _, _, err := svc.RequestChange(ctx, alice, numberA); err != nil {
				t.Fatal(err)
			}
			kinds, refusals := obs.take()
			if want := []userphone.EventKind{userphone.EventRequested, userphone.EventSMSSent}; !slices.Equal(kinds, want) || refusals != nil {
				t.Fatalf("after a request that ran three times: steps %v, refusals %v; want %v once", kinds, refusals, want)
			}
			code := r.code(numberA)

			// A wrong code commits its count although the answer is an error.
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			if _, err := svc.Verify(ctx, alice, wrong); userphone.ErrorCodeOf(err) != userphone.CodeInvalidCode {
				t.Fatalf("wrong code: %v", err)
			}
			if kinds, _ := obs.take(); !slices.Equal(kinds, []userphone.EventKind{userphone.EventVerifyFailed}) {
				t.Fatalf("after a wrong code: %v", kinds)
			}

			// Within the cool-down: refused, and nothing of the request's
			// own transaction counts; the refusal's trail entry does.
			if _, _, err := svc.RequestChange(ctx, alice, numberA); userphone.ErrorCodeOf(err) != userphone.CodeRateLimited {
				t.Fatalf("resend within the cool-down: %v", err)
			}
			kinds, refusals = obs.take()
			if !slices.Equal(kinds, []userphone.EventKind{userphone.EventRateLimited}) || !slices.Equal(refusals, []string{flow.LimitCooldown}) {
				t.Fatalf("after the cool-down refusal: steps %v, refusals %v", kinds, refusals)
			}

			// The SMS budget (1 an hour) is used up: 503, and the new
			// user's request and SMS roll back.
			bob := userphone.Identity{Subject: "bob"}
			if _, _, err := svc.RequestChange(ctx, bob, numberB); userphone.ErrorCodeOf(err) != userphone.CodeServiceUnavailable {
				t.Fatalf("past the SMS budget: %v", err)
			}
			kinds, refusals = obs.take()
			if !slices.Equal(kinds, []userphone.EventKind{userphone.EventRateLimited}) || !slices.Equal(refusals, []string{flow.LimitSMSBudget}) {
				t.Fatalf("after the budget refusal: steps %v, refusals %v", kinds, refusals)
			}

			// The right code, in a transaction that loses once.
			st.left = 1
			if _, err := svc.Verify(ctx, alice, code); err != nil {
				t.Fatal(err)
			}
			if kinds, _ := obs.take(); !slices.Equal(kinds, []userphone.EventKind{userphone.EventVerified}) {
				t.Fatalf("after verifying: %v", kinds)
			}
		})
	}
}
