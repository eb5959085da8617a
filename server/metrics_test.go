package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/metrics/metricstest"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// scrape reads the harness's metrics as Prometheus would.
func (h *harness) scrape() metricstest.Families {
	h.t.Helper()
	return metricstest.Scrape(h.t, h.metrics.Handler(nil))
}

// want asserts the sum of the series of family with the labels.
func want(t *testing.T, fams metricstest.Families, value float64, family string, labels ...string) {
	t.Helper()
	if got, _ := fams.Sum(family, labels...); got != value {
		t.Errorf("%s%v = %v; want %v", family, labels, got, value)
	}
}

// After a whole flow, with a wrong code, a move, refusals, a supersede and
// an expiry, the metrics count each step once, requests by operation and
// status, and every message handed to the outbox.
func TestTheMetricsAfterAWholeFlow(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, options{cfg: storetest.Config(t, d), limits: flow.Limits{SMSPerHour: 6}})
			alice := h.token("alice", "alice@example.com")
			bob := h.token("bob", "bob@example.com")
			carol := h.token("carol", "carol@example.com")
			status := func(what string, got, want int, body []byte) {
				t.Helper()
				if got != want {
					t.Fatalf("%s: %d %s; want %d", what, got, body, want)
				}
			}

			// A first number, a wrong code, the right one.
			r := h.put(alice, numberA)
			status("alice PUT A", r.StatusCode(), 201, r.Body)
			code := h.code(numberA)
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			v := h.verify(alice, wrong)
			status("alice wrong code", v.StatusCode(), 422, v.Body)
			v = h.verify(alice, code)
			status("alice verify A", v.StatusCode(), 200, v.Body)

			// A change, confirmed by e-mail, then verified.
			r = h.put(alice, numberB)
			status("alice PUT B", r.StatusCode(), 201, r.Body)
			link := h.linkToken("alice@example.com")
			s := h.showConfirmation(link)
			status("the confirmation page", s.StatusCode(), 200, s.Body)
			c := h.confirm(link)
			status("confirm", c.StatusCode(), 200, c.Body)
			v = h.verify(alice, h.code(numberB))
			status("alice verify B", v.StatusCode(), 200, v.Body)

			// Bob proves alice's number: she is told of his request, it moves
			// to him, and the third SMS of the hour fills the budget's open
			// half; the rest is for quiet networks, and this one is busy.
			r = h.put(bob, numberB)
			status("bob PUT B", r.StatusCode(), 201, r.Body)
			v = h.verify(bob, h.code(numberB))
			status("bob verify B", v.StatusCode(), 200, v.Body)
			h.settle() // the notice to alice goes out

			// Past the SMS budget: 503, and carol's request rolls back.
			r = h.put(carol, numberC)
			status("carol PUT C", r.StatusCode(), 503, r.Body)

			// Bob asks for another number, and again at once: the cool-down.
			r = h.put(bob, numberA)
			status("bob PUT A", r.StatusCode(), 201, r.Body)
			h.settle()
			r = h.put(bob, numberA)
			status("bob PUT A again", r.StatusCode(), 429, r.Body)

			// After it, a third number supersedes the second.
			h.clock.Advance(time.Minute)
			r = h.put(bob, numberC)
			status("bob PUT C", r.StatusCode(), 201, r.Body)
			h.settle()

			// A day later the change has expired.
			h.clock.Advance(25 * time.Hour)
			v = h.verify(bob, "123456")
			wantError(t, 404, v.StatusCode(), v.Body, userphone.CodeVerificationExpired)

			// Outside the API.
			if resp, _ := h.raw(http.MethodGet, "/health/live", "", ""); resp.StatusCode != 200 {
				t.Fatalf("/health/live: %d", resp.StatusCode)
			}
			if resp, _ := h.raw(http.MethodGet, "/no/such/path/"+link, "", ""); resp.StatusCode != 404 {
				t.Fatalf("unknown path: %d", resp.StatusCode)
			}
			h.settle()

			fams := h.scrape()
			const events = "userphone_flow_events_total"
			for event, n := range map[string]float64{
				"change_requested": 5, // carol's rolled back
				"email_sent":       3, // alice B, bob A, bob C
				"email_confirmed":  1,
				"sms_sent":         3,
				"verified":         3,
				"wrong_code":       1,
				"moved_away":       1,
				"rate_limited":     2,
				"cancelled":        1, // bob's A, superseded
				"expired":          1,
				"delivery_failed":  0,
			} {
				want(t, fams, n, events, "event", event)
			}
			const limited = "userphone_flow_rate_limited_total"
			want(t, fams, 1, limited, "limit", "sms_budget")
			want(t, fams, 1, limited, "limit", "cooldown")
			want(t, fams, 0, limited, "limit", "user_changes")
			want(t, fams, 0, limited, "limit", "number_sms")

			const requests = "userphone_http_request_duration_seconds"
			for _, c := range []struct {
				operation, status string
				n                 float64
			}{
				{"UpdateUserPhone", "201", 5}, {"UpdateUserPhone", "503", 1}, {"UpdateUserPhone", "429", 1},
				{"VerifyUserPhone", "422", 1}, {"VerifyUserPhone", "200", 3}, {"VerifyUserPhone", "404", 1},
				{"ShowPhoneConfirmation", "200", 1}, {"ConfirmPhoneChange", "200", 1},
				{"/health/live", "200", 1}, {"unmatched", "404", 1},
			} {
				want(t, fams, c.n, requests, "operation", c.operation, "status", c.status)
			}
			want(t, fams, 16, requests) // nothing else, and no raw path
			if got := len(fams[requests].GetMetric()); got != 10 {
				t.Errorf("%d series of %s; want 10", got, requests)
			}

			// Every message went to the outbox at the first attempt:
			// three SMS, and e-mails to alice (link, two notices) and bob
			// (two links).
			want(t, fams, 3, "userphone_delivery_attempts_total", "channel", "sms", "provider", "outbox")
			want(t, fams, 5, "userphone_delivery_attempts_total", "channel", "email", "provider", "outbox")
			want(t, fams, 0, "userphone_delivery_failures_total")
			want(t, fams, 0, "userphone_delivery_queue_depth")
			want(t, fams, 0, "userphone_delivery_oldest_job_age_seconds")
			if _, found := fams.Sum("userphone_db_pool_max_connections"); (d == store.Postgres) != found {
				t.Errorf("the pgx pool's gauges: found %v on %s", found, d)
			}
			if _, found := fams.Sum("go_sql_open_connections", "db_name", "userphone"); !found {
				t.Error("no database pool statistics")
			}
		})
	}
}

