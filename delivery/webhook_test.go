package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pace/userphone"
)

const testSecret = "0123456789abcdef0123456789abcdef-webhook"

// webhookReceiver does what the Webhook doc comment asks of a receiver,
// written from the doc rather than with the package's helpers: it checks
// the signature and the timestamp, and deduplicates by Idempotency-Key.
type webhookReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	status int // answer for new messages; 0 means 202

	mu      sync.Mutex
	seen    map[string]bool
	sent    []map[string]string // payloads, once each
	headers []http.Header
	bodies  [][]byte
}

func startReceiver(t *testing.T) *webhookReceiver {
	rc := &webhookReceiver{t: t, seen: map[string]bool{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *webhookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("read: %v", err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.bodies = append(rc.bodies, body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}

	ts := r.Header.Get("X-Userphone-Timestamp")
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Userphone-Signature"))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		http.Error(w, "stale", http.StatusUnauthorized)
		return
	}

	var p map[string]string
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if key == "" || key != p["id"] {
		rc.t.Errorf("Idempotency-Key %q, body id %q", key, p["id"])
	}
	if rc.seen[key] {
		w.WriteHeader(http.StatusOK)
		return
	}
	if rc.status != 0 {
		w.WriteHeader(rc.status)
		return
	}
	rc.seen[key] = true
	rc.sent = append(rc.sent, p)
	w.WriteHeader(http.StatusAccepted)
}

func newTestWebhook(t *testing.T, cfg WebhookConfig, log *slog.Logger) *Webhook {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := NewWebhook(cfg, log)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return w
}

func TestWebhookSendsSigned(t *testing.T) {
	rc := startReceiver(t)
	wh := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL + "/sms"}, nil)
	m := codeSMS("+4915112345678", "idem-key-1")
	m.Text = `918273 ist dein Code & <so>` // characters JSON encoders like to escape
	for range 2 {                          // a retry of the same message
		if err := wh.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if len(rc.headers) != 2 || len(rc.sent) != 1 {
		t.Fatalf("receiver saw %d requests and sent %d SMS; want 2 and 1", len(rc.headers), len(rc.sent))
	}
	want := map[string]string{"id": "idem-key-1", "to": "+4915112345678", "text": m.Text, "locale": "de"}
	got := rc.sent[0]
	if len(got) != len(want) {
		t.Errorf("payload has fields %v; want exactly %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("payload %s = %q; want %q", k, got[k], v)
		}
	}
	if !bytes.Equal(rc.bodies[0], rc.bodies[1]) {
		t.Errorf("retries differ in body:\n%s\n%s", rc.bodies[0], rc.bodies[1])
	}
	for _, h := range rc.headers {
		if h.Get("Idempotency-Key") != "idem-key-1" {
			t.Errorf("Idempotency-Key %q", h.Get("Idempotency-Key"))
		}
		if err := VerifyWebhookSignature([]byte(testSecret), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature), rc.bodies[0], time.Now()); err != nil {
			t.Errorf("VerifyWebhookSignature: %v", err)
		}
	}
}

