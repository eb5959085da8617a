package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/testservers"
)

// The flow's rules are tested in flow/; these walk a change through the
// API and the confirmation page, and show how HTTP answers each of the
// flow's outcomes: status, headers and the JSON:API error.

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

// wantRetryAfter asserts the refusal's Retry-After header, in seconds.
func wantRetryAfter(t *testing.T, header http.Header, want string) {
	t.Helper()
	if got := header.Get("Retry-After"); got != want {
		t.Fatalf("Retry-After = %q, want %q", got, want)
	}
}

// Each refusal of the flow, as HTTP answers it: status, code, Retry-After
// and the error's meta.
func TestTheFlowsRefusalsInHTTPTerms(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("gina", "gina@example.com")
		h.put(tok, numberA)
		r := h.put(tok, numberA)
		wantError(t, 429, r.StatusCode(), r.Body, api.ErrorCodeRateLimited)
		wantRetryAfter(t, r.HTTPResponse.Header, "60")

		wrong := testservers.WrongCode(h.code(numberA))
		for left := 4; left >= 1; left-- {
			v := h.verify(tok, wrong)
			e := wantError(t, 422, v.StatusCode(), v.Body, api.ErrorCodeInvalidCode)
			if e.Meta == nil || e.Meta.RemainingAttempts == nil || *e.Meta.RemainingAttempts != left {
				t.Fatalf("remainingAttempts = %+v, want %d", e.Meta, left)
			}
		}
		v := h.verify(tok, wrong)
		wantError(t, 429, v.StatusCode(), v.Body, api.ErrorCodeTooManyAttempts)
		wantRetryAfter(t, v.HTTPResponse.Header, "60")
		v = h.verify(tok, h.code(numberA))
		wantError(t, 404, v.StatusCode(), v.Body, api.ErrorCodeNoPendingVerification)
		wantError(t, 404, h.check(tok).StatusCode(), h.check(tok).Body, api.ErrorCodeNotFound)

		kim := h.token("kim", "")
		h.verifyNumber(kim, numberB)
		r = h.put(kim, "+4915200000001")
		wantError(t, 409, r.StatusCode(), r.Body, api.ErrorCodeEmailRequired)
	})
}

// The confirmation link's states as the page answers them, and a change
// past its limit as the API does.
func TestLinksAndExpiryInHTTPTerms(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("hank", "hank@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB)
		old := h.linkToken("hank@example.com")
		h.clock.Advance(time.Minute)
		h.put(tok, numberB) // a resend: a new link replaces the old one
		link := h.linkToken("hank@example.com")
		if r := h.confirm(old); r.StatusCode() != http.StatusNotFound {
			t.Fatalf("the replaced link: %d, want 404", r.StatusCode())
		}
		h.clock.Advance(24*time.Hour + time.Second)
		if page := h.showConfirmation(link); page.StatusCode() != http.StatusGone {
			t.Fatalf("the expired link's page: %d, want 410", page.StatusCode())
		}
		if r := h.confirm(link); r.StatusCode() != http.StatusGone {
			t.Fatalf("the expired link's confirm: %d, want 410", r.StatusCode())
		}
		v := h.verify(tok, "123456")
		wantError(t, 404, v.StatusCode(), v.Body, api.ErrorCodeVerificationExpired)
		c := h.check(tok)
		if c.StatusCode() != http.StatusOK || c.ApplicationvndApiJSON200.Data.Attributes.PendingChange != nil {
			t.Fatalf("check after expiry: %d %s", c.StatusCode(), c.Body)
		}
		v = h.verify(h.token("jack", ""), "123456")
		wantError(t, 404, v.StatusCode(), v.Body, api.ErrorCodeNoPendingVerification)
	})
}
