package flow_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/testservers"
)

// The change flow's rules: who may change what, when a message goes out,
// how codes count and when a change ends. server/ tests how HTTP answers
// each outcome; these test the outcomes.

var ctx = context.Background()

func TestFirstNumberIsVerifiedBySMSWithoutEmail(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		alice := user("alice", "alice@example.com")
		if _, found := r.check(alice); found {
			t.Fatal("a phone before anything was asked")
		}
		p := r.request(alice, "+49 151 1234 5678")
		if p.Number != numberA || p.Verified || p.Pending == nil ||
			p.Pending.Status != userphone.StatusAwaitingCode || p.Pending.PhoneNumber != numberA {
			t.Fatalf("after the request: %+v", p)
		}
		if want := r.clock.Now().Add(24 * time.Hour); p.Pending.ExpiresAt.Sub(want).Abs() > time.Second {
			t.Fatalf("expires at %v, want %v", p.Pending.ExpiresAt, want)
		}
		if m := r.messagesTo("alice@example.com"); len(m) != 0 {
			t.Fatalf("a first number needs no e-mail, got %+v", m)
		}
		if p, found := r.check(alice); !found || p.Verified || p.Pending == nil {
			t.Fatalf("check while pending: %+v", p)
		}
		code := r.code(numberA)
		p, err := r.svc.Verify(ctx, alice, code)
		if err != nil || p.Number != numberA || !p.Verified || p.Pending != nil {
			t.Fatalf("verify: %+v, %v", p, err)
		}
		if p, found := r.check(alice); !found || p.Number != numberA || p.UserID != "alice" || !p.Verified {
			t.Fatalf("check after verify: %+v", p)
		}
		// The code is used up.
		_, err = r.svc.Verify(ctx, alice, code)
		wantRefusal(t, err, userphone.CodeNoPendingVerification)
	})
}

func TestChangeNeedsEmailConfirmationAndKeepsOldNumberUntilVerified(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		bob := user("bob", "bob@example.com")
		r.verifyNumber(bob, numberA)
		p := r.request(bob, numberB)
		if p.Number != numberA || !p.Verified || p.Pending.Status != userphone.StatusAwaitingEmailConfirmation || p.Pending.PhoneNumber != numberB {
			t.Fatalf("after the request: %+v", p)
		}
		if len(r.messagesTo(numberB)) != 0 {
			t.Fatal("an SMS went to the new number before the e-mail was confirmed")
		}
		_, err := r.svc.Verify(ctx, bob, "123456")
		wantRefusal(t, err, userphone.CodeEmailConfirmationPending)

		link := r.linkToken("bob@example.com")
		// Looking, as a mail scanner would, changes nothing and shows the
		// number only masked.
		for range 2 {
			conf, err := r.svc.LookUpConfirmation(ctx, link)
			if err != nil || conf.State != userphone.LinkValid || conf.MaskedNumber == "" || strings.Contains(conf.MaskedNumber, numberB[3:]) {
				t.Fatalf("look-up: %+v, %v", conf, err)
			}
		}
		if p, _ := r.check(bob); p.Pending.Status != userphone.StatusAwaitingEmailConfirmation {
			t.Fatalf("the look-up changed the state: %+v", p.Pending)
		}
		if conf, err := r.svc.Confirm(ctx, link); err != nil || conf.State != userphone.LinkConfirmed {
			t.Fatalf("confirm: %+v, %v", conf, err)
		}
		// A second confirmation (a refresh) finds it confirmed and sends no
		// second SMS.
		if conf, err := r.svc.Confirm(ctx, link); err != nil || conf.State != userphone.LinkConfirmed {
			t.Fatalf("second confirm: %+v, %v", conf, err)
		}
		if n := len(r.messagesTo(numberB)); n != 1 {
			t.Fatalf("%d SMS to the new number, want 1", n)
		}
		if p, _ := r.check(bob); p.Number != numberA || p.Pending.Status != userphone.StatusAwaitingCode {
			t.Fatalf("the old number must stay until the new one is verified: %+v", p)
		}
		if p, err := r.svc.Verify(ctx, bob, r.code(numberB)); err != nil || p.Number != numberB {
			t.Fatalf("verify the new number: %+v, %v", p, err)
		}
		for _, step := range []func(context.Context, string) (userphone.Confirmation, error){r.svc.Confirm, r.svc.LookUpConfirmation} {
			if conf, err := step(ctx, link); err != nil || conf.State != userphone.LinkUsed {
				t.Fatalf("the link after verification: %+v, %v; want used", conf, err)
			}
		}
	})
}

