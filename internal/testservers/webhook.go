package testservers

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// WebhookPath is where the receiver takes SMS; any other path is 404.
const WebhookPath = "/sms"

// webhookMaxAge is how far a request's timestamp may be from the
// receiver's clock, as README.md asks of receivers: older requests are
// replays.
const webhookMaxAge = 5 * time.Minute

// webhookMaxBody bounds a request's body; a real SMS is under 1 KiB.
const webhookMaxBody = 64 << 10

// WebhookSMS is one signed request of the wire format that the receiver
// answered, whether it took the SMS or not.
type WebhookSMS struct {
	// Key is the Idempotency-Key header, which the body's id repeats.
	Key, To, Text, Locale string
	At                    time.Time // when the request arrived
	// Status is the answer: 200, or the status FailWith set.
	Status int
	// Duplicate marks a 200 for a key taken before: answered, not taken
	// again.
	Duplicate bool
}

// Taken reports whether this request delivered the SMS: the first 200
// for its key.
func (s WebhookSMS) Taken() bool { return s.Status == http.StatusOK && !s.Duplicate }

// WebhookCounts sums up what the receiver answered.
type WebhookCounts struct {
	// Taken SMS, at most one per key; Duplicates, requests for a key
	// already taken; Refused, requests answered with FailWith's status.
	Taken, Duplicates, Refused int
	// Unauthorized counts requests refused for their signature or
	// timestamp (401); Malformed, those that are not an SMS of the wire
	// format.
	Unauthorized, Malformed int
	// Keys counts the distinct keys; Retried, the keys that came more than
	// once.
	Keys, Retried int
}

// Webhook is an SMS gateway as README.md describes one for
// USERPHONE_SMS_PROVIDER=webhook, written from that description rather
// than from the sender's code, so that the two are checked against each
// other: it recomputes the signature over the raw body and compares it in
// constant time, refuses timestamps more than 5 minutes off its clock, and
// takes each Idempotency-Key once. It is an http.Handler, so that a
// command (the load generator) can serve it as well as a test.
type Webhook struct {
	secret  []byte
	now     func() time.Time
	onTaken func(WebhookSMS)
	url     string

	failWith atomic.Int64 // 0: take SMS; else answer this without taking
	hold     atomic.Int64 // nanoseconds each 200 is held back

	mu        sync.Mutex
	all       []WebhookSMS
	byKey     map[string][]int // indexes into all
	takenTo   map[string][]int // indexes into all, of the taken SMS
	counts    WebhookCounts
	lastTaken time.Time
}

// WebhookOption changes a Webhook that NewWebhook makes.
type WebhookOption func(*Webhook)

// WithWebhookClock sets the clock that timestamps are checked against,
// so a test can make the sender's timestamps stale.
func WithWebhookClock(now func() time.Time) WebhookOption {
	return func(w *Webhook) { w.now = now }
}

// OnWebhookSMS calls f with every SMS the receiver takes, once per key,
// before it answers.
func OnWebhookSMS(f func(WebhookSMS)) WebhookOption {
	return func(w *Webhook) { w.onTaken = f }
}

// NewWebhook returns a receiver of the SMS the service signs with secret.
func NewWebhook(secret string, opts ...WebhookOption) *Webhook {
	w := &Webhook{secret: []byte(secret), now: time.Now, byKey: map[string][]int{}, takenTo: map[string][]int{}}
	for _, o := range opts {
		o(w)
	}
	return w
}

// StartWebhook serves a new receiver on loopback until the test ends.
func StartWebhook(t testing.TB, secret string, opts ...WebhookOption) *Webhook {
	w := NewWebhook(secret, opts...)
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	w.url = srv.URL + WebhookPath
	return w
}

// URL is where StartWebhook serves the receiver, for
// USERPHONE_SMS_WEBHOOK_URL; empty for a receiver that NewWebhook made.
func (w *Webhook) URL() string { return w.url }

// FailWith makes the receiver answer status to every signed SMS, without
// taking it: 500 for a gateway that is down (the sender retries), 422 for
// one that refuses the number. 0 takes SMS again.
func (w *Webhook) FailWith(status int) { w.failWith.Store(int64(status)) }

// HoldAnswers makes the receiver take each SMS and hold its 200 back for
// d, so that a sender stopped meanwhile never learns that it was taken.
// 0 answers at once.
func (w *Webhook) HoldAnswers(d time.Duration) { w.hold.Store(int64(d)) }

func (w *Webhook) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != WebhookPath {
		http.Error(rw, "POST "+WebhookPath, http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, webhookMaxBody+1))
	if err != nil || len(body) > webhookMaxBody {
		w.count(&w.counts.Malformed)
		http.Error(rw, "the body is unreadable or over 64 KiB", http.StatusBadRequest)
		return
	}
	ts, sig := req.Header.Get("X-Userphone-Timestamp"), req.Header.Get("X-Userphone-Signature")
	if err := w.checkSignature(ts, sig, body); err != nil {
		// 401 makes the sender retry: its secret or clock is off.
		w.count(&w.counts.Unauthorized)
		http.Error(rw, err.Error(), http.StatusUnauthorized)
		return
	}
	sms, status, err := parseWebhookSMS(req.Header.Get("Idempotency-Key"), body)
	if err != nil {
		w.count(&w.counts.Malformed)
		http.Error(rw, err.Error(), status)
		return
	}
	sms.At, sms.Status = time.Now(), http.StatusOK
	if fail := int(w.failWith.Load()); fail != 0 {
		sms.Status = fail
		w.note(sms)
		http.Error(rw, "failing as the test asked", fail)
		return
	}
	if sms = w.note(sms); sms.Taken() && w.onTaken != nil {
		w.onTaken(sms)
	}
	w.holdAnswer(req.Context())
	rw.WriteHeader(http.StatusOK)
}

