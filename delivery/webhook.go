package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/phone"
)

// MinWebhookSecretBytes is the shortest secret NewWebhook accepts: 256
// bits, the size of the HMAC-SHA256 key that makes guessing pointless.
const MinWebhookSecretBytes = 32

// WebhookMaxAge is how old a request's timestamp may be when the receiver
// checks it; older requests are replays.
const WebhookMaxAge = 5 * time.Minute

// Webhook request headers.
const (
	HeaderIdempotencyKey   = "Idempotency-Key"
	HeaderWebhookTimestamp = "X-Userphone-Timestamp"
	HeaderWebhookSignature = "X-Userphone-Signature"
)

// WebhookConfig holds the settings of the webhook SMS sender.
type WebhookConfig struct {
	// URL receives the POSTs. It must be https, except on a loopback host.
	URL string
	// Secret signs the requests; at least MinWebhookSecretBytes bytes,
	// e.g. from `openssl rand -hex 32`.
	Secret string
	// HTTPClient sends the requests; nil means a client with a
	// DefaultHTTPTimeout timeout that does not follow redirects.
	HTTPClient *http.Client
}

// Webhook hands SMS to an HTTP endpoint of the operator's choice, such as a
// gateway to an SMS provider this package does not speak.
//
// # The request
//
// Each message is one POST of a JSON object:
//
//	POST {URL}
//	Content-Type: application/json
//	Idempotency-Key: 3f1c…
//	X-Userphone-Timestamp: 1767225600
//	X-Userphone-Signature: sha256=9b2e…
//
//	{"id":"3f1c…","to":"+4915112345678","text":"123456 ist dein …","locale":"de"}
//
// id, equal to the Idempotency-Key header, is the same for every attempt
// to send one message and differs between messages; to is the number in
// E.164; text is the whole SMS; locale is its language, "de" or "en".
//
// # What the receiver must do
//
//  1. Recompute the signature: the lower-case hex HMAC-SHA256, keyed with
//     the shared secret, of the timestamp header's value, a ".", and the
//     raw request body, byte for byte as received (not re-encoded JSON):
//     hex(HMAC-SHA256(secret, timestamp + "." + body)). Compare it with the
//     header's value after "sha256=" in constant time (hmac.Equal,
//     crypto.timingSafeEqual, hmac.compare_digest), and answer 401 if it
//     differs.
//  2. Reject a timestamp (Unix seconds) more than 5 minutes from its own
//     clock, with 401: a recorded request cannot be replayed later. The
//     signature covers the timestamp, so it cannot be swapped.
//  3. Deduplicate by Idempotency-Key for at least a day: a request whose
//     key it has seen gets the first answer again and sends nothing, as
//     the sender retries whenever it is unsure, and a timeout after
//     sending would otherwise mean a second SMS. Each retry carries a new
//     timestamp and signature over the same body.
//
// VerifyWebhookSignature does steps 1 and 2 in Go.
//
// # The answer
//
// 2xx means sent (or queued for sending). 408, 429, 5xx, a timeout or a
// broken connection mean "try again later". So do 401, 403 and 404, which
// point at a wrong secret or URL: the operator's to fix, and no reason to
// give up on the user. Any other 4xx, such as 400, 410 or 422, means the
// message can never be delivered (a number the gateway cannot reach), and
// the change it belongs to is cancelled. The response body is ignored.
// Redirects are not followed: configure the final URL.
type Webhook struct {
	url      string
	redacted string
	host     string
	secret   []byte
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
}

var _ userphone.Sender = (*Webhook)(nil)