func TestRequestOfTheVerifiedNumberCancelsThePendingChange(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		carol := user("carol", "carol@example.com")
		r.verifyNumber(carol, numberA)
		r.request(carol, numberB)
		link := r.linkToken("carol@example.com")
		p, created, err := r.svc.RequestChange(ctx, carol, numberA)
		if err != nil || created || p.Pending != nil {
			t.Fatalf("request of the verified number: %+v, created %v, %v", p, created, err)
		}
		if conf, err := r.svc.LookUpConfirmation(ctx, link); err != nil || conf.State != userphone.LinkUsed {
			t.Fatalf("link of the cancelled change: %+v, %v", conf, err)
		}
		if p, _ := r.check(carol); p.Pending != nil {
			t.Fatalf("the pending change survived: %+v", p.Pending)
		}
	})
}

func TestResendWaitsForTheCooldownAndVoidsTheOldCode(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		dave := user("dave", "dave@example.com")
		r.request(dave, numberA)
		first := r.code(numberA)
		_, _, err := r.svc.RequestChange(ctx, dave, numberA)
		if e := r.wantLimited(err, userphone.CodeRateLimited, 1); e.RetryAfter.Round(time.Second) != time.Minute {
			t.Fatalf("retry after %v, want the cool-down of 1m", e.RetryAfter)
		}
		r.clock.Advance(61 * time.Second)
		r.request(dave, numberA)
		second := r.code(numberA)
		if n := len(r.messagesTo(numberA)); n != 2 {
			t.Fatalf("%d SMS, want 2", n)
		}
		if first != second {
			_, err := r.svc.Verify(ctx, dave, first)
			wantRefusal(t, err, userphone.CodeInvalidCode)
		}
		if _, err := r.svc.Verify(ctx, dave, second); err != nil {
			t.Fatalf("the new code: %v", err)
		}
	})
}

func TestResendOfTheEmailVoidsTheOldLink(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		erin := user("erin", "erin@example.com")
		r.verifyNumber(erin, numberA)
		r.request(erin, numberB)
		old := r.linkToken("erin@example.com")
		r.clock.Advance(time.Minute)
		r.request(erin, numberB)
		fresh := r.linkToken("erin@example.com")
		if old == fresh {
			t.Fatal("the resent e-mail carries the same link")
		}
		if conf, err := r.svc.Confirm(ctx, old); err != nil || conf.State != userphone.LinkUnknown {
			t.Fatalf("the old link: %+v, %v; want unknown", conf, err)
		}
		if conf, err := r.svc.Confirm(ctx, fresh); err != nil || conf.State != userphone.LinkConfirmed {
			t.Fatalf("the new link: %+v, %v", conf, err)
		}
	})
}

func TestAnotherNumberSupersedesThePendingChange(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		frank := user("frank", "frank@example.com")
		r.request(frank, numberA)
		codeA := r.code(numberA)
		// Switching numbers at once would let anyone send an SMS per request.
		_, _, err := r.svc.RequestChange(ctx, frank, numberB)
		r.wantLimited(err, userphone.CodeRateLimited, 1)
		r.clock.Advance(time.Minute)
		if p := r.request(frank, numberB); p.Pending.PhoneNumber != numberB {
			t.Fatalf("request B: %+v", p.Pending)
		}
		codeB := r.code(numberB)
		if codeA != codeB {
			_, err := r.svc.Verify(ctx, frank, codeA)
			wantRefusal(t, err, userphone.CodeInvalidCode)
		}
		if p, err := r.svc.Verify(ctx, frank, codeB); err != nil || p.Number != numberB {
			t.Fatalf("verify B: %+v, %v", p, err)
		}
	})
}

func TestWrongCodesCountDownThenCancel(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		gina := user("gina", "gina@example.com")
		r.request(gina, numberA)
		wrong := testservers.WrongCode(r.code(numberA))
		for left := 4; left >= 1; left-- {
			_, err := r.svc.Verify(ctx, gina, wrong)
			if e := wantRefusal(t, err, userphone.CodeInvalidCode); e.RemainingAttempts == nil || *e.RemainingAttempts != left {
				t.Fatalf("remaining attempts %v, want %d", e.RemainingAttempts, left)
			}
		}
		_, err := r.svc.Verify(ctx, gina, wrong)
		if e := wantRefusal(t, err, userphone.CodeTooManyAttempts); e.RetryAfter.Round(time.Second) != time.Minute {
			t.Fatalf("retry after %v, want the cool-down of 1m", e.RetryAfter)
		}
		// Starting over at once would give a fresh set of guesses: it waits.
		_, _, err = r.svc.RequestChange(ctx, gina, numberA)
		r.wantLimited(err, userphone.CodeRateLimited, 1)
		// The change is gone: even the right code no longer works.
		_, err = r.svc.Verify(ctx, gina, r.code(numberA))
		wantRefusal(t, err, userphone.CodeNoPendingVerification)
		if p, found := r.check(gina); found {
			t.Fatalf("a phone after the cancel: %+v", p)
		}
	})
}

