package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
)

const (
	numberA = "+4915112345678"
	numberB = "+4915798765432"
)

func TestFirstNumberIsVerifiedBySMSWithoutEmail(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("alice", "alice@example.com")
		if r := h.check(tok); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("check before anything: %d", r.StatusCode())
		}
		r := h.put(tok, "+49 151 1234 5678")
		if r.StatusCode() != http.StatusCreated {
			t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
		}
		a := r.ApplicationvndApiJSON201.Data.Attributes
		if a.PhoneNumber != numberA || a.Verified || a.PendingChange == nil ||
			a.PendingChange.Status != api.AwaitingCode || a.PendingChange.PhoneNumber != numberA {
			t.Fatalf("PUT body: %+v", a)
		}
		if want := h.clock.Now().Add(24 * time.Hour); a.PendingChange.ExpiresAt.Sub(want).Abs() > time.Second {
			t.Fatalf("expiresAt %v, want %v", a.PendingChange.ExpiresAt, want)
		}
		if m := h.messagesTo("alice@example.com"); len(m) != 0 {
			t.Fatalf("a first number needs no e-mail, got %+v", m)
		}
		if c := h.check(tok); c.StatusCode() != http.StatusCreated || c.ApplicationvndApiJSON201.Data.Attributes.Verified {
			t.Fatalf("check while pending: %d %s", c.StatusCode(), c.Body)
		}
		code := h.code(numberA)
		v := h.verify(tok, code)
		if v.StatusCode() != http.StatusOK {
			t.Fatalf("verify: %d %s", v.StatusCode(), v.Body)
		}
		if a := v.ApplicationvndApiJSON200.Data.Attributes; a.PhoneNumber != numberA || !a.Verified || a.PendingChange != nil {
			t.Fatalf("verify body: %+v", a)
		}
		c := h.check(tok)
		if c.StatusCode() != http.StatusOK || c.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber != numberA ||
			c.ApplicationvndApiJSON200.Data.Id != "alice" {
			t.Fatalf("check after verify: %d %s", c.StatusCode(), c.Body)
		}
		// The code is used up.
		wantError(t, 404, h.verify(tok, code).StatusCode(), h.verify(tok, code).Body, userphone.CodeNoPendingVerification)
	})
}

func TestChangeNeedsEmailConfirmationAndKeepsOldNumberUntilVerified(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("bob", "bob@example.com")
		h.verifyNumber(tok, numberA)

		r := h.put(tok, numberB)
		if r.StatusCode() != http.StatusCreated {
			t.Fatalf("PUT new number: %d %s", r.StatusCode(), r.Body)
		}
		a := r.ApplicationvndApiJSON201.Data.Attributes
		if a.PhoneNumber != numberA || !a.Verified || a.PendingChange.Status != api.AwaitingEmailConfirmation || a.PendingChange.PhoneNumber != numberB {
			t.Fatalf("PUT body: %+v", a)
		}
		if len(h.messagesTo(numberB)) != 0 {
			t.Fatal("an SMS went to the new number before the e-mail was confirmed")
		}
		v := h.verify(tok, "123456")
		wantError(t, 409, v.StatusCode(), v.Body, userphone.CodeEmailConfirmationPending)

		link := h.linkToken("bob@example.com")
		// Looking at the page, as a mail scanner would, changes nothing.
		for range 2 {
			page := h.showConfirmation(link)
			if page.StatusCode() != http.StatusOK || !strings.Contains(string(page.Body), `id="confirm"`) ||
				strings.Contains(string(page.Body), numberB) {
				t.Fatalf("confirmation page: %d %s", page.StatusCode(), page.Body)
			}
		}
		if c := h.check(tok); c.ApplicationvndApiJSON200.Data.Attributes.PendingChange.Status != api.AwaitingEmailConfirmation {
			t.Fatalf("GET of the page changed the state: %s", c.Body)
		}

		conf := h.confirm(link)
		if conf.StatusCode() != http.StatusOK {
			t.Fatalf("confirm: %d %s", conf.StatusCode(), conf.Body)
		}
		// A refresh of the confirmed page posts again: it shows the same page
		// and sends no second SMS.
		if again := h.confirm(link); again.StatusCode() != http.StatusOK || string(again.Body) != string(conf.Body) {
			t.Fatalf("second confirm: %d %s", again.StatusCode(), again.Body)
		}
		if page := h.showConfirmation(link); page.StatusCode() != http.StatusOK || string(page.Body) != string(conf.Body) {
			t.Fatalf("page after confirm: %d %s", page.StatusCode(), page.Body)
		}
		if n := len(h.messagesTo(numberB)); n != 1 {
			t.Fatalf("%d SMS to the new number, want 1", n)
		}
		c := h.check(tok)
		if a := c.ApplicationvndApiJSON200.Data.Attributes; c.StatusCode() != 200 || a.PhoneNumber != numberA ||
			a.PendingChange.Status != api.AwaitingCode {
			t.Fatalf("old number must stay until the new one is verified: %s", c.Body)
		}
		if v := h.verify(tok, h.code(numberB)); v.StatusCode() != http.StatusOK || v.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber != numberB {
			t.Fatalf("verify new number: %d %s", v.StatusCode(), v.Body)
		}
		if again := h.confirm(link); again.StatusCode() != http.StatusGone {
			t.Fatalf("confirm after verification: %d, want 410", again.StatusCode())
		}
		if page := h.showConfirmation(link); page.StatusCode() != http.StatusGone {
			t.Fatalf("page after verification: %d, want 410", page.StatusCode())
		}
	})
}

