package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/app"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/openapi"
)

// The fuzz targets drive the real handler in process, on a SQLite store of
// their own, with the flow's limits and cool-down off so that 429s do not
// hide the paths behind them (a 429 is still an acceptable answer). Every
// answer must be:
//
//   - never a panic and never a 5xx;
//   - a 4xx as a JSON:API error document with application/vnd.api+json,
//     its status matching, or the confirmation pages' 404 and 410 as HTML;
//   - documented by the spec for the operation, headers and body included.
//
// The corpora's bodies may hold the placeholders CODE and TOKEN: each input
// runs against a fresh user, and they are replaced with that user's real
// SMS code and e-mail token, so that the fuzzer starts from requests that
// reach the flow's success paths and mutates around them.
//
//	go test -run '^$' -fuzz '^FuzzVerifyBody$' -fuzztime 60s ./server/

func FuzzUpdateUserPhoneBody(f *testing.F) {
	env := newFuzzEnv(f)
	// A few users that the inputs take turns on, so that a PUT meets a
	// pending change, a verified number or both. Every other one starts
	// with a verified number, so a new number needs the e-mail step.
	const users = 8
	toks := make([]string, users)
	for i := range users {
		id := env.identity(fmt.Sprintf("put-%d", i))
		if i%2 == 0 {
			env.verifiedUser(f, id, fmt.Sprintf("+4915100%06d", i))
		}
		toks[i] = env.token(f, id)
	}
	n := 0
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		contentType, ok := headerValue(contentType)
		if !ok {
			t.Skip("net/http refuses such a header value before a handler sees it")
		}
		n++
		env.do(t, "PUT", openapi.BasePath+"/user/phone", contentType, body, toks[n%users])
	})
}

func FuzzVerifyBody(f *testing.F) {
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		contentType, ok := headerValue(contentType)
		if !ok {
			t.Skip("net/http refuses such a header value before a handler sees it")
		}
		// A fresh user with a first number that waits for its code.
		id := env.identity("verify")
		p, _, err := env.app.Flow.RequestChange(context.Background(), id, env.number("+49151"))
		if err != nil {
			t.Fatal(err)
		}
		code, ok := testservers.SMSCode(env.message(t, p.Pending.ID).Text)
		if !ok {
			t.Fatal("no code in the SMS")
		}
		body = bytes.ReplaceAll(body, []byte("CODE"), []byte(code))
		env.do(t, "PUT", openapi.BasePath+"/user/phone/verify", contentType, body, env.token(t, id))
	})
}

func FuzzConfirmForm(f *testing.F) {
	env := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, contentType string, body []byte, query string) {
		contentType, ok := headerValue(contentType)
		if !ok {
			t.Skip("net/http refuses such a header value before a handler sees it")
		}
		// A fresh user with a verified number and a change to another one
		// that waits for the e-mail link.
		id := env.identity("confirm")
		env.verifiedUser(t, id, env.number("+49151"))
		p, _, err := env.app.Flow.RequestChange(context.Background(), id, env.number("+49157"))
		if err != nil {
			t.Fatal(err)
		}
		link, ok := testservers.ConfirmLinkToken(env.message(t, p.Pending.ID).Text)
		if !ok {
			t.Fatal("no link in the e-mail")
		}
		query = strings.ReplaceAll(query, "TOKEN", link)
		body = bytes.ReplaceAll(body, []byte("TOKEN"), []byte(link))

		// The page first, as a browser would: it must change nothing.
		if u, err := url.ParseRequestURI(openapi.BasePath + openapi.ConfirmPath + "?" + query); err == nil && !strings.ContainsAny(query, " \t") {
			env.doURL(t, "GET", u, "", nil, "")
		}
		env.do(t, "POST", openapi.BasePath+openapi.ConfirmPath, contentType, body, "")
	})
}

