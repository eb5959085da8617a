package flow_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/store"
)

// The rules against SMS pumping and number takeover (docs/SECURITY.md).

func TestOneNetworkGetsItsCapOfSMSAndAnotherNetworkStillGetsTheirs(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSPerNetworkPerHour: 3, SMSPerNetworkPerDay: 5}}, func(t *testing.T, r *rig) {
		// Many accounts from one /24: the fourth is refused, whatever its address in it.
		for i := range 3 {
			if _, _, err := r.svc.RequestChange(from(fmt.Sprintf("198.51.100.%d", i+1)), user(fmt.Sprint("bot", i), ""), testenv.MobileNumber(i)); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := r.svc.RequestChange(from("198.51.100.200"), user("bot3", ""), testenv.MobileNumber(3))
		r.wantLimited(err, userphone.CodeRateLimited, 3)
		// Another /24 is another network.
		if _, _, err := r.svc.RequestChange(from("198.51.101.7"), user("alice", ""), testenv.MobileNumber(4)); err != nil {
			t.Fatalf("a user of another network: %v", err)
		}
		// IPv6: one /48.
		for i := range 3 {
			if _, _, err := r.svc.RequestChange(from(fmt.Sprintf("2001:db8:1:%x::1", i)), user(fmt.Sprint("v6bot", i), ""), testenv.MobileNumber(10+i)); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err = r.svc.RequestChange(from("2001:db8:1:ffff::9"), user("v6bot3", ""), testenv.MobileNumber(13))
		wantRefusal(t, err, userphone.CodeRateLimited)
		// The day's cap holds when the hour rolls on.
		r.clock.Advance(time.Hour)
		for i := range 2 {
			if _, _, err := r.svc.RequestChange(from("198.51.100.9"), user(fmt.Sprint("later", i), ""), testenv.MobileNumber(20+i)); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err = r.svc.RequestChange(from("198.51.100.9"), user("later2", ""), testenv.MobileNumber(22))
		wantRefusal(t, err, userphone.CodeRateLimited)
	})
}

func TestManyNetworksAimingAtOneRangeAreCapped(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSPerPrefixPerHour: 3, SMSPerPrefixPerDay: 4}}, func(t *testing.T, r *rig) {
		// +49 151 1234 5xxx: one block of 10,000, from a new network each time.
		for i := range 3 {
			if _, _, err := r.svc.RequestChange(from(fmt.Sprintf("203.0.%d.1", i)), user(fmt.Sprint("p", i), ""), fmt.Sprintf("+491511234%04d", i)); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := r.svc.RequestChange(from("203.0.99.1"), user("p3", ""), "+4915112349999")
		r.wantLimited(err, userphone.CodeRateLimited, 3)
		if _, _, err := r.svc.RequestChange(from("203.0.99.1"), user("p3", ""), "+4915112350000"); err != nil {
			t.Fatalf("the next block: %v", err)
		}
	})
}

// Strangers asking for a verified number share a small allowance; past
// it the code is withheld with the same answer. The owner hears of the
// requests by e-mail, as often, and what they ask for is their own.
func TestStrangersShareASmallAllowanceForAnOwnedNumber(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSToOwnedNumberPerDay: 2, SMSPerNumberPerHour: 3}}, func(t *testing.T, r *rig) {
		owner := user("owner", "owner@example.com")
		r.verifyNumber(owner, numberA)
		for i := range 5 {
			p, created, err := r.svc.RequestChange(ctx, user(fmt.Sprint("stranger", i), ""), numberA)
			if err != nil || !created || p.Pending.Status != userphone.StatusAwaitingCode {
				t.Fatalf("stranger %d: %+v, %v, %v; want the answer of any number", i, p, created, err)
			}
		}
		if n := len(r.messagesTo(numberA)); n != 1+2 {
			t.Fatalf("%d SMS to the owner's number, want the owner's own and 2 from strangers", n)
		}
		if m := r.messagesTo("owner@example.com"); len(m) != 3 || m[0].Kind != flow.KindNumberRequested {
			t.Fatalf("the owner must hear of the strangers' requests, at most 3 a day: %+v", m)
		}
		if !r.trailHas("stranger4", userphone.EventSMSWithheld) {
			t.Fatal("the withheld code is not in the trail")
		}
		// A withheld code cannot be verified: it never left.
		if _, err := r.svc.Verify(ctx, user("stranger4", ""), r.code(numberA)); userphone.ErrorCodeOf(err) != userphone.CodeInvalidCode {
			t.Fatalf("a sent code for a withheld change: %v", err)
		}
	})
}

