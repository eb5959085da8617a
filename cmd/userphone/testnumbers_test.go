package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

const testNumbersSetting = "+4915112340001=424242,+4915112340002=515151"

var testWebhookSecret = strings.Repeat("cd", 32)

// Outside dev mode (an OIDC issuer is set) test numbers refuse to start
// unless USERPHONE_ALLOW_TEST_NUMBERS says they are meant; a bad pair or
// end date stops the start with a line naming the variable; `config`
// never prints a code.
func TestTestNumbersNeedTheExplicitSettingOutsideDevMode(t *testing.T) {
	issuer := map[string]string{"USERPHONE_OIDC_ISSUER": "https://issuer.example", "USERPHONE_OIDC_AUDIENCE": "userphone",
		"USERPHONE_TEST_NUMBERS": testNumbersSetting}
	configWith := func(extra map[string]string) (int, string) {
		vars := map[string]string{}
		for k, v := range extra {
			vars[k] = v
		}
		var out bytes.Buffer
		code := run(context.Background(), []string{"config"}, env(vars), &out, &out)
		return code, out.String()
	}
	code, out := configWith(issuer)
	wantRefused(t, code, out, "USERPHONE_TEST_NUMBERS", "USERPHONE_ALLOW_TEST_NUMBERS=1", "without a phone")

	issuer["USERPHONE_ALLOW_TEST_NUMBERS"] = "1"
	if code, out = configWith(issuer); code != 0 || strings.Contains(out, "424242") || !strings.Contains(out, "(set, hidden)") {
		t.Fatalf("allowed: exit %d, or a code or the numbers printed:\n%s", code, out)
	}
	for value, says := range map[string]string{
		"+4915112340001=4242":   "must be 6 digits",
		"+4915112340001":        "has no code",
		"/no/such/numbers/file": "cannot read the test numbers file",
	} {
		code, out := configWith(map[string]string{"USERPHONE_TEST_NUMBERS": value})
		wantRefused(t, code, out, "USERPHONE_TEST_NUMBERS", says)
	}
	code, out = configWith(map[string]string{"USERPHONE_TEST_NUMBERS": testNumbersSetting, "USERPHONE_TEST_NUMBERS_UNTIL": "next week"})
	wantRefused(t, code, out, "USERPHONE_TEST_NUMBERS_UNTIL", "is not a date")
}

