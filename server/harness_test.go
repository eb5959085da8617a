package server_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/app"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/metrics"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// Every harness announces a deprecation and a sunset, so every test's
// answers carry both headers and the spec checks them.
var (
	testDeprecation = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	testSunset      = time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)
)

// harness runs the whole service, real store included, behind an httptest
// server, and checks every response it sees against the spec.
type harness struct {
	t      *testing.T
	srv    *httptest.Server
	base   string
	client *api.ClientWithResponses
	http   *http.Client
	keys   *auth.DevKeys
	clock  *testenv.Clock
	store  *store.Store
	outbox string
	cfg    store.Config
	logs   *testWriter
	app    *app.App
	queue  *jobs.Queue
	// metrics hears everything the service observes.
	metrics *metrics.Metrics
	// working is false for an API-only replica, which sends nothing.
	working bool
	// stopOnce guards stop, which both restarts and cleanup call.
	stopOnce sync.Once
	// sources are the API clients bound to a source address (putFrom).
	sourcesMu sync.Mutex
	sources   map[string]*api.ClientWithResponses
}

type options struct {
	cfg         store.Config
	clk         *testenv.Clock
	skipMigrate bool
	// verifier replaces the dev key's verifier, e.g. with an OIDC issuer's.
	verifier auth.Verifier
	// sender replaces the dev outbox, e.g. with real SMTP and SMS providers.
	sender userphone.Sender
	// limits are the flow's abuse limits; off unless a test sets them.
	limits flow.Limits
	// resendCooldown, if set, replaces the flow's default.
	resendCooldown *time.Duration
	// wrapStore lets a test put faults between the flow and the store.
	wrapStore func(userphone.Store) userphone.Store
	// ipRate and ipBurst turn on the per-client limit.
	ipRate  float64
	ipBurst int
	// queue tunes the job queue; its zero values take the defaults, and
	// Workers 0 means 2, -1 an API-only replica.
	queue jobs.Config
	// metrics is the service's metrics, if the test made them (say, to
	// observe its own senders); else the harness makes them.
	metrics *metrics.Metrics
}

// forEachDialect runs fn against a fresh service on every dialect.
func forEachDialect(t *testing.T, fn func(t *testing.T, h *harness)) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, newHarness(t, options{cfg: storetest.Config(t, d)}))
		})
	}
}