func TestPutOfTheVerifiedNumberAnswers200AndCancelsThePendingChange(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("carol", "carol@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB)
		link := h.linkToken("carol@example.com")
		r := h.put(tok, numberA)
		if r.StatusCode() != http.StatusOK || r.ApplicationvndApiJSON200.Data.Attributes.PendingChange != nil {
			t.Fatalf("PUT of the verified number: %d %s", r.StatusCode(), r.Body)
		}
		if page := h.showConfirmation(link); page.StatusCode() != http.StatusGone {
			t.Fatalf("link of the cancelled change: %d, want 410", page.StatusCode())
		}
		if c := h.check(tok); c.ApplicationvndApiJSON200.Data.Attributes.PendingChange != nil {
			t.Fatalf("pending change survived: %s", c.Body)
		}
	})
}

func TestResendWaitsForTheCooldownAndVoidsTheOldCode(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("dave", "dave@example.com")
		h.put(tok, numberA)
		first := h.code(numberA)

		r := h.put(tok, numberA)
		e := wantError(t, 429, r.StatusCode(), r.Body, userphone.CodeRateLimited)
		if r.HTTPResponse.Header.Get("Retry-After") != "60" {
			t.Fatalf("Retry-After = %q, want 60 (%v)", r.HTTPResponse.Header.Get("Retry-After"), e)
		}
		if n := len(h.messagesTo(numberA)); n != 1 {
			t.Fatalf("%d SMS sent during the cooldown", n)
		}
		h.clock.Advance(61 * time.Second)
		if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
			t.Fatalf("resend after cooldown: %d %s", r.StatusCode(), r.Body)
		}
		second := h.code(numberA)
		if n := len(h.messagesTo(numberA)); n != 2 {
			t.Fatalf("%d SMS, want 2", n)
		}
		if first != second {
			wantError(t, 422, h.verify(tok, first).StatusCode(), h.verify(tok, first).Body, userphone.CodeInvalidCode)
		}
		if v := h.verify(tok, second); v.StatusCode() != http.StatusOK {
			t.Fatalf("new code: %d %s", v.StatusCode(), v.Body)
		}
	})
}

func TestResendOfTheEmailVoidsTheOldLink(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("erin", "erin@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB)
		old := h.linkToken("erin@example.com")
		h.clock.Advance(time.Minute)
		if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("resend: %d %s", r.StatusCode(), r.Body)
		}
		fresh := h.linkToken("erin@example.com")
		if old == fresh {
			t.Fatal("the resent e-mail carries the same link")
		}
		if r := h.confirm(old); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("old link: %d, want 404", r.StatusCode())
		}
		if r := h.confirm(fresh); r.StatusCode() != http.StatusOK {
			t.Fatalf("new link: %d", r.StatusCode())
		}
	})
}

func TestAnotherNumberSupersedesThePendingChange(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("frank", "frank@example.com")
		h.put(tok, numberA)
		codeA := h.code(numberA)
		// Switching numbers at once would let anyone send an SMS per request.
		r := h.put(tok, numberB)
		wantError(t, 429, r.StatusCode(), r.Body, userphone.CodeRateLimited)
		if len(h.messagesTo(numberB)) != 0 {
			t.Fatal("an SMS went out during the cool-down")
		}
		h.clock.Advance(time.Minute)
		r = h.put(tok, numberB)
		if r.StatusCode() != http.StatusCreated || r.ApplicationvndApiJSON201.Data.Attributes.PendingChange.PhoneNumber != numberB {
			t.Fatalf("PUT B: %d %s", r.StatusCode(), r.Body)
		}
		codeB := h.code(numberB)
		if codeA != codeB {
			v := h.verify(tok, codeA)
			wantError(t, 422, v.StatusCode(), v.Body, userphone.CodeInvalidCode)
		}
		if v := h.verify(tok, codeB); v.StatusCode() != http.StatusOK || v.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber != numberB {
			t.Fatalf("verify B: %d %s", v.StatusCode(), v.Body)
		}
	})
}