// NewWebhook checks cfg and returns a sender; it sends nothing. A nil log
// discards. Errors are one sentence each and never include the
// secret.
func NewWebhook(cfg WebhookConfig, log *slog.Logger) (*Webhook, error) {
	log = logs.OrDiscard(log)
	if cfg.URL == "" {
		return nil, errors.New("SMS webhook URL is empty")
	}
	u, err := httpEndpoint("SMS webhook URL", cfg.URL)
	if err != nil {
		return nil, err
	}
	if n := len(cfg.Secret); n < MinWebhookSecretBytes {
		return nil, fmt.Errorf("SMS webhook secret has %d bytes but needs at least %d; generate one with `openssl rand -hex 32`", n, MinWebhookSecretBytes)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: DefaultHTTPTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Webhook{
		url:      u.String(),
		redacted: u.Redacted(),
		host:     u.Host,
		secret:   []byte(cfg.Secret),
		client:   client,
		log:      log,
		now:      time.Now,
	}, nil
}

type webhookPayload struct {
	ID     string `json:"id"`
	To     string `json:"to"`
	Text   string `json:"text"`
	Locale string `json:"locale"`
}

// SignWebhook returns the X-Userphone-Signature value for a body sent at
// timestamp (Unix seconds, as in X-Userphone-Timestamp).
func SignWebhook(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhookSignature is the receiver's check of a request: the
// signature must match timestamp and body under secret (compared in
// constant time), and the timestamp must be within WebhookMaxAge of now.
// Deduplicating by Idempotency-Key is up to the receiver.
func VerifyWebhookSignature(secret []byte, timestamp, signature string, body []byte, now time.Time) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook timestamp is not Unix seconds")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > WebhookMaxAge || d < -WebhookMaxAge {
		return fmt.Errorf("webhook timestamp is %s off the clock; the limit is %s", d.Round(time.Second), WebhookMaxAge)
	}
	if !hmac.Equal([]byte(SignWebhook(secret, timestamp, body)), []byte(signature)) {
		return errors.New("webhook signature does not match")
	}
	return nil
}

// webhookPermanent reports whether the receiver's status refuses the
// message for good; see Webhook.
func webhookPermanent(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return status >= 400 && status < 500
}

// Send posts one SMS to the webhook. See Webhook for the protocol.
func (w *Webhook) Send(ctx context.Context, m userphone.Message) error {
	if err := checkSMS(ctx, "webhook", m); err != nil {
		return err
	}
	body, err := json.Marshal(webhookPayload{ID: m.IdempotencyKey, To: m.To, Text: m.Text, Locale: m.Lang})
	if err != nil {
		return fmt.Errorf("delivery: webhook: encode: %w", err)
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("delivery: webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "userphone")
	if m.IdempotencyKey != "" {
		req.Header.Set(HeaderIdempotencyKey, m.IdempotencyKey)
	}
	req.Header.Set(HeaderWebhookTimestamp, ts)
	req.Header.Set(HeaderWebhookSignature, SignWebhook(w.secret, ts, body))

	masked := phone.Mask(m.To)
	attrs := []any{"channel", m.Channel, "kind", m.Kind, "to", masked, "provider", "webhook", "host", w.host}
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		// Strip url.Error's URL, which may hold credentials.
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		err = &sendError{msg: "delivery: webhook: POST to " + w.host + ": " + redact(cause.Error(), m.To, masked), cause: err}
		w.log.WarnContext(ctx, "SMS not sent", append(attrs, "permanent", false, "error", err.Error())...)
		return err
	}
	// The body is not read into anything: a receiver might echo the text.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()
	attrs = append(attrs, "http_status", resp.StatusCode, "duration", time.Since(start).Round(time.Millisecond))

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		w.log.InfoContext(ctx, "SMS sent", attrs...)
		return nil
	}
	msg := fmt.Sprintf("delivery: webhook: %s answered HTTP %d", w.host, resp.StatusCode)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (a redirect, which is not followed; configure the final URL)"
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		msg += " (check the shared secret and the clocks)"
	}
	sendErr := &sendError{msg: msg, permanent: webhookPermanent(resp.StatusCode)}
	w.log.WarnContext(ctx, "SMS not sent", append(attrs, "permanent", sendErr.permanent, "error", msg)...)
	return sendErr
}

// String describes the webhook for start-up logs: its URL without a
// password.
func (w *Webhook) String() string { return w.redacted }