// Three strangers asking for a number cannot keep the person who is
// verifying it from getting their codes.
func TestStrangersCannotStopTheOwnerFromGettingACode(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.DefaultLimits()}, func(t *testing.T, r *rig) {
		owner := user("owner", "")
		r.request(owner, numberA)
		for i := range 3 {
			r.request(user(fmt.Sprint("stranger", i), ""), numberA)
		}
		r.clock.Advance(time.Minute)
		r.request(owner, numberA) // a resend
		if _, err := r.svc.Verify(ctx, owner, r.code(numberA)); err != nil {
			t.Fatalf("the owner's newest code: %v", err)
		}
	})
}

func TestWrongCodesPerNumberAreCappedAcrossChangesAndAccounts(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{WrongCodesPerNumberPerDay: 4}}, func(t *testing.T, r *rig) {
		// Two accounts, two changes each: 4 guesses in all.
		for i := range 2 {
			for range 2 {
				guesser := user(fmt.Sprint("guesser", i), "")
				r.request(guesser, numberA)
				_, err := r.svc.Verify(ctx, guesser, testservers.WrongCode(r.code(numberA)))
				wantRefusal(t, err, userphone.CodeInvalidCode)
				r.clock.Advance(time.Minute)
			}
		}
		victim := user("victim", "")
		r.request(victim, numberA)
		_, err := r.svc.Verify(ctx, victim, r.code(numberA)) // even the right code
		if e := wantRefusal(t, err, userphone.CodeTooManyAttempts); e.RetryAfter%time.Minute != 0 || e.RetryAfter < 23*time.Hour {
			t.Fatalf("retry after %v, want about a day in whole minutes", e.RetryAfter)
		}
		if !r.trailHas("victim", userphone.EventRateLimited) {
			t.Fatal("the refused attempt is not in the trail")
		}
		r.clock.Advance(24 * time.Hour)
		r.request(victim, numberA)
		if _, err := r.svc.Verify(ctx, victim, r.code(numberA)); err != nil {
			t.Fatalf("the next day: %v", err)
		}
	})
}

func TestAnOldCodeIsRefusedAndTheSameRequestSendsANewOne(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		eve := user("eve", "")
		r.request(eve, numberA)
		old := r.code(numberA)
		r.clock.Advance(10 * time.Minute)
		_, err := r.svc.Verify(ctx, eve, old)
		wantRefusal(t, err, userphone.CodeCodeExpired)
		r.request(eve, numberA)
		if fresh := r.code(numberA); fresh == old {
			t.Fatal("the new SMS carries the old code")
		}
		// The expired code did not count as an attempt.
		if p, err := r.svc.Verify(ctx, eve, r.code(numberA)); err != nil || p.Number != numberA || !p.Verified {
			t.Fatalf("the new code: %+v, %v", p, err)
		}
	})
}

func TestNumbersOfNoCountryAreRefusedByDefault(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.DefaultLimits()}, func(t *testing.T, r *rig) {
		for _, n := range []string{"+881612345678", "+870773111632"} {
			_, _, err := r.svc.RequestChange(ctx, user("sat", ""), n)
			if e := wantRefusal(t, err, userphone.CodePhoneNumberNotAllowed); e.Field != userphone.FieldPhoneNumber {
				t.Fatalf("%s: field %q", n, e.Field)
			}
		}
		if len(r.messages()) != 0 {
			t.Fatal("a refused number got an SMS")
		}
	})
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		r.request(user("sat", ""), "+881612345678") // the operator turned the deny list off
	})
}

func TestAnUnverifiedEmailGetsNoConfirmationLink(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		kim := user("kim", "kim@example.com")
		r.verifyNumber(kim, numberA)
		unverified := kim
		unverified.Email, unverified.EmailUnverified = "attacker@example.com", true
		_, _, err := r.svc.RequestChange(ctx, unverified, numberB)
		wantRefusal(t, err, userphone.CodeEmailNotVerified)
		if len(r.messagesTo("attacker@example.com")) != 0 || len(r.messagesTo("kim@example.com")) != 0 {
			t.Fatal("a link went out")
		}
		// The unverified address was not remembered: a token without the
		// claim reaches the address known before.
		r.request(user("kim", ""), numberB)
		r.linkToken("kim@example.com")
	})
}