func TestWrongCodesCountDownThenCancel(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("gina", "gina@example.com")
		h.put(tok, numberA)
		wrong := wrongCode(h.code(numberA))
		for left := 4; left >= 1; left-- {
			v := h.verify(tok, wrong)
			e := wantError(t, 422, v.StatusCode(), v.Body, userphone.CodeInvalidCode)
			if e.Meta == nil || e.Meta.RemainingAttempts == nil || *e.Meta.RemainingAttempts != left {
				t.Fatalf("remainingAttempts = %+v, want %d", e.Meta, left)
			}
		}
		v := h.verify(tok, wrong)
		wantError(t, 429, v.StatusCode(), v.Body, userphone.CodeTooManyAttempts)
		if got := v.HTTPResponse.Header.Get("Retry-After"); got != "60" {
			t.Fatalf("Retry-After = %q, want the cool-down of 60 s", got)
		}
		// Starting over at once would give a fresh set of guesses: it waits.
		r := h.put(tok, numberA)
		wantError(t, 429, r.StatusCode(), r.Body, userphone.CodeRateLimited)
		// The change is gone: even the right code no longer works.
		v = h.verify(tok, h.code(numberA))
		wantError(t, 404, v.StatusCode(), v.Body, userphone.CodeNoPendingVerification)
		wantError(t, 404, h.check(tok).StatusCode(), h.check(tok).Body, userphone.CodeNotFound)
	})
}

func wrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}

func TestChangesExpireAfterTheProcessTTL(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("hank", "hank@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB)
		link := h.linkToken("hank@example.com")
		h.clock.Advance(24*time.Hour + time.Second)

		if page := h.showConfirmation(link); page.StatusCode() != http.StatusGone {
			t.Fatalf("expired link page: %d", page.StatusCode())
		}
		if r := h.confirm(link); r.StatusCode() != http.StatusGone {
			t.Fatalf("expired link confirm: %d", r.StatusCode())
		}
		v := h.verify(tok, "123456")
		wantError(t, 404, v.StatusCode(), v.Body, userphone.CodeVerificationExpired)
		c := h.check(tok)
		if c.StatusCode() != http.StatusOK || c.ApplicationvndApiJSON200.Data.Attributes.PendingChange != nil ||
			c.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber != numberA {
			t.Fatalf("check after expiry: %s", c.Body)
		}
		if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("a new change after expiry: %d %s", r.StatusCode(), r.Body)
		}
	})
}

func TestVerifyOfAnAwaitingCodeChangePastItsLimit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("ivy", "ivy@example.com")
		h.put(tok, numberA)
		code := h.code(numberA)
		h.clock.Advance(24 * time.Hour)
		v := h.verify(tok, code)
		wantError(t, 404, v.StatusCode(), v.Body, userphone.CodeVerificationExpired)
		wantError(t, 404, h.check(tok).StatusCode(), h.check(tok).Body, userphone.CodeNotFound)
	})
}

func TestVerifyWithNothingPending(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		v := h.verify(h.token("jack", ""), "123456")
		wantError(t, 404, v.StatusCode(), v.Body, userphone.CodeNoPendingVerification)
	})
}

func TestChangeWithoutKnownEmailIsRefusedAndChangesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("kim", "")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB) // no e-mail: refused
		before := h.check(tok).Body
		r := h.put(tok, "+4915200000001")
		wantError(t, 409, r.StatusCode(), r.Body, userphone.CodeEmailRequired)
		if after := h.check(tok).Body; string(after) != string(before) {
			t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
		}
		// A token with the e-mail claim fixes it, and the address is remembered.
		if r := h.put(h.token("kim", "kim@example.com"), numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("with e-mail: %d %s", r.StatusCode(), r.Body)
		}
		h.clock.Advance(time.Minute)
		if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("remembered e-mail: %d %s", r.StatusCode(), r.Body)
		}
	})
}

func TestVerifiedNumberMovesToTheUserWhoProvesItLast(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		first := h.token("first", "first@example.com")
		second := h.token("second", "second@example.com")
		h.verifyNumber(first, numberA)

		r := h.put(second, numberA)
		if r.StatusCode() != http.StatusCreated {
			t.Fatalf("PUT by the second user: %d %s", r.StatusCode(), r.Body)
		}
		// Nothing tells the second user that the number belongs to someone.
		if strings.Contains(string(r.Body), "first") {
			t.Fatalf("response reveals the owner: %s", r.Body)
		}
		if len(h.messagesTo("first@example.com")) != 0 {
			t.Fatal("the owner was told before possession was proven")
		}
		if v := h.verify(second, h.code(numberA)); v.StatusCode() != http.StatusOK {
			t.Fatalf("verify by the second user: %d %s", v.StatusCode(), v.Body)
		}
		wantError(t, 404, h.check(first).StatusCode(), h.check(first).Body, userphone.CodeNotFound)
		if c := h.check(second); c.StatusCode() != 200 || c.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber != numberA {
			t.Fatalf("second user: %s", c.Body)
		}
		mails := h.messagesTo("first@example.com")
		if len(mails) != 1 || mails[0].Kind != "number-removed" || strings.Contains(mails[0].Text, numberA) {
			t.Fatalf("the first user must be told, with the number masked: %+v", mails)
		}
	})
}
