package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/templates"
)

const (
	testAccountSID = "AC0123456789abcdef0123456789abcdef"
	testAuthToken  = "auth-token-SECRET"
	testServiceSID = "MG0123456789abcdef0123456789abcdef"
)

// twilioStandIn speaks the wire format of Twilio's Messages API: it checks
// each request as Twilio would and answers in Twilio's JSON. What it
// answers depends on the To number, as with Twilio's magic test numbers.
type twilioStandIn struct {
	t   *testing.T
	srv *httptest.Server
	// answers maps a To number to status and Twilio error code.
	answers map[string][2]int
	delay   time.Duration

	mu       sync.Mutex
	requests []twilioRequest
}

type twilioRequest struct {
	To, Body, From, MessagingServiceSid, IdempotencyKey string
}

func startTwilio(t *testing.T, answers map[string][2]int) *twilioStandIn {
	ts := &twilioStandIn{t: t, answers: answers}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *twilioStandIn) fail(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": message, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status,
	})
}

func (ts *twilioStandIn) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		ts.t.Errorf("method %s; want POST", r.Method)
		ts.fail(w, 405, 20004, "Method not allowed")
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != testAccountSID || pass != testAuthToken {
		ts.fail(w, 401, 20003, "Authenticate")
		return
	}
	if want := "/2010-04-01/Accounts/" + testAccountSID + "/Messages.json"; r.URL.Path != want {
		ts.fail(w, 404, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		ts.t.Errorf("Content-Type %q", ct)
	}
	if err := r.ParseForm(); err != nil {
		ts.t.Errorf("form: %v", err)
	}
	for k := range r.PostForm {
		switch k {
		case "To", "Body", "From", "MessagingServiceSid":
		default:
			ts.t.Errorf("unexpected form field %s", k)
		}
	}
	req := twilioRequest{
		To: r.PostForm.Get("To"), Body: r.PostForm.Get("Body"), From: r.PostForm.Get("From"),
		MessagingServiceSid: r.PostForm.Get("MessagingServiceSid"), IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	ts.mu.Lock()
	ts.requests = append(ts.requests, req)
	ts.mu.Unlock()
	if (req.From == "") == (req.MessagingServiceSid == "") {
		ts.fail(w, 400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
		return
	}
	if ts.delay > 0 {
		select {
		case <-time.After(ts.delay):
		case <-r.Context().Done():
			return
		}
	}
	if a, ok := ts.answers[req.To]; ok {
		if a[0] == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "30")
		}
		ts.fail(w, a[0], a[1], fmt.Sprintf("The 'To' number %s is not a valid phone number.", req.To))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"account_sid": testAccountSID, "api_version": "2010-04-01", "body": req.Body,
		"direction": "outbound-api", "from": req.From, "messaging_service_sid": nilIfEmpty(req.MessagingServiceSid),
		"num_segments": "1", "sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "to": req.To,
		"uri": "/2010-04-01/Accounts/" + testAccountSID + "/Messages/SM0123456789abcdef0123456789abcdef.json",
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (ts *twilioStandIn) got() []twilioRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]twilioRequest(nil), ts.requests...)
}

func codeSMS(to, key string) userphone.Message {
	return userphone.Message{Channel: userphone.ChannelSMS, To: to, Text: templates.CodeSMS("de", "918273", ""), Kind: "code", Lang: "de", IdempotencyKey: key}
}

