package server_test

import (
	"net/http"
	"testing"

	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/store/storetest"
)

// A process that stops between the commit and the send loses nothing: the
// job waits in the database, and the next process sends the message once.
func TestAMessageCommittedBeforeAStopGoesOutAfterTheRestart(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := storetest.Config(t, d)
			// An API-only replica commits the change and its job, then stops
			// before any worker could send.
			apiOnly := newHarness(t, options{cfg: cfg, queue: jobs.Config{Workers: -1}})
			tok := apiOnly.token("vera", "vera@example.com")
			if r := apiOnly.put(tok, numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
			}
			if n := len(apiOnly.messages()); n != 0 {
				t.Fatalf("%d messages sent without workers", n)
			}
			apiOnly.stop()

			after := newHarness(t, options{cfg: cfg, clk: apiOnly.clock})
			if sms := after.messagesTo(numberA); len(sms) != 1 {
				t.Fatalf("%d SMS after the restart, want exactly 1", len(sms))
			}
			if v := after.verify(tok, after.code(numberA)); v.StatusCode() != http.StatusOK {
				t.Fatalf("verify: %d %s", v.StatusCode(), v.Body)
			}
		})
	}
}

// A request that fails rolls back its state change and its message alike.
func TestARolledBackChangeSendsNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("walt", "")
		h.verifyNumber(tok, numberA)
		before := len(h.messages())
		r := h.put(tok, numberB) // needs an e-mail, and none is known: 409
		if r.StatusCode() != http.StatusConflict {
			t.Fatalf("PUT: %d", r.StatusCode())
		}
		if n := len(h.messages()); n != before {
			t.Fatalf("%d messages from a rolled-back change", n-before)
		}
	})
}