// Every refusal says to come back after whole minutes: an exact wait would
// tell when someone else last asked for the number.
func TestEveryRetryAfterIsWholeMinutes(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSPerPrefixPerHour: 1, ChangesPerHour: 2}}, func(t *testing.T, r *rig) {
		r.request(user("a", ""), numberA)
		r.clock.Advance(17*time.Minute + 13*time.Second)
		_, _, err := r.svc.RequestChange(ctx, user("b", ""), numberA)
		if e := wantRefusal(t, err, userphone.CodeRateLimited); e.RetryAfter != 43*time.Minute {
			t.Fatalf("retry after %v, want 42m47s rounded up to 43m", e.RetryAfter)
		}
		// The cool-down, too, after a few seconds of it.
		r.request(user("c", ""), testenv.MobileNumber(7))
		r.clock.Advance(7 * time.Second)
		_, _, err = r.svc.RequestChange(ctx, user("c", ""), testenv.MobileNumber(7))
		if e := wantRefusal(t, err, userphone.CodeRateLimited); e.RetryAfter != time.Minute {
			t.Fatalf("the cool-down's retry after %v", e.RetryAfter)
		}
	})
}

// With the cool-down off, racing resends are all answered as sends: the
// time a rule measures is read after the lock, not before the wait for it.
func TestRacingResendsWithoutACooldownAreAllAnswered(t *testing.T) {
	r := newRig(t, store.Postgres, rigOptions{configure: func(c *flow.Config) { c.ResendCooldown = 0 }})
	sven := user("sven", "")
	r.request(sven, numberA)
	errs := testenv.Parallel(20, func(int) error { _, _, err := r.svc.RequestChange(ctx, sven, numberA); return err })
	if got := outcomes(errs); got["ok"] != 20 {
		t.Fatalf("outcomes %v, want 20 resends", got)
	}
}

// When the budget runs low, busy networks and ranges wait first; numbers
// users verified before are the last to wait; past the budget nobody gets
// an SMS.
func TestTheBudgetDegradesInsteadOfFailing(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSPerHour: 10}}, func(t *testing.T, r *rig) {
		// A returning user verified numberB yesterday; it has since gone to
		// another account.
		back := user("back", "")
		r.verifyNumber(back, numberB)
		r.verifyNumber(user("next", ""), numberB)
		r.clock.Advance(25 * time.Hour)
		// One busy network fills the open half: 5.
		for i := range 5 {
			if _, _, err := r.svc.RequestChange(from("198.51.100.1"), user(fmt.Sprint("busy", i), ""), testenv.MobileNumber(i)); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := r.svc.RequestChange(from("198.51.100.1"), user("busy5", ""), testenv.MobileNumber(5))
		r.wantLimited(err, userphone.CodeServiceUnavailable, 2+5)
		// A quiet network, to a quiet range, still gets through: 6..9.
		for i := range 4 {
			if _, _, err := r.svc.RequestChange(from(fmt.Sprintf("203.0.%d.1", i)), user(fmt.Sprint("quiet", i), ""), testenv.MobileNumber(100+i)); err != nil {
				t.Fatalf("quiet source %d: %v", i, err)
			}
		}
		// Past 90 %: only a number its user verified before.
		_, _, err = r.svc.RequestChange(from("203.0.50.1"), user("quiet4", ""), testenv.MobileNumber(104))
		wantRefusal(t, err, userphone.CodeServiceUnavailable)
		r.clock.Advance(time.Minute)
		if _, _, err := r.svc.RequestChange(from("203.0.51.1"), back, numberB); err != nil {
			t.Fatalf("the returning user's own number: %v", err)
		}
		// The whole budget is spent: nobody.
		_, _, err = r.svc.RequestChange(from("203.0.52.1"), user("back2", ""), testenv.MobileNumber(105))
		if e := wantRefusal(t, err, userphone.CodeServiceUnavailable); e.RetryAfter%time.Minute != 0 {
			t.Fatalf("retry after %v", e.RetryAfter)
		}
		if !strings.Contains(r.logs.String(), "global SMS budget") {
			t.Fatal("the spent budget was not logged")
		}
	})
}

