package flow_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// Each limit holds exactly across two replicas on one PostgreSQL database,
// with the requests racing: half of them to each replica, all at once.

// replicas returns two services on one fresh PostgreSQL database, with one
// clock, and the messages both sent.
func replicas(t *testing.T, o rigOptions) (pick func(i int) *rig, sent func() []userphone.Message) {
	cfg := storetest.Config(t, store.Postgres)
	o.store, o.clock = &cfg, testenv.NewClock(time.Now())
	a, b := newRig(t, store.Postgres, o), newRig(t, store.Postgres, o)
	pick = func(i int) *rig { return []*rig{a, b}[i%2] }
	sent = func() []userphone.Message { return append(a.messages(), b.messages()...) }
	return pick, sent
}

func wantOutcomes(t *testing.T, errs []error, ok int, refusal userphone.ErrorCode) {
	t.Helper()
	got := outcomes(errs)
	if got["ok"] != ok || got[string(refusal)] != len(errs)-ok {
		t.Fatalf("outcomes %v, want %d ok and %d %s", got, ok, len(errs)-ok, refusal)
	}
}

func TestTheNetworkLimitHoldsAcrossReplicas(t *testing.T) {
	pick, sent := replicas(t, rigOptions{limits: flow.Limits{SMSPerNetworkPerHour: 5}})
	errs := testenv.Parallel(20, func(i int) error {
		_, _, err := pick(i).svc.RequestChange(from(fmt.Sprintf("198.51.100.%d", i)), user(fmt.Sprint("bot", i), ""), testenv.MobileNumber(i))
		return err
	})
	wantOutcomes(t, errs, 5, userphone.CodeRateLimited)
	if n := len(sent()); n != 5 {
		t.Fatalf("%d SMS sent, want 5", n)
	}
}

func TestThePrefixLimitHoldsAcrossReplicas(t *testing.T) {
	pick, sent := replicas(t, rigOptions{limits: flow.Limits{SMSPerPrefixPerHour: 5}})
	errs := testenv.Parallel(20, func(i int) error {
		_, _, err := pick(i).svc.RequestChange(from(fmt.Sprintf("203.0.%d.1", i)), user(fmt.Sprint("p", i), ""), fmt.Sprintf("+491511234%04d", i))
		return err
	})
	wantOutcomes(t, errs, 5, userphone.CodeRateLimited)
	if n := len(sent()); n != 5 {
		t.Fatalf("%d SMS sent, want 5", n)
	}
}

func TestAUsersAllowanceForANumberHoldsAcrossReplicas(t *testing.T) {
	pick, sent := replicas(t, rigOptions{limits: flow.Limits{SMSPerNumberPerHour: 3},
		configure: func(c *flow.Config) { c.ResendCooldown = 0 }})
	ann := user("ann", "")
	pick(0).request(ann, numberA)
	errs := testenv.Parallel(10, func(i int) error { _, _, err := pick(i).svc.RequestChange(ctx, ann, numberA); return err })
	wantOutcomes(t, errs, 2, userphone.CodeRateLimited)
	if n := len(sent()); n != 3 {
		t.Fatalf("%d SMS sent, want 3", n)
	}
}

func TestTheStrangersShareHoldsAcrossReplicas(t *testing.T) {
	pick, sent := replicas(t, rigOptions{limits: flow.Limits{SMSToOwnedNumberPerDay: 3}})
	owner := user("owner", "owner@example.com")
	pick(0).verifyNumber(owner, numberA)
	errs := testenv.Parallel(10, func(i int) error {
		_, _, err := pick(i).svc.RequestChange(ctx, user(fmt.Sprint("stranger", i), ""), numberA)
		return err
	})
	wantOutcomes(t, errs, 10, "") // the same answer for all
	var toNumber, toOwner int
	for _, m := range sent() {
		switch m.To {
		case numberA:
			toNumber++
		case owner.Email:
			toOwner++
		}
	}
	if toNumber != 1+3 || toOwner != 3 {
		t.Fatalf("%d SMS to the number (want the owner's and 3 from strangers), %d notices to the owner (want 3)", toNumber, toOwner)
	}
}

func TestTheGuessCapHoldsAcrossReplicas(t *testing.T) {
	pick, _ := replicas(t, rigOptions{limits: flow.Limits{WrongCodesPerNumberPerDay: 4}})
	guessers := make([]userphone.Identity, 10)
	codes := make([]string, 10)
	for i := range guessers {
		guessers[i] = user(fmt.Sprint("guesser", i), "")
		pick(i).request(guessers[i], numberA)
		codes[i] = testservers.WrongCode(pick(i).code(numberA))
	}
	errs := testenv.Parallel(10, func(i int) error { _, err := pick(i).svc.Verify(ctx, guessers[i], codes[i]); return err })
	got := outcomes(errs)
	if got[string(userphone.CodeInvalidCode)] != 4 || got[string(userphone.CodeTooManyAttempts)] != 6 {
		t.Fatalf("outcomes %v, want 4 wrong codes counted and 6 refused", got)
	}
}

// The open half of the budget is counted without a lock (see checkBudget),
// so the race starts past it: quiet sources only (a network and a range
// each) fill the quiet share, 9 of 10, and not one more.
func TestTheBudgetSharesHoldAcrossReplicas(t *testing.T) {
	pick, sent := replicas(t, rigOptions{limits: flow.Limits{SMSPerHour: 10}})
	request := func(i int) error {
		_, _, err := pick(i).svc.RequestChange(from(fmt.Sprintf("203.0.%d.1", i)), user(fmt.Sprint("q", i), ""), testenv.MobileNumber(i))
		return err
	}
	for i := range 5 {
		if err := request(i); err != nil {
			t.Fatal(err)
		}
	}
	errs := testenv.Parallel(15, func(i int) error { return request(5 + i) })
	wantOutcomes(t, errs, 4, userphone.CodeServiceUnavailable)
	if n := len(sent()); n != 9 {
		t.Fatalf("%d SMS sent, want 9", n)
	}
}