// fuzzEnv is the service as app.New builds it, less what needs a
// *testing.T, set up once per fuzzing process: an API-only replica, whose
// queued messages the targets compose to read codes and links.
type fuzzEnv struct {
	app  *app.App
	keys *auth.DevKeys
	n    int
	// logs is what the service logged.
	logs *testenv.SyncBuffer
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	dir := tb.TempDir()
	keys, err := auth.LoadOrCreateDevKeys(dir)
	if err != nil {
		tb.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	cfg := app.DefaultConfig()
	cfg.Store.DataDir, cfg.PublicURL = dir, "http://userphone.test"
	cfg.Log = slog.New(slog.NewTextHandler(logs, nil))
	cfg.Flow.Secret = bytes.Repeat([]byte{7}, 32)
	// No cool-down and no limits: a user's second request must not be a
	// 429 that hides what lies behind it. IPRate 0: every input comes
	// from the same address. No workers: the messages stay queued.
	cfg.Flow.ResendCooldown, cfg.Flow.Limits = 0, flow.Limits{}
	cfg.HTTP.IPRate, cfg.Jobs.Workers = 0, 0
	a, err := app.New(cfg, app.Parts{Verifier: keys.Verifier(auth.Policy{}, nil, nil)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	if err := a.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return &fuzzEnv{app: a, keys: keys, logs: logs}
}

// message composes the newest queued message of a change, as a worker would.
func (e *fuzzEnv) message(t testing.TB, changeID string) userphone.Message {
	t.Helper()
	queued, err := e.app.Queue.Queued(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := len(queued) - 1; i >= 0; i-- {
		if queued[i].ChangeID != changeID {
			continue
		}
		msg, current, err := e.app.Flow.Compose(context.Background(), queued[i])
		if err != nil || !current {
			t.Fatalf("compose %+v: current %v, %v", queued[i], current, err)
		}
		return msg
	}
	t.Fatalf("no message for change %s", changeID)
	return userphone.Message{}
}

// identity returns a new user.
func (e *fuzzEnv) identity(prefix string) userphone.Identity {
	e.n++
	sub := fmt.Sprintf("fuzz-%s-%d", prefix, e.n)
	return userphone.Identity{Subject: sub, Email: sub + "@example.com", Scopes: auth.AllScopes}
}

// number returns a mobile number that no other user of this process has.
func (e *fuzzEnv) number(prefix string) string {
	e.n++
	return fmt.Sprintf("%s%08d", prefix, e.n%100_000_000)
}

func (e *fuzzEnv) token(t testing.TB, id userphone.Identity) string {
	t.Helper()
	tok, err := e.keys.Mint(id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// verifiedUser gives id a verified number, straight in the store.
func (e *fuzzEnv) verifiedUser(t testing.TB, id userphone.Identity, number string) {
	t.Helper()
	ctx := context.Background()
	if err := e.app.Store.InTx(ctx, func(tx userphone.Tx) error {
		if _, err := tx.UpsertUser(ctx, id, time.Now()); err != nil {
			return err
		}
		_, err := tx.TakeVerifiedNumber(ctx, id.Subject, number, time.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func (e *fuzzEnv) do(t *testing.T, method, path, contentType string, body []byte, token string) {
	t.Helper()
	e.doURL(t, method, &url.URL{Path: path}, contentType, body, token)
}

// doURL serves one request and checks the answer's properties.
func (e *fuzzEnv) doURL(t *testing.T, method string, u *url.URL, contentType string, body []byte, token string) {
	t.Helper()
	req := httptest.NewRequest(method, "/", bytes.NewReader(body))
	req.URL, req.RequestURI = u, u.RequestURI()
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.app.Handler.ServeHTTP(rec, req)
	resp := rec.Result()
	got := rec.Body.Bytes()
	where := fmt.Sprintf("%s %s (Content-Type %q, body %q) → %d %s", method, u, contentType, body, resp.StatusCode, got)

	if resp.StatusCode >= 500 {
		t.Fatalf("%s: a server error", where)
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode >= 400 {
		page := u.Path == openapi.BasePath+openapi.ConfirmPath &&
			(resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone)
		if page {
			if !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("%s: the page is %q, want text/html", where, ct)
			}
		} else {
			if err := contract.CheckErrorDocument(t, ct, got); err != nil {
				t.Fatalf("%s: not a JSON:API error document: %v", where, err)
			}
			var doc api.ErrorDocument
			if err := json.Unmarshal(got, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Status != strconv.Itoa(resp.StatusCode) {
				t.Fatalf("%s: the error's status does not match (%v)", where, err)
			}
		}
	}

	// The spec documents the answer: its status for the operation, its
	// headers and its body.
	check := httptest.NewRequest(method, "/", bytes.NewReader(body))
	check.URL, check.Header = u, req.Header
	if err := contract.CheckOperation(t, check, body, resp.StatusCode, resp.Header, got); err != nil {
		t.Fatalf("%s: breaks the spec: %v", where, err)
	}
}

// headerValue returns a header value as net/http's server would hand it to
// a handler (without surrounding blanks), or false when the server would
// refuse the request for it.
func headerValue(v string) (string, bool) {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return "", false
		}
	}
	return strings.Trim(v, " \t"), true
}

// FuzzEncodedPath requests paths under the base path with any escapes: a
// non-canonical spelling of a route is routed as its decoded form, or
// answered 404 or 400, never with a server error or an ERROR log line
// (which would page the on-call engineer).
func FuzzEncodedPath(f *testing.F) {
	for _, seed := range []string{"user/%70hone", "user%2Fphone", "user/phone/%2e%2e/phone", "%75ser/phone/verify",
		"user/phone%00", "user/phone/confirm%3Ftoken=x", "user//phone", "%2e%2e/%2e%2e/openapi.yaml", "user/phone%2F"} {
		f.Add(seed, true)
	}
	env := newFuzzEnv(f)
	token := env.token(f, env.identity("path"))
	f.Fuzz(func(t *testing.T, rest string, withToken bool) {
		u, err := url.ParseRequestURI(openapi.BasePath + "/" + rest)
		if err != nil || u.RawQuery != "" || strings.ContainsAny(rest, " \t\r\n?#") {
			t.Skip("not a path a client can send")
		}
		tok := ""
		if withToken {
			tok = token
		}
		before := len(env.logs.String())
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL, req.RequestURI = u, u.RequestURI()
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		rec := httptest.NewRecorder()
		env.app.Handler.ServeHTTP(rec, req)
		where := fmt.Sprintf("GET %s → %d %s", u, rec.Code, rec.Body)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%s: a server error", where)
		case rec.Code >= 400:
			if err := contract.CheckErrorDocument(t, rec.Header().Get("Content-Type"), rec.Body.Bytes()); err != nil {
				t.Fatalf("%s: not a JSON:API error document: %v", where, err)
			}
		default: // routed to an operation, as its decoded form
			if err := contract.CheckOperation(t, req, nil, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
				t.Fatalf("%s: breaks the spec: %v", where, err)
			}
		}
		if logged := env.logs.String()[before:]; strings.Contains(logged, "level=ERROR") {
			t.Fatalf("GET %s logged an error:\n%s", u, logged)
		}
	})
}