func newTestTwilio(t *testing.T, cfg TwilioConfig, log *slog.Logger) *Twilio {
	t.Helper()
	if cfg.AccountSID == "" {
		cfg.AccountSID = testAccountSID
	}
	if cfg.AuthToken == "" {
		cfg.AuthToken = testAuthToken
	}
	if cfg.From == "" && cfg.MessagingServiceSID == "" {
		cfg.From = "+15005550006"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tw, err := NewTwilio(cfg, log)
	if err != nil {
		t.Fatalf("NewTwilio: %v", err)
	}
	return tw
}

func TestTwilioSends(t *testing.T) {
	ts := startTwilio(t, nil)
	m := codeSMS("+4915112345678", "idem-1")
	for _, cfg := range []TwilioConfig{
		{APIURL: ts.srv.URL, From: "+15005550006"},
		{APIURL: ts.srv.URL + "/", MessagingServiceSID: testServiceSID},
	} {
		if err := newTestTwilio(t, cfg, nil).Send(context.Background(), m); err != nil {
			t.Fatalf("Send with %+v: %v", cfg, err)
		}
	}
	got := ts.got()
	if len(got) != 2 {
		t.Fatalf("stand-in got %d requests; want 2", len(got))
	}
	want := []twilioRequest{
		{To: m.To, Body: m.Text, From: "+15005550006", IdempotencyKey: "idem-1"},
		{To: m.To, Body: m.Text, MessagingServiceSid: testServiceSID, IdempotencyKey: "idem-1"},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %+v; want %+v", i, got[i], want[i])
		}
	}
	if !strings.HasPrefix(got[0].Body, "918273 ") {
		t.Errorf("Body %q does not start with the code", got[0].Body)
	}
}

func TestTwilioClassifiesAnswers(t *testing.T) {
	ts := startTwilio(t, map[string][2]int{
		"+15005550001": {400, 21211}, // invalid To
		"+15005550009": {400, 21614}, // not a mobile number
		"+15005550004": {400, 21610}, // opted out
		"+15005550003": {400, 21408}, // region not permitted
		"+15005550010": {400, 21606}, // our From cannot send: the operator's fault
		"+15005550020": {500, 20500},
		"+15005550021": {503, 20503},
		"+15005550022": {429, 20429},
		"+15005550023": {408, 0},
		"+15005550024": {403, 20403},
	})
	tw := newTestTwilio(t, TwilioConfig{APIURL: ts.srv.URL}, nil)
	tests := []struct {
		to        string
		permanent bool
		text      string
	}{
		{"+15005550001", true, "Twilio error 21211"},
		{"+15005550009", true, "Twilio error 21614"},
		{"+15005550004", true, "Twilio error 21610"},
		{"+15005550003", true, "Twilio error 21408"},
		{"+15005550010", false, "Twilio error 21606"},
		{"+15005550020", false, "HTTP 500"},
		{"+15005550021", false, "HTTP 503"},
		{"+15005550022", false, "retry after 30 s"},
		{"+15005550023", false, "HTTP 408"},
		{"+15005550024", false, "HTTP 403"},
	}
	for _, tt := range tests {
		err := tw.Send(context.Background(), codeSMS(tt.to, "k"))
		if err == nil {
			t.Errorf("%s: sent", tt.to)
			continue
		}
		if got := errors.Is(err, userphone.ErrPermanent); got != tt.permanent {
			t.Errorf("%s: permanent %v; want %v (%v)", tt.to, got, tt.permanent, err)
		}
		if want := map[bool]string{true: FailurePermanent, false: FailureTransient}[tt.permanent]; FailureClass(err) != want {
			t.Errorf("%s: class %q; want %q", tt.to, FailureClass(err), want)
		}
		if !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: error %q lacks %q", tt.to, err, tt.text)
		}
		// Twilio's message quotes the number; the error shows it masked.
		if strings.Contains(err.Error(), strings.TrimPrefix(tt.to, "+")) {
			t.Errorf("%s: error shows the number: %v", tt.to, err)
		}
	}

	// Bad credentials are the operator's to fix: retried.
	bad := newTestTwilio(t, TwilioConfig{APIURL: ts.srv.URL, AuthToken: "wrong-token"}, nil)
	err := bad.Send(context.Background(), codeSMS("+4915112345678", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) || !strings.Contains(err.Error(), "HTTP 401, Twilio error 20003") {
		t.Errorf("wrong token: %v; want a transient 401", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("error shows the token: %v", err)
	}
	// So are a wrong account SID and an API URL with a wrong path.
	for _, cfg := range []TwilioConfig{
		{APIURL: ts.srv.URL, AccountSID: "AC" + strings.Repeat("f", 32)},
		{APIURL: ts.srv.URL + "/proxy"},
	} {
		err := newTestTwilio(t, cfg, nil).Send(context.Background(), codeSMS("+4915112345678", "k"))
		if err == nil || errors.Is(err, userphone.ErrPermanent) {
			t.Errorf("%+v: %v; want a transient error", cfg, err)
		}
	}
	if n := len(ts.got()); n != len(tests) {
		t.Errorf("stand-in recorded %d messages; want %d", n, len(tests))
	}
}

func TestTwilioNetworkErrors(t *testing.T) {
	// Nothing listens.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	err = newTestTwilio(t, TwilioConfig{APIURL: down}, nil).Send(context.Background(), codeSMS("+4915112345678", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) || FailureClass(err) != FailureTransient {
		t.Errorf("connection refused: %v (class %q); want a transient error", err, FailureClass(err))
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("the cause is lost: %v", err)
	}

	// A stand-in slower than the client's timeout.
	ts := startTwilio(t, nil)
	ts.delay = 2 * time.Second
	tw := newTestTwilio(t, TwilioConfig{APIURL: ts.srv.URL, HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}}, nil)
	err = tw.Send(context.Background(), codeSMS("+4915112345678", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) || FailureClass(err) != FailureTimeout {
		t.Errorf("timeout: %v (class %q); want a transient error, a timeout", err, FailureClass(err))
	}

	// A cancelled job.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = newTestTwilio(t, TwilioConfig{APIURL: ts.srv.URL}, nil).Send(ctx, codeSMS("+4915112345678", "k"))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, userphone.ErrPermanent) || FailureClass(err) != FailureTimeout {
		t.Errorf("cancelled: %v (class %q); want the context's error, transient, a timeout", err, FailureClass(err))
	}
}

