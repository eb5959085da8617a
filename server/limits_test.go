package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/store/storetest"
)

// limited asserts a refusal that sent and changed nothing.
func (h *harness) limited(t *testing.T, r interface {
	StatusCode() int
}, body []byte, status int, code userphone.ErrorCode, retryAfter string, before int) {
	t.Helper()
	wantError(t, status, r.StatusCode(), body, code)
	if n, _ := strconv.Atoi(retryAfter); n < 1 {
		t.Fatalf("Retry-After = %q", retryAfter)
	}
	if n := len(h.messages()); n != before {
		t.Fatalf("a refused request sent %d messages", n-before)
	}
}

func TestChangeRequestsPerUserAreLimitedPerHourAndDay(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{ChangesPerHour: 2, ChangesPerDay: 3}}, func(t *testing.T, h *harness) {
		tok := h.token("lim1", "lim1@example.com")
		numbers := []string{"+4915112345601", "+4915112345602", "+4915112345603", "+4915112345604"}
		for _, n := range numbers[:2] {
			if r := h.put(tok, n); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT %s: %d %s", n, r.StatusCode(), r.Body)
			}
			h.clock.Advance(61 * time.Second) // past the resend cool-down
		}
		before := len(h.messages())
		r := h.put(tok, numbers[2])
		h.limited(t, r, r.Body, 429, userphone.CodeRateLimited, r.HTTPResponse.Header.Get("Retry-After"), before)
		if c := h.check(tok); c.ApplicationvndApiJSON201.Data.Attributes.PendingChange.PhoneNumber != numbers[1] {
			t.Fatalf("the refused request changed the pending change: %s", c.Body)
		}
		// The hour rolls on: one more, then the day's limit.
		h.clock.Advance(time.Hour)
		if r := h.put(tok, numbers[2]); r.StatusCode() != http.StatusCreated {
			t.Fatalf("after the hour: %d %s", r.StatusCode(), r.Body)
		}
		h.clock.Advance(time.Hour)
		before = len(h.messages())
		r = h.put(tok, numbers[3])
		h.limited(t, r, r.Body, 429, userphone.CodeRateLimited, r.HTTPResponse.Header.Get("Retry-After"), before)
		h.clock.Advance(24 * time.Hour)
		if r := h.put(tok, numbers[3]); r.StatusCode() != http.StatusCreated {
			t.Fatalf("after the day: %d %s", r.StatusCode(), r.Body)
		}
		if !h.trailHas(t, "lim1", userphone.EventRateLimited) {
			t.Fatal("the refusal is not in the audit trail")
		}
	})
}

func TestSMSPerNumberAreLimitedAcrossUsers(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{SMSPerNumberPerHour: 2, SMSPerNumberPerDay: 3}}, func(t *testing.T, h *harness) {
		for i := range 2 {
			if r := h.put(h.token(fmt.Sprint("pump", i), ""), numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT %d: %d %s", i, r.StatusCode(), r.Body)
			}
		}
		before := len(h.messages())
		r := h.put(h.token("pump2", ""), numberA)
		h.limited(t, r, r.Body, 429, userphone.CodeRateLimited, r.HTTPResponse.Header.Get("Retry-After"), before)
		if r := h.put(h.token("pump2", ""), numberB); r.StatusCode() != http.StatusCreated {
			t.Fatalf("another number: %d %s", r.StatusCode(), r.Body)
		}
		h.clock.Advance(time.Hour)
		if r := h.put(h.token("pump3", ""), numberA); r.StatusCode() != http.StatusCreated {
			t.Fatalf("after the hour: %d %s", r.StatusCode(), r.Body)
		}
		before = len(h.messages())
		h.clock.Advance(time.Hour)
		r = h.put(h.token("pump4", ""), numberA)
		h.limited(t, r, r.Body, 429, userphone.CodeRateLimited, r.HTTPResponse.Header.Get("Retry-After"), before)
		h.clock.Advance(24 * time.Hour)
		if r := h.put(h.token("pump4", ""), numberA); r.StatusCode() != http.StatusCreated {
			t.Fatalf("after the day: %d %s", r.StatusCode(), r.Body)
		}
	})
}

// The SMS of a confirmation counts too; a refused one leaves the link
// usable once the window rolls on, and is in the trail.
func TestTheConfirmationSMSIsLimitedToo(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{SMSPerNumberPerHour: 1}}, func(t *testing.T, h *harness) {
		tok := h.token("conf", "conf@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB)
		link := h.linkToken("conf@example.com")
		h.put(h.token("other", ""), numberB) // the one SMS to numberB this hour
		before := len(h.messages())
		r := h.confirm(link)
		h.limited(t, r, r.Body, 429, userphone.CodeRateLimited, r.HTTPResponse.Header.Get("Retry-After"), before)
		if !h.trailHas(t, "conf", userphone.EventRateLimited) {
			t.Fatal("the refused confirmation is not in the trail")
		}
		h.clock.Advance(time.Hour)
		if r := h.confirm(link); r.StatusCode() != http.StatusOK {
			t.Fatalf("the link after the hour: %d", r.StatusCode())
		}
	})
}

func TestTheGlobalSMSBudgetStopsSending(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{SMSPerHour: 2}}, func(t *testing.T, h *harness) {
		h.put(h.token("g0", ""), "+4915112345611")
		h.put(h.token("g1", ""), "+4915112345612")
		before := len(h.messages())
		r := h.put(h.token("g2", ""), "+4915112345613")
		h.limited(t, r, r.Body, 503, userphone.CodeServiceUnavailable, r.HTTPResponse.Header.Get("Retry-After"), before)
		if !h.logs.has("global SMS budget") {
			t.Fatal("the trip was not logged")
		}
		h.clock.Advance(time.Hour)
		if r := h.put(h.token("g2", ""), "+4915112345613"); r.StatusCode() != http.StatusCreated {
			t.Fatalf("after the hour: %d", r.StatusCode())
		}
	})
}