func TestChangesExpireAfterTheProcessTTL(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		hank := user("hank", "hank@example.com")
		r.verifyNumber(hank, numberA)
		r.request(hank, numberB)
		link := r.linkToken("hank@example.com")
		r.clock.Advance(24*time.Hour + time.Second)
		for _, step := range []func(context.Context, string) (userphone.Confirmation, error){r.svc.LookUpConfirmation, r.svc.Confirm} {
			if conf, err := step(ctx, link); err != nil || conf.State != userphone.LinkExpired {
				t.Fatalf("the expired link: %+v, %v", conf, err)
			}
		}
		_, err := r.svc.Verify(ctx, hank, "123456")
		wantRefusal(t, err, userphone.CodeVerificationExpired)
		if p, found := r.check(hank); !found || p.Pending != nil || p.Number != numberA {
			t.Fatalf("check after expiry: %+v", p)
		}
		r.request(hank, numberB) // a new change may start
	})
}

func TestVerifyOfAnAwaitingCodeChangePastItsLimit(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		ivy := user("ivy", "ivy@example.com")
		r.request(ivy, numberA)
		code := r.code(numberA)
		r.clock.Advance(24 * time.Hour)
		_, err := r.svc.Verify(ctx, ivy, code)
		wantRefusal(t, err, userphone.CodeVerificationExpired)
		if p, found := r.check(ivy); found {
			t.Fatalf("a phone after the expiry: %+v", p)
		}
	})
}

func TestVerifyWithNothingPending(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		_, err := r.svc.Verify(ctx, user("jack", ""), "123456")
		wantRefusal(t, err, userphone.CodeNoPendingVerification)
	})
}

func TestChangeWithoutKnownEmailIsRefusedAndChangesNothing(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		kim := user("kim", "")
		r.verifyNumber(kim, numberA)
		before, _ := r.check(kim)
		_, _, err := r.svc.RequestChange(ctx, kim, "+4915200000001")
		wantRefusal(t, err, userphone.CodeEmailRequired)
		if after, _ := r.check(kim); after.Number != before.Number || after.Pending != nil || !after.Verified {
			t.Fatalf("state changed: before %+v, after %+v", before, after)
		}
		// A token with the e-mail claim fixes it, and the address is remembered.
		r.request(user("kim", "kim@example.com"), numberB)
		r.clock.Advance(time.Minute)
		r.request(kim, numberB)
	})
}

func TestVerifiedNumberMovesToTheUserWhoProvesItLast(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		first, second := user("first", "first@example.com"), user("second", "second@example.com")
		r.verifyNumber(first, numberA)
		// Nothing tells the second user that the number belongs to someone:
		// their change starts as one of a fresh number would.
		if p := r.request(second, numberA); p.Pending.Status != userphone.StatusAwaitingCode || p.UserID != "second" {
			t.Fatalf("request by the second user: %+v", p)
		}
		// The owner hears of it at once, before anyone proves possession.
		if m := r.messagesTo("first@example.com"); len(m) != 1 || m[0].Kind != flow.KindNumberRequested || strings.Contains(m[0].Text, numberA) {
			t.Fatalf("the owner must be told of the request, with the number masked: %+v", m)
		}
		if _, err := r.svc.Verify(ctx, second, r.code(numberA)); err != nil {
			t.Fatalf("verify by the second user: %v", err)
		}
		if p, found := r.check(first); found {
			t.Fatalf("the first user kept the number: %+v", p)
		}
		if p, _ := r.check(second); p.Number != numberA || !p.Verified {
			t.Fatalf("the second user: %+v", p)
		}
		mails := r.messagesTo("first@example.com")
		if len(mails) != 2 || mails[1].Kind != flow.KindNumberRemoved || strings.Contains(mails[1].Text, numberA) {
			t.Fatalf("the first user must be told of the move, with the number masked: %+v", mails)
		}
	})
}