func TestTwilioOddAnswers(t *testing.T) {
	var answer func(w http.ResponseWriter)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w) }))
	t.Cleanup(srv.Close)
	tw := newTestTwilio(t, TwilioConfig{APIURL: srv.URL}, nil)
	send := func() error { return tw.Send(context.Background(), codeSMS("+4915112345678", "k")) }

	// A proxy's HTML error page: the status decides.
	answer = func(w http.ResponseWriter) { w.WriteHeader(502); w.Write([]byte("<html>Bad Gateway</html>")) }
	if err := send(); err == nil || errors.Is(err, userphone.ErrPermanent) || !strings.Contains(err.Error(), "HTTP 502") {
		t.Errorf("502 page: %v", err)
	}
	// A huge error body is read only up to the limit.
	answer = func(w http.ResponseWriter) {
		w.WriteHeader(400)
		w.Write([]byte(`{"code": 21211, "message": "` + strings.Repeat("x", 4<<20) + `"}`))
	}
	if err := send(); !errors.Is(err, userphone.ErrPermanent) || len(err.Error()) > 1000 {
		t.Errorf("huge 400: permanent %v, %d bytes of error", errors.Is(err, userphone.ErrPermanent), len(err.Error()))
	}
	// 201 without a readable body: Twilio has the message; no retry.
	answer = func(w http.ResponseWriter) { w.WriteHeader(201); w.Write([]byte("not json")) }
	if err := send(); err != nil {
		t.Errorf("201 without a sid: %v; want success, as a retry would send twice", err)
	}
}

func TestTwilioRefusesBadMessages(t *testing.T) {
	ts := startTwilio(t, nil)
	tw := newTestTwilio(t, TwilioConfig{APIURL: ts.srv.URL}, nil)
	for _, m := range []userphone.Message{
		{Channel: userphone.ChannelEmail, To: "jane@example.com", Text: "t"},
		{Channel: userphone.ChannelSMS, Text: "t"},
	} {
		if err := tw.Send(context.Background(), m); !errors.Is(err, userphone.ErrPermanent) {
			t.Errorf("Send(%+v) = %v; want a permanent error", m, err)
		}
	}
	if n := len(ts.got()); n != 0 {
		t.Errorf("%d requests reached Twilio", n)
	}
}