func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	keys, err := auth.LoadOrCreateDevKeys(o.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	clk := o.clk
	if clk == nil {
		clk = testenv.NewClock(time.Now())
	}
	h := &harness{t: t, keys: keys, clock: clk, cfg: o.cfg, outbox: filepath.Join(o.cfg.DataDir, delivery.OutboxFile)}
	h.logs = &testWriter{t: t}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Listen first, so that the links in e-mails point at this server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Every harness observes everything, so every test runs the observers
	// (under -race too).
	h.metrics = cmp.Or(o.metrics, metrics.New())
	a, err := app.New(h.appConfig(o, "http://"+ln.Addr().String(), log), h.parts(o, log))
	if err != nil {
		t.Fatal(err)
	}
	h.app, h.store, h.queue = a, a.Store, a.Queue
	h.working = o.queue.Workers != -1
	if !o.skipMigrate {
		if err := a.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	h.srv = httptest.NewUnstartedServer(a.Handler)
	h.srv.Listener.Close()
	h.srv.Listener = ln
	h.srv.Start()
	h.base = h.srv.URL + openapi.BasePath
	h.http = contract.Client(t)
	h.client, err = api.NewClientWithResponses(h.base, api.WithHTTPClient(h.http))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	return h
}

// appConfig is the service's defaults with the tests' settings: the
// store the test chose, limits off unless the test sets them, a fixed
// secret, and a queue that polls often, so that messages go out at once.
func (h *harness) appConfig(o options, publicURL string, log *slog.Logger) app.Config {
	cfg := app.DefaultConfig()
	cfg.Store, cfg.PublicURL, cfg.Log = o.cfg, publicURL, log
	cfg.Flow.Secret = bytes.Repeat([]byte{7}, 32)
	cfg.Flow.Limits = o.limits
	if o.resendCooldown != nil {
		cfg.Flow.ResendCooldown = *o.resendCooldown
	}
	cfg.Jobs = o.queue
	switch cfg.Jobs.Workers {
	case 0:
		cfg.Jobs.Workers = 2
	case -1:
		cfg.Jobs.Workers = 0 // an API-only replica
	}
	cfg.Jobs.PollInterval = cmp.Or(cfg.Jobs.PollInterval, 10*time.Millisecond)
	cfg.HTTP.IPRate, cfg.HTTP.IPBurst = o.ipRate, o.ipBurst
	cfg.HTTP.Deprecation, cfg.HTTP.Sunset = testDeprecation, testSunset
	return cfg
}

// parts is the outside world of a test: the dev key's tokens unless the
// test brings an issuer, the dev outbox unless it brings providers.
func (h *harness) parts(o options, log *slog.Logger) app.Parts {
	verifier := o.verifier
	if verifier == nil {
		verifier = h.keys.Verifier(auth.Policy{}, log, nil)
	}
	sender := o.sender
	if sender == nil {
		sender = delivery.Observed(delivery.NewOutbox(h.outbox, log), "outbox", h.metrics)
	}
	return app.Parts{Verifier: verifier, Sender: sender, Metrics: h.metrics, Clock: h.clock.Now, WrapStore: o.wrapStore}
}

// stop shuts the service down as a process would: HTTP, then the job
// workers, then the database. Calling it twice is harmless.
func (h *harness) stop() {
	h.stopOnce.Do(func() {
		h.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.app.Stop(ctx); err != nil {
			h.t.Errorf("stop the job workers: %v", err)
		}
		h.app.Close()
	})
}

// settle waits until the queue has sent what it can, so that the outbox
// shows the effects of the requests made so far.
func (h *harness) settle() {
	h.t.Helper()
	if !h.working {
		return // an API-only replica: nothing will be sent here
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.queue.WaitIdle(ctx); err != nil {
		h.t.Fatalf("the job queue did not settle: %v", err)
	}
}

// testWriter sends the service's log to the test's log, and keeps it for
// tests that read it.
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (w *testWriter) has(s string) bool { return strings.Contains(w.String(), s) }

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Tokens and requests.

func (h *harness) token(sub, email string, scopes ...string) string {
	h.t.Helper()
	if scopes == nil {
		scopes = auth.AllScopes
	}
	tok, err := h.keys.Mint(userphone.Identity{Subject: sub, Email: email, Scopes: scopes}, time.Hour, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func bearer(tok string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+tok)
		return nil
	}
}

func (h *harness) put(tok, number string) *api.UpdateUserPhoneResponse {
	h.t.Helper()
	var body api.UpdateUserPhoneRequest
	body.Data.Type = api.UpdateUserPhoneRequestDataTypePhone
	body.Data.Attributes.PhoneNumber = number
	resp, err := h.client.UpdateUserPhoneWithApplicationVndAPIPlusJSONBodyWithResponse(context.Background(), body, bearer(tok))
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// putFrom is put from the source address ip: any address of 127.0.0.0/8
// reaches the server, so a test can be a client of any network.
func (h *harness) putFrom(ip, tok, number string) *api.UpdateUserPhoneResponse {
	h.t.Helper()
	var body api.UpdateUserPhoneRequest
	body.Data.Type = api.UpdateUserPhoneRequestDataTypePhone
	body.Data.Attributes.PhoneNumber = number
	resp, err := h.clientFrom(ip).UpdateUserPhoneWithApplicationVndAPIPlusJSONBodyWithResponse(context.Background(), body, bearer(tok))
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func (h *harness) clientFrom(ip string) *api.ClientWithResponses {
	h.sourcesMu.Lock()
	defer h.sourcesMu.Unlock()
	if c, ok := h.sources[ip]; ok {
		return c
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	hc := &http.Client{Transport: &contract.Transport{T: h.t, Next: &http.Transport{DialContext: dialer.DialContext}}}
	c, err := api.NewClientWithResponses(h.base, api.WithHTTPClient(hc))
	if err != nil {
		h.t.Fatal(err)
	}
	if h.sources == nil {
		h.sources = map[string]*api.ClientWithResponses{}
	}
	h.sources[ip] = c
	return c
}

// tokenFor mints a token of the dev key for id, with every scope.
func (h *harness) tokenFor(id userphone.Identity) string {
	h.t.Helper()
	id.Scopes = auth.AllScopes
	tok, err := h.keys.Mint(id, time.Hour, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

func (h *harness) verify(tok, code string) *api.VerifyUserPhoneResponse {
	h.t.Helper()
	resp, err := h.client.VerifyUserPhoneWithResponse(context.Background(), api.VerifyUserPhoneRequest{Code: code}, bearer(tok))
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func (h *harness) check(tok string) *api.CheckUserPhoneResponse {
	h.t.Helper()
	resp, err := h.client.CheckUserPhoneWithResponse(context.Background(), bearer(tok))
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func (h *harness) showConfirmation(token string) *api.ShowPhoneConfirmationResponse {
	h.t.Helper()
	resp, err := h.client.ShowPhoneConfirmationWithResponse(context.Background(), &api.ShowPhoneConfirmationParams{Token: token})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func (h *harness) confirm(token string) *api.ConfirmPhoneChangeResponse {
	h.t.Helper()
	resp, err := h.client.ConfirmPhoneChangeWithFormdataBodyWithResponse(context.Background(), &api.ConfirmPhoneChangeParams{}, api.ConfirmPhoneChangeForm{Token: token})
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// raw sends a request as given, for the cases the typed client cannot make.
func (h *harness) raw(method, path, contentType, body string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// Assertions.

// wantError asserts a JSON:API error with the status and code, and returns it.
// code is a domain code (userphone.ErrorCode) or one only HTTP answers
// with (api.ErrorCode).
func wantError[C ~string](t *testing.T, status int, gotStatus int, body []byte, code C) api.Error {
	t.Helper()
	var doc api.ErrorDocument
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Errors) != 1 {
		t.Fatalf("status %d, body %s: not a JSON:API error document (%v)", gotStatus, body, err)
	}
	e := doc.Errors[0]
	if gotStatus != status || string(e.Code) != string(code) {
		t.Fatalf("got %d %s (%v), want %d %s", gotStatus, e.Code, deref(e.Detail), status, code)
	}
	if e.Id == "" || e.Title == "" || e.Detail == nil || *e.Detail == "" {
		t.Fatalf("error lacks id, title or detail: %+v", e)
	}
	return e
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func pointerOf(e api.Error) string {
	if e.Source == nil || e.Source.Pointer == nil {
		return ""
	}
	return *e.Source.Pointer
}

// The dev outbox.

func (h *harness) messages() []delivery.OutboxLine {
	h.t.Helper()
	h.settle()
	out, err := delivery.ReadOutbox(h.outbox)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) messagesTo(to string) []delivery.OutboxLine {
	var out []delivery.OutboxLine
	for _, m := range h.messages() {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// code returns the code of the newest SMS to number.
func (h *harness) code(number string) string {
	h.t.Helper()
	msgs := h.messagesTo(number)
	if len(msgs) == 0 || msgs[len(msgs)-1].Channel != "sms" {
		h.t.Fatalf("no SMS to %s in the outbox: %+v", number, h.messages())
	}
	code, ok := testservers.SMSCode(msgs[len(msgs)-1].Text)
	if !ok {
		h.t.Fatalf("no code in SMS %q", msgs[len(msgs)-1].Text)
	}
	return code
}

// linkToken returns the token of the newest confirmation e-mail to addr.
func (h *harness) linkToken(addr string) string {
	h.t.Helper()
	msgs := h.messagesTo(addr)
	if len(msgs) == 0 || msgs[len(msgs)-1].Kind != flow.KindConfirmChange {
		h.t.Fatalf("no confirmation e-mail to %s in the outbox: %+v", addr, h.messages())
	}
	token, ok := testservers.ConfirmLinkToken(msgs[len(msgs)-1].Text)
	if !ok {
		h.t.Fatalf("no link in e-mail %q", msgs[len(msgs)-1].Text)
	}
	return token
}

// verifyNumber walks a first number through to verified.
func (h *harness) verifyNumber(tok, number string) {
	h.t.Helper()
	if r := h.put(tok, number); r.StatusCode() != http.StatusCreated {
		h.t.Fatalf("PUT %s: %d %s", number, r.StatusCode(), r.Body)
	}
	if r := h.verify(tok, h.code(number)); r.StatusCode() != http.StatusOK {
		h.t.Fatalf("verify %s: %d %s", number, r.StatusCode(), r.Body)
	}
}

func nowForTokens() time.Time { return time.Now() }

// count counts the statuses.
func count(statuses []int) map[int]int {
	m := map[int]int{}
	for _, s := range statuses {
		m[s]++
	}
	return m
}
