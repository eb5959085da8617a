package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/metrics"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// providers are the outside world of a harness with real delivery: a real
// SMTP server and a stand-in for Twilio's API.
type providers struct {
	smtp   *testservers.SMTP
	twilio *testservers.Twilio
}

// realDelivery runs the service with its SMTP and Twilio senders against
// the test servers. smtp may be down, to start with an outage.
func realDelivery(t *testing.T, d store.Dialect, smtp *testservers.SMTP, queue jobs.Config) (*harness, providers) {
	t.Helper()
	p := providers{smtp: smtp, twilio: testservers.StartTwilio(t)}
	mail, err := delivery.NewSMTP(delivery.SMTPConfig{URL: smtp.URL(), From: "userphone@example.com", Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sms, err := delivery.NewTwilio(delivery.TwilioConfig{
		AccountSID: testservers.TwilioSID, AuthToken: testservers.TwilioToken,
		From: testservers.TwilioFrom, APIURL: p.twilio.URL(),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	queue.FirstRetry = max(queue.FirstRetry, 50*time.Millisecond)
	m := metrics.New()
	h := newHarness(t, options{cfg: storetest.Config(t, d), queue: queue, metrics: m,
		sender: delivery.Channels{Email: delivery.Observed(mail, "smtp", m), SMS: delivery.Observed(sms, "twilio", m)}})
	return h, p
}

// eventually polls cond until it holds, for retries that back off.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastCode is the code of the newest SMS the stand-in accepted for number.
func (p providers) lastCode(t *testing.T, number string) string {
	t.Helper()
	var code string
	for _, s := range p.twilio.Accepted() {
		if s.To == number {
			if c, ok := testservers.SMSCode(s.Body); ok {
				code = c
			}
		}
	}
	if code == "" {
		t.Fatalf("no SMS to %s at Twilio: %+v", number, p.twilio.Accepted())
	}
	return code
}

func (p providers) smsTo(number string) int {
	n := 0
	for _, s := range p.twilio.Accepted() {
		if s.To == number {
			n++
		}
	}
	return n
}

// linkToken is the token of the newest e-mail's link to rcpt.
func (p providers) linkToken(t *testing.T, rcpt string) string {
	t.Helper()
	mails := p.smtp.To(rcpt)
	if len(mails) == 0 {
		t.Fatalf("no e-mail to %s", rcpt)
	}
	token, ok := testservers.ConfirmLinkToken(mails[len(mails)-1].Text)
	if !ok {
		t.Fatalf("no link in the e-mail: %q", mails[len(mails)-1].Text)
	}
	return token
}

func TestTheWholeFlowOverSMTPAndTwilio(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			h, p := realDelivery(t, d, testservers.StartSMTP(t), jobs.Config{})
			tok := h.token("xena", "xena@example.com")
			if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
			}
			h.settle()
			if v := h.verify(tok, p.lastCode(t, numberA)); v.StatusCode() != http.StatusOK {
				t.Fatalf("verify: %d %s", v.StatusCode(), v.Body)
			}
			if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT B: %d %s", r.StatusCode(), r.Body)
			}
			h.settle()
			mails := p.smtp.To("xena@example.com")
			if len(mails) != 1 || mails[0].HTML == "" || !strings.Contains(mails[0].HTML, "href=") ||
				mails[0].Header.Get("Subject") == "" || mails[0].Header.Get("Message-Id") == "" {
				t.Fatalf("the confirmation e-mail: %+v", mails)
			}
			if p.smsTo(numberB) != 0 {
				t.Fatal("an SMS went out before the link was confirmed")
			}
			if r := h.confirm(p.linkToken(t, "xena@example.com")); r.StatusCode() != http.StatusOK {
				t.Fatalf("confirm: %d %s", r.StatusCode(), r.Body)
			}
			h.settle()
			if v := h.verify(tok, p.lastCode(t, numberB)); v.StatusCode() != http.StatusOK {
				t.Fatalf("verify B: %d %s", v.StatusCode(), v.Body)
			}
			if len(p.smtp.Mails()) != 1 || len(p.twilio.Accepted()) != 2 {
				t.Fatalf("%d mails and %d SMS, want 1 and 2", len(p.smtp.Mails()), len(p.twilio.Accepted()))
			}
			if len(h.messages()) != 0 {
				t.Fatal("messages went to the dev outbox with providers configured")
			}
		})
	}
}

func TestAnSMTPServerThatComesUpLateGetsTheMailOnce(t *testing.T) {
	smtp := testservers.NewSMTP(t) // down
	h, p := realDelivery(t, store.SQLite, smtp, jobs.Config{})
	tok := h.token("yuri", "yuri@example.com")
	h.verifyNumberVia(p, tok, numberA)
	if r := h.put(tok, numberB); r.StatusCode() != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
	}
	time.Sleep(200 * time.Millisecond) // a few failed attempts
	smtp.Up()
	eventually(t, "the e-mail", func() bool { return len(smtp.To("yuri@example.com")) > 0 })
	time.Sleep(300 * time.Millisecond) // time for a duplicate to show up
	if n := len(smtp.To("yuri@example.com")); n != 1 {
		t.Fatalf("%d e-mails arrived, want exactly 1", n)
	}
}