func TestNewTwilioValidates(t *testing.T) {
	ok := TwilioConfig{AccountSID: testAccountSID, AuthToken: testAuthToken, From: "+15005550006"}
	with := func(f func(*TwilioConfig)) TwilioConfig { c := ok; f(&c); return c }
	tests := []struct {
		cfg  TwilioConfig
		want string
	}{
		{with(func(c *TwilioConfig) { c.AccountSID = "" }), "Twilio account SID"},
		{with(func(c *TwilioConfig) { c.AccountSID = "SK0123456789abcdef0123456789abcdef" }), `"AC" followed by 32 hex digits`},
		{with(func(c *TwilioConfig) { c.AuthToken = "" }), "Twilio auth token is empty"},
		{with(func(c *TwilioConfig) { c.From = "" }), "needs a From sender or a messaging service SID"},
		{with(func(c *TwilioConfig) { c.MessagingServiceSID = testServiceSID }), "not both"},
		{with(func(c *TwilioConfig) { c.From, c.MessagingServiceSID = "", "MGnope" }), "messaging service SID"},
		{with(func(c *TwilioConfig) { c.From = "0151 1234567" }), "Twilio From"},
		{with(func(c *TwilioConfig) { c.From = "ThisIsTooLongForASender" }), "Twilio From"},
		{with(func(c *TwilioConfig) { c.APIURL = "http://api.twilio.com" }), "must use https"},
		{with(func(c *TwilioConfig) { c.APIURL = "ftp://api.twilio.com" }), "must start with https://"},
		{with(func(c *TwilioConfig) { c.APIURL = "https://" }), "has no host"},
		{with(func(c *TwilioConfig) { c.APIURL = "https://api.twilio.com?x=1" }), "query"},
		{with(func(c *TwilioConfig) { c.APIURL = "https://api.twilio.com\x7f" }), "not a valid URL"},
	}
	for _, tt := range tests {
		_, err := NewTwilio(tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewTwilio(%+v) = %v; want an error with %q", tt.cfg, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), testAuthToken) {
			t.Errorf("error shows the token: %v", err)
		}
	}
	for _, c := range []TwilioConfig{
		ok,
		with(func(c *TwilioConfig) { c.From = "PACE" }),
		with(func(c *TwilioConfig) { c.From = "12345" }),
		with(func(c *TwilioConfig) { c.From, c.MessagingServiceSID = "", testServiceSID }),
		with(func(c *TwilioConfig) { c.APIURL = "http://localhost:8080/twilio" }),
	} {
		if _, err := NewTwilio(c, nil); err != nil {
			t.Errorf("NewTwilio(%+v): %v", c, err)
		}
	}
	tw, _ := NewTwilio(ok, nil)
	if tw.endpoint != "https://api.twilio.com/2010-04-01/Accounts/"+testAccountSID+"/Messages.json" {
		t.Errorf("default endpoint %s", tw.endpoint)
	}
	if want := "Twilio account " + testAccountSID + " at https://api.twilio.com, from +15005550006"; tw.String() != want {
		t.Errorf("String() = %q; want %q", tw.String(), want)
	}
	if tw.client.Timeout != 10*time.Second {
		t.Errorf("default client timeout %s", tw.client.Timeout)
	}
}

func TestTwilioLogsNoContent(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := startTwilio(t, map[string][2]int{"+4917098765432": {400, 21614}})
	tw := newTestTwilio(t, TwilioConfig{APIURL: ts.srv.URL}, log)
	if err := tw.Send(context.Background(), codeSMS("+4915112345678", "k1")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Send(context.Background(), codeSMS("+4917098765432", "k2")); !errors.Is(err, userphone.ErrPermanent) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	out := logs.String()
	for _, secret := range []string{"918273", "Bestätigungscode", "15112345678", "17098765432", testAuthToken} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"SMS sent", "SMS not sent", "sid=SM", "kind=code", "twilio_code=21614", "permanent=true", "+49 •••• "} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