// A request refused before the validator names its operation (by the
// client limit) is still labelled by it; a wrong method on an API path is
// "unmatched".
func TestRefusedRequestsAreLabelledByTheirOperation(t *testing.T) {
	h := newHarness(t, options{cfg: storetest.Config(t, store.SQLite), ipRate: 0.001, ipBurst: 2})
	tok := h.token("dora", "dora@example.com")
	if r := h.check(tok); r.StatusCode() != 404 {
		t.Fatalf("first check: %d", r.StatusCode())
	}
	if resp, _ := h.raw(http.MethodDelete, "/health/live", "", ""); resp.StatusCode != 405 {
		t.Fatalf("DELETE on a probe: %d; want 405", resp.StatusCode)
	}
	if r := h.check(tok); r.StatusCode() != 429 {
		t.Fatalf("second check: %d; want the client limit's 429", r.StatusCode())
	}
	if resp, _ := h.raw(http.MethodDelete, "/user/2021-2/user/phone", "", ""); resp.StatusCode != 429 {
		t.Fatalf("DELETE on the API: %d; want the client limit's 429", resp.StatusCode)
	}
	fams := h.scrape()
	const requests = "userphone_http_request_duration_seconds"
	want(t, fams, 1, requests, "operation", "CheckUserPhone", "status", "404")
	want(t, fams, 1, requests, "operation", "CheckUserPhone", "status", "429")
	want(t, fams, 1, requests, "operation", "unmatched", "status", "429")
	want(t, fams, 1, requests, "operation", "unmatched", "status", "405")
	want(t, fams, 4, requests)
}