func TestVerifyWebhookSignature(t *testing.T) {
	now := time.Unix(1767225600, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"id":"k","to":"+4915112345678","text":"918273","locale":"de"}`)
	sig := SignWebhook([]byte(testSecret), ts, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	if err := VerifyWebhookSignature([]byte(testSecret), ts, sig, body, now.Add(4*time.Minute)); err != nil {
		t.Errorf("valid request: %v", err)
	}
	bad := []struct {
		name, secret, ts, sig string
		body                  []byte
		at                    time.Time
	}{
		{"other secret", testSecret + "x", ts, sig, body, now},
		{"tampered body", testSecret, ts, sig, append([]byte(nil), bytes.Replace(body, []byte("918273"), []byte("000000"), 1)...), now},
		{"other timestamp", testSecret, strconv.FormatInt(now.Unix()+1, 10), sig, body, now},
		{"replayed late", testSecret, ts, sig, body, now.Add(6 * time.Minute)},
		{"from the future", testSecret, ts, sig, body, now.Add(-6 * time.Minute)},
		{"no timestamp", testSecret, "", sig, body, now},
		{"no prefix", testSecret, ts, strings.TrimPrefix(sig, "sha256="), body, now},
	}
	for _, b := range bad {
		if err := VerifyWebhookSignature([]byte(b.secret), b.ts, b.sig, b.body, b.at); err == nil {
			t.Errorf("%s: verified", b.name)
		}
	}
}

func TestWebhookClassifiesStatus(t *testing.T) {
	var status int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", status)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	wh := newTestWebhook(t, WebhookConfig{URL: srv.URL}, nil)
	tests := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{200, true, false}, {201, true, false}, {202, true, false}, {204, true, false},
		{400, false, true}, {410, false, true}, {422, false, true},
		{401, false, false}, {403, false, false}, {404, false, false},
		{408, false, false}, {429, false, false},
		{500, false, false}, {502, false, false}, {503, false, false},
		{302, false, false},
	}
	for _, tt := range tests {
		status = tt.status
		err := wh.Send(context.Background(), codeSMS("+4915112345678", "k"))
		if (err == nil) != tt.ok {
			t.Errorf("HTTP %d: %v; want ok %v", tt.status, err, tt.ok)
			continue
		}
		if err != nil && errors.Is(err, userphone.ErrPermanent) != tt.permanent {
			t.Errorf("HTTP %d: permanent %v; want %v", tt.status, errors.Is(err, userphone.ErrPermanent), tt.permanent)
		}
	}
}

func TestWebhookWrongSecretIsRetried(t *testing.T) {
	rc := startReceiver(t)
	wh := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL, Secret: strings.Repeat("z", 32)}, nil)
	err := wh.Send(context.Background(), codeSMS("+4915112345678", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong secret: %v; want a transient 401", err)
	}
	if len(rc.sent) != 0 {
		t.Error("receiver accepted a bad signature")
	}
}

func TestWebhookNetworkErrors(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	wh := newTestWebhook(t, WebhookConfig{URL: "http://user:pw-SECRET@" + srv.Listener.Addr().String(), HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}}, nil)
	err := wh.Send(context.Background(), codeSMS("+4915112345678", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Errorf("timeout: %v; want a transient error", err)
	}
	if strings.Contains(err.Error(), "pw-SECRET") {
		t.Errorf("error shows the URL's password: %v", err)
	}
	if s := wh.String(); strings.Contains(s, "pw-SECRET") {
		t.Errorf("String shows the password: %s", s)
	}

	srv2 := httptest.NewServer(http.NotFoundHandler())
	url := srv2.URL
	srv2.Close()
	err = newTestWebhook(t, WebhookConfig{URL: url}, nil).Send(context.Background(), codeSMS("+4915112345678", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Errorf("connection refused: %v; want a transient error", err)
	}
}

func TestNewWebhookValidates(t *testing.T) {
	tests := []struct {
		cfg  WebhookConfig
		want string
	}{
		{WebhookConfig{URL: "", Secret: testSecret}, "SMS webhook URL is empty"},
		{WebhookConfig{URL: "http://sms.example.com/hook", Secret: testSecret}, "must use https"},
		{WebhookConfig{URL: "ftp://sms.example.com/hook", Secret: testSecret}, "must start with https://"},
		{WebhookConfig{URL: "https:///hook", Secret: testSecret}, "has no host"},
		{WebhookConfig{URL: "https://sms.example.com/hook?token=1", Secret: testSecret}, "query"},
		{WebhookConfig{URL: "https://sms.example.com/hook", Secret: "short-SECRET"}, "SMS webhook secret has 12 bytes but needs at least 32"},
	}
	for _, tt := range tests {
		_, err := NewWebhook(tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewWebhook(%+v) = %v; want an error with %q", tt.cfg, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), testSecret) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	for _, u := range []string{"https://sms.example.com/hook", "http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]:9000"} {
		if _, err := NewWebhook(WebhookConfig{URL: u, Secret: testSecret}, nil); err != nil {
			t.Errorf("NewWebhook(%s): %v", u, err)
		}
	}
}

func TestWebhookLogsNoContent(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rc := startReceiver(t)
	wh := newTestWebhook(t, WebhookConfig{URL: rc.srv.URL}, log)
	if err := wh.Send(context.Background(), codeSMS("+4915112345678", "k1")); err != nil {
		t.Fatal(err)
	}
	rc.status = http.StatusUnprocessableEntity
	if err := wh.Send(context.Background(), codeSMS("+4915112345678", "k2")); !errors.Is(err, userphone.ErrPermanent) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	out := logs.String()
	for _, secret := range []string{"918273", "Bestätigungscode", "15112345678", testSecret, "sha256="} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"SMS sent", "SMS not sent", "provider=webhook", "http_status=422", "permanent=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
