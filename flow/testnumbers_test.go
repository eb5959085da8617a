package flow_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/phone"
	"github.com/pace/userphone/store/storetest"
)

const testNumber, testCode = "+4915112340001", "424242"

// withTestNumbers gives a rig the test number testNumber until the end
// until (zero: no end).
func withTestNumbers(until time.Time) func(*flow.Config) {
	return func(c *flow.Config) {
		c.TestNumbers = phone.TestNumbers{testNumber: testCode}
		c.TestNumbersUntil = until
	}
}

// trailCount counts the user's events of kind.
func (r *rig) trailCount(userID string, kind userphone.EventKind) int64 {
	r.t.Helper()
	var n int64
	if err := r.store.DB().Table("phone_events").Where("user_id = ? AND kind = ?", userID, string(kind)).Count(&n).Error; err != nil {
		r.t.Fatal(err)
	}
	return n
}

// A test number goes through the whole flow with no SMS: a wrong code is a
// wrong attempt, the fixed code verifies, the trail marks the code as a
// test code, and the SMS budget, the network's and the number's SMS limits
// do not count it (a budget and a network limit of one SMS are still whole
// afterwards, for a request from the same network).
func TestATestNumberVerifiesWithItsFixedCodeAndSendsNothing(t *testing.T) {
	tight := flow.Limits{SMSPerHour: 1, SMSPerNumberPerHour: 1, SMSPerNumberPerDay: 1, SMSPerNetworkPerHour: 1, SMSPerPrefixPerHour: 1, SMSToOwnedNumberPerDay: 1}
	forEachDialect(t, rigOptions{limits: tight, configure: withTestNumbers(time.Time{})}, func(t *testing.T, r *rig) {
		office := from("203.0.113.9") // one network, whose limit is one SMS an hour
		for _, sub := range []string{"tn1", "tn2", "tn3"} {
			id := user(sub, sub+"@example.com")
			p, created, err := r.svc.RequestChange(office, id, testNumber)
			if err != nil || !created || p.Pending == nil || p.Pending.Status != userphone.StatusAwaitingCode {
				t.Fatalf("%s: %v, created %v, pending %+v", sub, err, created, p.Pending)
			}
			_, err = r.svc.Verify(office, id, "000000")
			wantRefusal(t, err, userphone.CodeInvalidCode)
			if _, err := r.svc.Verify(ctx, id, testCode); err != nil {
				t.Fatalf("%s: the fixed code: %v", sub, err)
			}
			if got, _ := r.check(id); got.Number != testNumber || !got.Verified {
				t.Fatalf("%s: check %+v", sub, got)
			}
			if r.trailCount(sub, userphone.EventTestCode) != 1 || r.trailHas(sub, userphone.EventSMSSent) {
				t.Fatalf("%s: the trail does not mark one test code and no SMS", sub)
			}
		}
		if sms := r.messagesTo(testNumber); len(sms) != 0 {
			t.Fatalf("a test number got %d SMS", len(sms))
		}
		if _, _, err := r.svc.RequestChange(office, user("real", ""), numberA); err != nil || len(r.messagesTo(numberA)) != 1 {
			t.Fatalf("the network's or the budget's one SMS was spent by test numbers: %v", err)
		}
	})
}

// The account's limits still hold for test numbers: they are no way
// around the abuse rules.
func TestTestNumbersKeepTheAccountsLimits(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{ChangesPerHour: 1}, configure: withTestNumbers(time.Time{})}, func(t *testing.T, r *rig) {
		id := user("acct", "")
		r.request(id, testNumber)
		r.clock.Advance(2 * time.Minute) // past the cool-down
		_, _, err := r.svc.RequestChange(ctx, id, testNumber)
		r.wantLimited(err, userphone.CodeRateLimited, 0)
	})
}

// A fixed code is no secret, so the number's guesses for the day do not
// guard it: one QA run's wrong code must not stop the next one's.
func TestATestNumbersWrongCodesDoNotCloseItForTheDay(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{WrongCodesPerNumberPerDay: 1}, configure: withTestNumbers(time.Time{})}, func(t *testing.T, r *rig) {
		for _, sub := range []string{"qa1", "qa2"} {
			id := user(sub, "")
			r.request(id, testNumber)
			_, err := r.svc.Verify(ctx, id, "111111")
			wantRefusal(t, err, userphone.CodeInvalidCode)
			if _, err := r.svc.Verify(ctx, id, testCode); err != nil {
				t.Fatalf("%s: %v", sub, err)
			}
		}
	})
}

// A user with a verified number still confirms a change to a test number
// by e-mail; then the fixed code verifies it.
func TestAChangeToATestNumberStillNeedsTheEmail(t *testing.T) {
	forEachDialect(t, rigOptions{configure: withTestNumbers(time.Time{})}, func(t *testing.T, r *rig) {
		id := user("mover", "mover@example.com")
		r.verifyNumber(id, numberA)
		if p := r.request(id, testNumber); p.Pending == nil || p.Pending.Status != userphone.StatusAwaitingEmailConfirmation {
			t.Fatalf("pending %+v", p.Pending)
		}
		if _, err := r.svc.Confirm(ctx, r.linkToken("mover@example.com")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.svc.Verify(ctx, id, testCode); err != nil {
			t.Fatal(err)
		}
		if len(r.messagesTo(testNumber)) != 0 {
			t.Fatal("the test number got an SMS")
		}
	})
}

// Past their end the test numbers stop working: a request for one is
// refused (not texted), a change opened before takes its fixed code no
// more, and the log says so once.
func TestTestNumbersStopAtTheirEnd(t *testing.T) {
	for _, d := range storetest.Dialects {
		clock := testenv.NewClock(time.Now())
		r := newRig(t, d, rigOptions{clock: clock, configure: withTestNumbers(clock.Now().Add(time.Hour))})
		early, late := user("early", ""), user("late", "")
		r.request(early, testNumber)
		r.clock.Advance(time.Hour)
		_, err := r.svc.Verify(ctx, early, testCode)
		wantRefusal(t, err, userphone.CodeCodeExpired)
		_, _, err = r.svc.RequestChange(ctx, late, testNumber)
		if e := wantRefusal(t, err, userphone.CodePhoneNumberNotAllowed); !strings.Contains(e.Detail, "test numbers of this deployment have ended") {
			t.Fatalf("detail %q", e.Detail)
		}
		_, _, _ = r.svc.RequestChange(ctx, late, testNumber)
		if n := strings.Count(r.logs.String(), "the test numbers have ended"); n != 1 {
			t.Fatalf("the end was logged %d times:\n%s", n, r.logs.String())
		}
		if len(r.messagesTo(testNumber)) != 0 {
			t.Fatal("an ended test number got an SMS")
		}
	}
}

// A test number the service would refuse from a user stops the start.
func TestATestNumberOfARefusedRegionStopsTheStart(t *testing.T) {
	cfg := flow.DefaultConfig()
	cfg.Secret, cfg.ConfirmURL = make([]byte, flow.MinSecretBytes), "http://userphone.test/confirm"
	cfg.Limits.AllowedRegions = []string{"AT"}
	cfg.TestNumbers = phone.TestNumbers{testNumber: testCode}
	_, err := flow.New(nil, nil, cfg, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "test number +49") || !strings.Contains(err.Error(), "is not accepted here") {
		t.Fatalf("got %v", err)
	}
}
