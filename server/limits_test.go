package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/store/storetest"
)

// limited asserts a refusal that sent and changed nothing.
func (h *harness) limited(t *testing.T, r interface {
	StatusCode() int
}, body []byte, status int, code api.ErrorCode, retryAfter string, before int) {
	t.Helper()
	wantError(t, status, r.StatusCode(), body, code)
	if n, _ := strconv.Atoi(retryAfter); n < 1 {
		t.Fatalf("Retry-After = %q", retryAfter)
	}
	if n := len(h.messages()); n != before {
		t.Fatalf("a refused request sent %d messages", n-before)
	}
}

// The abuse limits are tested in flow/; these show how HTTP answers their
// refusals.

// A refused confirmation SMS answers the page's POST with 429.
func TestALimitedConfirmationAnswers429(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{SMSPerPrefixPerHour: 1}}, func(t *testing.T, h *harness) {
		tok := h.token("conf", "conf@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB)
		link := h.linkToken("conf@example.com")
		h.put(h.token("other", ""), numberB) // the one SMS to numberB's range this hour
		before := len(h.messages())
		r := h.confirm(link)
		h.limited(t, r, r.Body, 429, api.ErrorCodeRateLimited, r.HTTPResponse.Header.Get("Retry-After"), before)
		h.clock.Advance(time.Hour)
		if r := h.confirm(link); r.StatusCode() != http.StatusOK {
			t.Fatalf("the link after the hour: %d", r.StatusCode())
		}
	})
}

// The global SMS budget answers 503, as the service cannot send for now.
func TestTheGlobalSMSBudgetAnswers503(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{SMSPerHour: 2}}, func(t *testing.T, h *harness) {
		h.put(h.token("g0", ""), "+4915112345611")
		h.put(h.token("g1", ""), "+4915112345612")
		before := len(h.messages())
		r := h.put(h.token("g2", ""), "+4915112345613")
		h.limited(t, r, r.Body, 503, api.ErrorCodeServiceUnavailable, r.HTTPResponse.Header.Get("Retry-After"), before)
		h.clock.Advance(time.Hour)
		if r := h.put(h.token("g2", ""), "+4915112345613"); r.StatusCode() != http.StatusCreated {
			t.Fatalf("after the hour: %d", r.StatusCode())
		}
	})
}

// A number outside the allowed regions answers 422 and points at the field.
func TestANumberOutsideTheAllowedRegionsAnswers422(t *testing.T) {
	forEachDialectWith(t, options{limits: flow.Limits{AllowedRegions: []string{"DE", "AT"}}}, func(t *testing.T, h *harness) {
		tok := h.token("reg", "")
		r := h.put(tok, "+1 415 555 2671")
		e := wantError(t, 422, r.StatusCode(), r.Body, api.ErrorCodePhoneNumberNotAllowed)
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

// The per-client limit answers every operation the same way, in the spec's
// terms.
func TestTheClientLimitAnswersEveryOperation(t *testing.T) {
	forEachDialectWith(t, options{ipRate: 0.001, ipBurst: 2}, func(t *testing.T, h *harness) {
		tok := h.token("ip", "")
		h.check(tok)
		h.check(tok)
		r := h.check(tok)
		wantError(t, 429, r.StatusCode(), r.Body, api.ErrorCodeRateLimited)
		page := h.showConfirmation("any")
		wantError(t, 429, page.StatusCode(), page.Body, api.ErrorCodeRateLimited)
		if page.HTTPResponse.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	})
}