// checkSignature recomputes hex(HMAC-SHA256(secret, timestamp + "." +
// body)) and compares it in constant time with the header's value after
// "sha256=", then checks that the timestamp (Unix seconds, covered by the
// signature) is within webhookMaxAge of the clock either way.
func (w *Webhook) checkSignature(timestamp, signature string, body []byte) error {
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return errors.New("X-Userphone-Signature is not sha256=<hex>")
	}
	mac := hmac.New(sha256.New, w.secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("X-Userphone-Signature does not match")
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("X-Userphone-Timestamp is not Unix seconds")
	}
	if d := w.now().Sub(time.Unix(sec, 0)); d > webhookMaxAge || d < -webhookMaxAge {
		return fmt.Errorf("X-Userphone-Timestamp is %s off the clock", d.Round(time.Second))
	}
	return nil
}

// parseWebhookSMS reads the body {"id","to","text","locale"} and checks
// that its id is the Idempotency-Key: a receiver cannot deduplicate
// without one. The status is the answer for an error.
func parseWebhookSMS(key string, body []byte) (WebhookSMS, int, error) {
	var m struct {
		ID     string `json:"id"`
		To     string `json:"to"`
		Text   string `json:"text"`
		Locale string `json:"locale"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.To == "" || m.Text == "" {
		return WebhookSMS{}, http.StatusUnprocessableEntity, errors.New(`not an SMS: want JSON {"id","to","text","locale"}`)
	}
	if key == "" || m.ID != key {
		return WebhookSMS{}, http.StatusBadRequest, errors.New("no Idempotency-Key, or not the body's id")
	}
	return WebhookSMS{Key: key, To: m.To, Text: m.Text, Locale: m.Locale}, 0, nil
}

// note records sms, marked as a duplicate when its key was taken before,
// and returns it so marked.
func (w *Webhook) note(sms WebhookSMS) WebhookSMS {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, i := range w.byKey[sms.Key] {
		sms.Duplicate = sms.Duplicate || w.all[i].Taken()
	}
	i := len(w.all)
	w.all = append(w.all, sms)
	w.byKey[sms.Key] = append(w.byKey[sms.Key], i)
	switch len(w.byKey[sms.Key]) {
	case 1:
		w.counts.Keys++
	case 2:
		w.counts.Retried++
	}
	switch {
	case sms.Taken():
		w.takenTo[sms.To] = append(w.takenTo[sms.To], i)
		w.lastTaken = sms.At
		w.counts.Taken++
	case sms.Duplicate:
		w.counts.Duplicates++
	default:
		w.counts.Refused++
	}
	return sms
}

func (w *Webhook) count(n *int) {
	w.mu.Lock()
	*n++
	w.mu.Unlock()
}

func (w *Webhook) holdAnswer(ctx context.Context) {
	d := time.Duration(w.hold.Load())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// SMS returns every signed request of the wire format, oldest first.
func (w *Webhook) SMS() []WebhookSMS {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]WebhookSMS(nil), w.all...)
}

// ByKey returns the requests by Idempotency-Key, each key's oldest first:
// the attempts to send one message.
func (w *Webhook) ByKey() map[string][]WebhookSMS {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]WebhookSMS, len(w.byKey))
	for key, idx := range w.byKey {
		out[key] = w.pick(idx)
	}
	return out
}

// TakenTo returns the SMS taken for number, oldest first.
func (w *Webhook) TakenTo(number string) []WebhookSMS {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pick(w.takenTo[number])
}

func (w *Webhook) pick(idx []int) []WebhookSMS {
	out := make([]WebhookSMS, len(idx))
	for i, k := range idx {
		out[i] = w.all[k]
	}
	return out
}

// FirstTakenSince returns when the first SMS to number taken at or after
// since arrived.
func (w *Webhook) FirstTakenSince(number string, since time.Time) (time.Time, bool) {
	for _, m := range w.TakenTo(number) {
		if !m.At.Before(since) {
			return m.At, true
		}
	}
	return time.Time{}, false
}

// WaitCode waits until ctx ends for the latest SMS to number to be one
// taken at or after since, and returns the code it starts with. Only the
// latest counts: a resend's code voids the one before.
func (w *Webhook) WaitCode(ctx context.Context, number string, since time.Time) (string, bool) {
	for {
		if all := w.TakenTo(number); len(all) > 0 && !all[len(all)-1].At.Before(since) {
			if code, ok := SMSCode(all[len(all)-1].Text); ok {
				return code, true
			}
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Counts sums up the answers so far.
func (w *Webhook) Counts() WebhookCounts {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts
}

// LastTaken is when the latest SMS was taken; zero before the first.
func (w *Webhook) LastTaken() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastTaken
}