func TestLimitsHoldAcrossTwoInstancesOnOneDatabase(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := storetest.Config(t, d)
			limits := flow.Limits{SMSPerNumberPerHour: 2, ChangesPerHour: 2, SMSPerHour: 5}
			a := newHarness(t, options{cfg: cfg, limits: limits})
			b := newHarness(t, options{cfg: cfg, limits: limits, clk: a.clock})
			// SMS per number: one on each instance, the third refused.
			if r := a.put(a.token("x1", ""), numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("a: %d", r.StatusCode())
			}
			if r := b.put(b.token("x2", ""), numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("b: %d", r.StatusCode())
			}
			r := a.put(a.token("x3", ""), numberA)
			wantError(t, 429, r.StatusCode(), r.Body, userphone.CodeRateLimited)
			// Changes per user: one on each instance, the third refused.
			a.clock.Advance(61 * time.Second)
			if r := a.put(a.token("x4", ""), "+4915112345621"); r.StatusCode() != http.StatusCreated {
				t.Fatalf("a: %d %s", r.StatusCode(), r.Body)
			}
			a.clock.Advance(61 * time.Second)
			if r := b.put(b.token("x4", ""), "+4915112345622"); r.StatusCode() != http.StatusCreated {
				t.Fatalf("b: %d %s", r.StatusCode(), r.Body)
			}
			a.clock.Advance(61 * time.Second)
			r = a.put(a.token("x4", ""), "+4915112345623")
			wantError(t, 429, r.StatusCode(), r.Body, userphone.CodeRateLimited)
			// The global budget (5): four SMS so far; one more, then none.
			if r := b.put(b.token("x5", ""), "+4915112345624"); r.StatusCode() != http.StatusCreated {
				t.Fatalf("b: %d %s", r.StatusCode(), r.Body)
			}
			r = a.put(a.token("x6", ""), "+4915112345625")
			wantError(t, 503, r.StatusCode(), r.Body, userphone.CodeServiceUnavailable)
		})
	}
}

func TestNumbersOutsideTheAllowedRegionsAreRefused(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{AllowedRegions: []string{"DE", "AT"}}}, func(t *testing.T, h *harness) {
		tok := h.token("reg", "")
		r := h.put(tok, "+1 415 555 2671")
		e := wantError(t, 422, r.StatusCode(), r.Body, userphone.CodePhoneNumberNotAllowed)
		if pointerOf(e) != "/data/attributes/phoneNumber" {
			t.Fatalf("pointer %q", pointerOf(e))
		}
		if len(h.messages()) != 0 {
			t.Fatal("a refused number got an SMS")
		}
		if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
			t.Fatalf("a German number: %d", r.StatusCode())
		}
	})
}

// No request may tell that a number belongs to someone else: a PUT of
// another user's verified number answers like one of a fresh number, in
// status, body shape and time.
func TestNoEnumerationOfVerifiedNumbers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		h.verifyNumber(h.token("owner", "owner@example.com"), numberA)
		shape := func(body []byte) string {
			var v map[string]map[string]map[string]any
			json.Unmarshal(body, &v)
			var keys []string
			for k := range v["data"]["attributes"] {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return fmt.Sprint(keys)
		}
		const rounds = 15
		var owned, fresh []time.Duration
		for i := range rounds {
			start := time.Now()
			r1 := h.put(h.token(fmt.Sprint("probe-owned-", i), ""), numberA)
			owned = append(owned, time.Since(start))
			start = time.Now()
			r2 := h.put(h.token(fmt.Sprint("probe-fresh-", i), ""), fmt.Sprintf("+49151123457%02d", i))
			fresh = append(fresh, time.Since(start))
			if r1.StatusCode() != r2.StatusCode() || shape(r1.Body) != shape(r2.Body) {
				t.Fatalf("owned: %d %s\nfresh: %d %s", r1.StatusCode(), r1.Body, r2.StatusCode(), r2.Body)
			}
		}
		// Loose on purpose: this guards against a different code path (an
		// extra lookup, a lock wait), not against a few microseconds.
		mo, mf := median(owned), median(fresh)
		if mo > 2*mf+5*time.Millisecond || mf > 2*mo+5*time.Millisecond {
			t.Fatalf("median PUT time: owned number %v, fresh number %v", mo, mf)
		}
		t.Logf("median PUT time: owned number %v, fresh number %v", mo, mf)
	})
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// forEachDialectWith is forEachDialect with harness options.
func forEachDialectWith(t *testing.T, o options, fn func(t *testing.T, h *harness)) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			o := o
			o.cfg = storetest.Config(t, d)
			fn(t, newHarness(t, o))
		})
	}
}

// trailHas reports whether the user's audit trail holds an event of kind.
func (h *harness) trailHas(t *testing.T, userID string, kind userphone.EventKind) bool {
	var n int64
	if err := h.store.DB().Table("phone_events").Where("user_id = ? AND kind = ?", userID, string(kind)).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// The per-client limit answers every operation the same way, in the spec's
// terms.
func TestTheClientLimitAnswersEveryOperation(t *testing.T) {
	forEachDialectWith(t, options{ipRate: 0.001, ipBurst: 2}, func(t *testing.T, h *harness) {
		tok := h.token("ip", "")
		h.check(tok)
		h.check(tok)
		r := h.check(tok)
		wantError(t, 429, r.StatusCode(), r.Body, userphone.CodeRateLimited)
		page := h.showConfirmation("any")
		wantError(t, 429, page.StatusCode(), page.Body, userphone.CodeRateLimited)
		if page.HTTPResponse.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	})
}