// A withheld code counts wherever a sent one does (the user's allowance,
// the network, the range, the budget), so that no later answer tells an
// owned number from a free one. Found by attacking the first version.
func TestNoLaterAnswerTellsAnOwnedNumberFromAFreeOne(t *testing.T) {
	probe := func(t *testing.T, owned bool) string {
		r := newRig(t, store.Postgres, rigOptions{limits: flow.Limits{SMSToOwnedNumberPerDay: 3, SMSPerNumberPerHour: 3, SMSPerNetworkPerHour: 4}})
		if owned {
			r.verifyNumber(user("owner", "owner@example.com"), numberA)
		}
		for i := range 3 { // the strangers' share, if owned
			if _, _, err := r.svc.RequestChange(from(fmt.Sprintf("198.51.%d.1", i)), user(fmt.Sprint("burn", i), ""), numberA); err != nil {
				t.Fatal(err)
			}
		}
		var answers []string
		spy := user("spy", "")
		for range 4 { // the spy's allowance for the number, then the network's
			r.clock.Advance(61 * time.Second)
			_, _, err := r.svc.RequestChange(from("203.0.113.1"), spy, numberA)
			answers = append(answers, string(userphone.ErrorCodeOf(err)))
		}
		_, _, err := r.svc.RequestChange(from("203.0.113.1"), user("spy2", ""), testenv.MobileNumber(7))
		return fmt.Sprint(answers, userphone.ErrorCodeOf(err))
	}
	if free, owned := probe(t, false), probe(t, true); free != owned {
		t.Fatalf("the answers differ: free number %v, owned number %v", free, owned)
	}
}

// The owner hears of at most three requests a day, whatever the strangers'
// share of SMS, even with it turned off.
func TestTheOwnersNoticesAreBoundedWithTheShareOff(t *testing.T) {
	r := newRig(t, store.Postgres, rigOptions{})
	r.verifyNumber(user("owner", "owner@example.com"), numberA)
	for i := range 10 {
		r.request(user(fmt.Sprint("stranger", i), ""), numberA)
	}
	if m := r.messagesTo("owner@example.com"); len(m) != 3 {
		t.Fatalf("%d notices to the owner, want 3", len(m))
	}
}

// A 6to4 address is its IPv4 network: five of them from one /24 are one
// network, not five /48s.
func Test6to4AddressesAreTheirIPv4Network(t *testing.T) {
	r := newRig(t, store.SQLite, rigOptions{limits: flow.Limits{SMSPerNetworkPerHour: 1}})
	if _, _, err := r.svc.RequestChange(from("2002:c633:6401::1"), user("a", ""), testenv.MobileNumber(1)); err != nil {
		t.Fatal(err) // 198.51.100.1
	}
	for i, ip := range []string{"2002:c633:6402::1", "198.51.100.77", "::ffff:198.51.100.9"} {
		_, _, err := r.svc.RequestChange(from(ip), user(fmt.Sprint("b", i), ""), testenv.MobileNumber(2+i))
		wantRefusal(t, err, userphone.CodeRateLimited)
	}
}

// A number counts as the user's own, when the budget runs low, only once
// they verified it a day ago: a pumper verifying the numbers it is paid
// for must wait.
func TestANumberVerifiedTodayIsNotYetKnown(t *testing.T) {
	r := newRig(t, store.SQLite, rigOptions{limits: flow.Limits{SMSPerHour: 10}})
	pumper := user("pumper", "")
	r.verifyNumber(pumper, numberB)
	r.verifyNumber(user("other", ""), numberB) // it moves on
	for i := range 7 {
		if _, _, err := r.svc.RequestChange(from(fmt.Sprintf("203.0.%d.1", i)), user(fmt.Sprint("q", i), ""), testenv.MobileNumber(i)); err != nil {
			t.Fatal(err)
		}
	}
	// 9 of 10 sent: only known numbers now.
	_, _, err := r.svc.RequestChange(from("203.0.99.1"), pumper, numberB)
	wantRefusal(t, err, userphone.CodeServiceUnavailable)
}
