package testservers_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/internal/testservers"
)

// The receiver is written from README.md and the sender from its own
// package: each test sends with the real sender, delivery.Webhook, so
// that a difference between the two in the wire format fails here.

const webhookSecret = "0123456789abcdef0123456789abcdef-receiver"

// sender is the service's webhook sender pointed at w, signing with
// secret; a zero timeout keeps the sender's default.
func sender(t *testing.T, w *testservers.Webhook, secret string, timeout time.Duration) *delivery.Webhook {
	t.Helper()
	cfg := delivery.WebhookConfig{URL: w.URL(), Secret: secret}
	if timeout > 0 {
		cfg.HTTPClient = &http.Client{Timeout: timeout}
	}
	s, err := delivery.NewWebhook(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func codeSMS(to, key string) userphone.Message {
	return userphone.Message{Channel: userphone.ChannelSMS, To: to, Kind: "code", Lang: "en", IdempotencyKey: key,
		Text: "918273 is your code to verify your phone number. Do not share it."}
}

func TestWebhookTakesTheRealSendersSMSOnceAndDeduplicatesItsRetry(t *testing.T) {
	var handed []testservers.WebhookSMS
	w := testservers.StartWebhook(t, webhookSecret, testservers.OnWebhookSMS(func(m testservers.WebhookSMS) { handed = append(handed, m) }))
	s := sender(t, w, webhookSecret, 0)
	m := codeSMS("+4915112345678", "key-1")
	since := time.Now()
	for range 2 { // a retry of one message: same key, new timestamp and signature
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	got := w.SMS()
	if len(got) != 2 || !got[0].Taken() || got[1].Taken() || !got[1].Duplicate || got[1].Status != http.StatusOK {
		t.Fatalf("want the first request taken and the second a duplicate answered 200: %+v", got)
	}
	if m0 := got[0]; m0.Key != "key-1" || m0.To != m.To || m0.Text != m.Text || m0.Locale != "en" {
		t.Errorf("taken %+v, want what was sent: %+v", m0, m)
	}
	if len(handed) != 1 || len(w.TakenTo(m.To)) != 1 || len(w.ByKey()["key-1"]) != 2 {
		t.Errorf("handed on %d, taken %d, attempts under the key %d; want 1, 1, 2", len(handed), len(w.TakenTo(m.To)), len(w.ByKey()["key-1"]))
	}
	want := testservers.WebhookCounts{Taken: 1, Duplicates: 1, Keys: 1, Retried: 1}
	if c := w.Counts(); c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if code, ok := w.WaitCode(ctx, m.To, since); !ok || code != "918273" {
		t.Errorf("WaitCode: %q %v, want the code the text starts with", code, ok)
	}
	if at, ok := w.FirstTakenSince(m.To, since); !ok || at != got[0].At {
		t.Errorf("FirstTakenSince: %v %v, want the first request's %v", at, ok, got[0].At)
	}
}

func TestWebhookRefusesABadSignatureAndAStaleOrFutureTimestamp(t *testing.T) {
	for _, tc := range []struct {
		name        string
		secret      string
		clockOffset time.Duration
	}{
		{"wrong secret", strings.Repeat("x", 32), 0},
		{"stale timestamp", webhookSecret, 6 * time.Minute},
		{"timestamp from the future", webhookSecret, -6 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := testservers.StartWebhook(t, webhookSecret,
				testservers.WithWebhookClock(func() time.Time { return time.Now().Add(tc.clockOffset) }))
			err := sender(t, w, tc.secret, 0).Send(context.Background(), codeSMS("+4915112345678", "key-"+tc.name))
			// 401 points at the operator's secret or clock: retried, not given up.
			if err == nil || errors.Is(err, userphone.ErrPermanent) || !strings.Contains(err.Error(), "401") {
				t.Errorf("Send: %v; want a transient 401", err)
			}
			if c := w.Counts(); c.Unauthorized != 1 || c.Taken != 0 || len(w.SMS()) != 0 {
				t.Errorf("counts %+v, recorded %d; want one unauthorized and nothing taken", c, len(w.SMS()))
			}
		})
	}
}

// A body that the real sender never makes, signed as it signs, so that
// only the body is at fault.
func TestWebhookRefusesAMalformedBody(t *testing.T) {
	w := testservers.StartWebhook(t, webhookSecret)
	for _, tc := range []struct {
		name, key, body string
		want            int
	}{
		{"not JSON", "k1", `918273 is your code`, http.StatusUnprocessableEntity},
		{"no number", "k2", `{"id":"k2","text":"918273 is your code","locale":"en"}`, http.StatusUnprocessableEntity},
		{"no text", "k3", `{"id":"k3","to":"+4915112345678","locale":"en"}`, http.StatusUnprocessableEntity},
		{"no Idempotency-Key", "", `{"id":"k4","to":"+4915112345678","text":"918273","locale":"en"}`, http.StatusBadRequest},
		{"id is not the key", "k5", `{"id":"other","to":"+4915112345678","text":"918273","locale":"en"}`, http.StatusBadRequest},
	} {
		if got := postSigned(t, w.URL(), tc.key, tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if c := w.Counts(); c.Malformed != 5 || c.Taken != 0 || c.Unauthorized != 0 {
		t.Errorf("counts %+v, want 5 malformed and nothing taken", c)
	}
}

func postSigned(t *testing.T, url, key, body string) int {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(delivery.HeaderIdempotencyKey, key)
	}
	req.Header.Set(delivery.HeaderWebhookTimestamp, ts)
	req.Header.Set(delivery.HeaderWebhookSignature, delivery.SignWebhook([]byte(webhookSecret), ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// FailWith is an outage (500: the sender retries) or a refusal (422: the
// sender gives up); the attempts count under their key, and the one after
// the receiver recovers is taken.
func TestWebhookFailWithAnswersWithoutTaking(t *testing.T) {
	w := testservers.StartWebhook(t, webhookSecret)
	s := sender(t, w, webhookSecret, 0)
	m := codeSMS("+4915112345678", "key-1")
	for _, tc := range []struct {
		status    int
		permanent bool
	}{{http.StatusInternalServerError, false}, {http.StatusUnprocessableEntity, true}} {
		w.FailWith(tc.status)
		err := s.Send(context.Background(), m)
		if err == nil || errors.Is(err, userphone.ErrPermanent) != tc.permanent {
			t.Errorf("FailWith(%d): Send %v; want an error, permanent %v", tc.status, err, tc.permanent)
		}
	}
	w.FailWith(0)
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("after FailWith(0): %v", err)
	}
	attempts := w.ByKey()["key-1"]
	if len(attempts) != 3 || attempts[0].Status != 500 || attempts[1].Status != 422 || !attempts[2].Taken() {
		t.Fatalf("attempts %+v; want 500, 422, then taken", attempts)
	}
	want := testservers.WebhookCounts{Taken: 1, Refused: 2, Keys: 1, Retried: 1}
	if c := w.Counts(); c != want {
		t.Errorf("counts %+v, want %+v", c, want)
	}
}

// HoldAnswers is a sender that gives up waiting after the SMS was taken:
// its retry is a duplicate, not a second SMS.
func TestWebhookHoldAnswersTakesTheSMSBeforeTheAnswer(t *testing.T) {
	w := testservers.StartWebhook(t, webhookSecret)
	w.HoldAnswers(2 * time.Second)
	m := codeSMS("+4915112345678", "key-1")
	if err := sender(t, w, webhookSecret, 200*time.Millisecond).Send(context.Background(), m); err == nil {
		t.Fatal("Send got its answer within 200 ms of a receiver that holds it 2 s")
	}
	if len(w.TakenTo(m.To)) != 1 {
		t.Fatalf("taken %d, want the SMS taken before the answer", len(w.TakenTo(m.To)))
	}
	w.HoldAnswers(0)
	if err := sender(t, w, webhookSecret, 0).Send(context.Background(), m); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if c := w.Counts(); c.Taken != 1 || c.Duplicates != 1 {
		t.Errorf("counts %+v, want the retry answered as a duplicate", c)
	}
}

func TestWebhookAnswersOnlyPOSTsToItsPath(t *testing.T) {
	w := testservers.StartWebhook(t, webhookSecret)
	base := strings.TrimSuffix(w.URL(), testservers.WebhookPath)
	for _, tc := range []struct{ method, url string }{{http.MethodGet, w.URL()}, {http.MethodPost, base + "/other"}} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", tc.method, tc.url, resp.StatusCode)
		}
	}
}

func TestSMSCodeIsTheLeadingSixDigits(t *testing.T) {
	for text, want := range map[string]string{
		"918273 is your code":    "918273",
		"  918273 ist dein Code": "918273",
		"your code is 918273":    "",
		"9182731 is too long":    "",
	} {
		if got, ok := testservers.SMSCode(text); got != want || ok != (want != "") {
			t.Errorf("SMSCode(%q) = %q %v, want %q", text, got, ok, want)
		}
	}
}