func TestAnSMSProviderFailingTwiceThenAcceptingSendsOneSMS(t *testing.T) {
	h, p := realDelivery(t, store.Postgres, testservers.StartSMTP(t), jobs.Config{})
	p.twilio.Script(0, 500, 500, 201)
	tok := h.token("zoe", "zoe@example.com")
	if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
		t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
	}
	eventually(t, "the SMS", func() bool { return p.smsTo(numberA) > 0 })
	time.Sleep(300 * time.Millisecond)
	if p.smsTo(numberA) != 1 || p.twilio.Requests() != 3 {
		t.Fatalf("%d SMS accepted after %d requests, want 1 after 3", p.smsTo(numberA), p.twilio.Requests())
	}
	h.settle()
	fams := h.scrape()
	want(t, fams, 3, "userphone_delivery_attempts_total", "channel", "sms", "provider", "twilio")
	want(t, fams, 2, "userphone_delivery_failures_total", "channel", "sms", "provider", "twilio", "class", "transient")
	want(t, fams, 2, "userphone_delivery_failures_total")
	if v := h.verify(tok, p.lastCode(t, numberA)); v.StatusCode() != http.StatusOK {
		t.Fatalf("verify: %d %s", v.StatusCode(), v.Body)
	}
}

func TestAPermanentProviderErrorCancelsTheChange(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			h, p := realDelivery(t, d, testservers.StartSMTP(t), jobs.Config{})
			p.twilio.Script(21211, 400) // "The 'To' number is not a valid phone number."
			tok := h.token("abel", "abel@example.com")
			if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
			}
			eventually(t, "the cancel", func() bool { return h.check(tok).StatusCode() == http.StatusNotFound })
			v := h.verify(tok, "123456")
			wantError(t, 404, v.StatusCode(), v.Body, userphone.CodeNoPendingVerification)
			if reason := h.cancelReason(t, "abel"); reason != "delivery-failed: refused" {
				t.Fatalf("cancel reason %q", reason)
			}
			if p.twilio.Requests() != 1 {
				t.Fatalf("a permanent error was retried: %d requests", p.twilio.Requests())
			}
			fams := h.scrape()
			want(t, fams, 1, "userphone_delivery_attempts_total", "channel", "sms", "provider", "twilio")
			want(t, fams, 1, "userphone_delivery_failures_total", "channel", "sms", "provider", "twilio", "class", "permanent")
			want(t, fams, 1, "userphone_delivery_failures_total")
			want(t, fams, 1, "userphone_flow_events_total", "event", "delivery_failed")
			want(t, fams, 1, "userphone_flow_events_total", "event", "cancelled")
			// A new PUT, after the cool-down, starts over.
			h.clock.Advance(time.Minute)
			if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("new PUT: %d %s", r.StatusCode(), r.Body)
			}
			eventually(t, "the SMS", func() bool { return p.smsTo(numberA) == 1 })
		})
	}
}

func TestExhaustedAttemptsMarkTheChangeAsFailedDelivery(t *testing.T) {
	h, p := realDelivery(t, store.SQLite, testservers.StartSMTP(t), jobs.Config{MaxAttempts: 3})
	p.twilio.Script(0, 503, 503, 503, 503)
	tok := h.token("bert", "bert@example.com")
	h.put(tok, numberA)
	eventually(t, "the cancel", func() bool { return h.check(tok).StatusCode() == http.StatusNotFound })
	if reason := h.cancelReason(t, "bert"); reason != "delivery-failed: gave-up" {
		t.Fatalf("cancel reason %q", reason)
	}
	if p.twilio.Requests() != 3 || p.smsTo(numberA) != 0 {
		t.Fatalf("%d requests, %d accepted; want 3 and 0", p.twilio.Requests(), p.smsTo(numberA))
	}
	fams := h.scrape()
	want(t, fams, 3, "userphone_delivery_failures_total", "channel", "sms", "provider", "twilio", "class", "transient")
	want(t, fams, 1, "userphone_flow_events_total", "event", "delivery_failed")
}

// verifyNumberVia verifies a first number with the code from the Twilio
// stand-in.
func (h *harness) verifyNumberVia(p providers, tok, number string) {
	h.t.Helper()
	if r := h.put(tok, number); r.StatusCode() != http.StatusCreated {
		h.t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
	}
	eventually(h.t, "the SMS", func() bool { return p.smsTo(number) > 0 })
	if v := h.verify(tok, p.lastCode(h.t, number)); v.StatusCode() != http.StatusOK {
		h.t.Fatalf("verify: %d %s", v.StatusCode(), v.Body)
	}
}

// cancelReason reads the reason of the user's newest change.
func (h *harness) cancelReason(t *testing.T, userID string) string {
	var reason string
	if err := h.store.DB().Raw("SELECT cancel_reason FROM phone_changes WHERE user_id = ? ORDER BY created_at DESC LIMIT 1", userID).
		Scan(&reason).Error; err != nil {
		t.Fatal(err)
	}
	return reason
}