// A near miss of the test numbers' setting is warned about, though
// USERPHONE_TEST_* is otherwise the tests' own.
func TestAMistypedTestNumbersSettingIsWarnedAbout(t *testing.T) {
	cfg, err := loadConfig(env(map[string]string{"USERPHONE_TEST_NUMBER": testNumbersSetting, "USERPHONE_TEST_STRICT": "1"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.warnings) != 1 || !strings.Contains(cfg.warnings[0], "USERPHONE_TEST_NUMBER is not a setting") || !strings.Contains(cfg.warnings[0], "did you mean USERPHONE_TEST_NUMBERS?") {
		t.Fatalf("warnings: %q", cfg.warnings)
	}
}

// Each start says how many test numbers there are and when they end,
// never their codes; a start past their end says they have ended.
func TestEachStartLogsTheTestNumbersWithoutTheirCodes(t *testing.T) {
	day := time.Now().UTC().Add(24 * time.Hour)
	tomorrow, endOfTomorrow := day.Format(time.DateOnly), day.Truncate(24*time.Hour).Add(24*time.Hour).Format(time.RFC3339)
	code, log := serveOnce(t, map[string]string{"USERPHONE_DATA_DIR": t.TempDir(),
		"USERPHONE_TEST_NUMBERS": testNumbersSetting, "USERPHONE_TEST_NUMBERS_UNTIL": tomorrow})
	if code != 0 || !strings.Contains(log, "test numbers on") || !strings.Contains(log, "test_numbers=2") ||
		!strings.Contains(log, "until="+endOfTomorrow) || strings.Contains(log, "424242") || strings.Contains(log, "515151") {
		t.Fatalf("exit %d; want the count and the end, and no code:\n%s", code, log)
	}
	code, log = serveOnce(t, map[string]string{"USERPHONE_DATA_DIR": t.TempDir(),
		"USERPHONE_TEST_NUMBERS": testNumbersSetting, "USERPHONE_TEST_NUMBERS_UNTIL": "2020-01-31"})
	if code != 0 || !strings.Contains(log, "the test numbers have ended") {
		t.Fatalf("exit %d; want the end said:\n%s", code, log)
	}
}

// A test number completes the whole flow on both databases with no call
// to the SMS provider (a real webhook receiver, configured and working:
// an ordinary number's SMS reaches it); the metrics count the test code
// and no SMS.
func TestATestNumberRunsTheWholeFlowWithoutTheProvider(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := storetest.Config(t, d)
			hook := testservers.StartWebhook(t, testWebhookSecret)
			addr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
			vars := map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_METRICS_ADDR": metricsAddr, "USERPHONE_DEV": "1",
				"USERPHONE_DATA_DIR": cfg.DataDir, "USERPHONE_DATABASE_URL": cfg.DatabaseURL,
				"USERPHONE_SMS_PROVIDER": "webhook", "USERPHONE_SMS_WEBHOOK_URL": hook.URL(), "USERPHONE_SMS_WEBHOOK_SECRET": testWebhookSecret,
				"USERPHONE_TEST_NUMBERS": testNumbersSetting}
			if d == store.Postgres {
				vars["USERPHONE_SECRET"] = strings.Repeat("ab", 32)
			}
			stop := serveInBackground(t, vars)
			defer stop()
			api := apiCaller{t: t, base: "http://" + addr + "/user/2021-2", token: devToken(t, cfg.DataDir, "tester")}
			api.want("PUT", "/user/phone", `{"data":{"type":"phone","attributes":{"phoneNumber":"+49 151 12340001"}}}`, 201)
			api.want("PUT", "/user/phone/verify", `{"code":"000000"}`, 422)
			api.want("PUT", "/user/phone/verify", `{"code":"424242"}`, 200)
			if body := api.want("GET", "/user/phone", "", 200); !strings.Contains(body, "+4915112340001") {
				t.Fatalf("GET: %s", body)
			}
			other := apiCaller{t: t, base: api.base, token: devToken(t, cfg.DataDir, "ordinary")}
			other.want("PUT", "/user/phone", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345678"}}}`, 201)
			waitFor(t, func() bool { return len(hook.SMS()) > 0 })
			for _, sms := range hook.SMS() {
				if strings.Contains(sms.To, "1234000") {
					t.Fatalf("the provider was called for a test number: %+v", sms)
				}
			}
			m := metricsText(t, "http://"+metricsAddr+"/metrics")
			if !strings.Contains(m, `userphone_flow_events_total{event="test_code"} 1`) || !strings.Contains(m, `userphone_flow_events_total{event="sms_sent"} 1`) {
				t.Fatalf("the metrics do not count one test code and one SMS:\n%s", grepLines(m, "flow_events_total"))
			}
		})
	}
}

// serveInBackground runs `userphone serve` with vars until the returned
// stop is called; the server must exit cleanly.
func serveInBackground(t *testing.T, vars map[string]string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, env(vars), os.Stdout, &logs) }()
	for !testenv.AnswersOK("http://" + vars["USERPHONE_ADDR"] + "/health/ready") {
		select {
		case code := <-done:
			t.Fatalf("the server exited (%d) before it was ready:\n%s", code, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return func() {
		cancel()
		if code := <-done; code != 0 || t.Failed() {
			t.Errorf("exit %d; server log:\n%s", code, logs.String())
		}
	}
}

// apiCaller makes the API calls of one user, each answer held to the spec.
type apiCaller struct {
	t           *testing.T
	base, token string
}

// want makes a call, fails the test unless it answers status, and returns
// the body.
func (a apiCaller) want(method, path, body string, status int) string {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	switch {
	case strings.HasSuffix(path, "/verify"):
		req.Header.Set("Content-Type", "application/json")
	case body != "":
		req.Header.Set("Content-Type", "application/vnd.api+json")
	}
	resp, err := contract.Client(a.t).Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		a.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	return string(b)
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("timed out")
}

func metricsText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
