//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/contracttest"
	"github.com/pace/userphone/internal/hydratest"
	"github.com/pace/userphone/internal/mailpittest"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/phone"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// testCodes are the codes of testNumbersSetting, which no output may
// show.
func testCodes(t *testing.T) []string {
	t.Helper()
	numbers, err := phone.LoadTestNumbers(testNumbersSetting)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, n := range numbers.Numbers() {
		codes = append(codes, numbers[n])
	}
	return codes
}

// contractInstance runs `userphone serve` on d with the test numbers,
// sending e-mail to mail (when not nil), plus extra settings, until the
// test ends. It returns the API base URL and the data directory.
func contractInstance(t *testing.T, d store.Dialect, mail *mailpittest.Server, extra map[string]string) (base, dataDir string) {
	t.Helper()
	cfg := storetest.Config(t, d)
	vars := map[string]string{"USERPHONE_ADDR": testenv.FreeAddr(t), "USERPHONE_DATA_DIR": cfg.DataDir,
		"USERPHONE_DATABASE_URL": cfg.DatabaseURL, "USERPHONE_TEST_NUMBERS": testNumbersSetting}
	if extra["USERPHONE_OIDC_ISSUER"] == "" {
		vars["USERPHONE_DEV"] = "1" // dev tokens, on PostgreSQL too
	}
	if d == store.Postgres {
		vars["USERPHONE_SECRET"] = strings.Repeat("ab", 32)
	}
	if mail != nil {
		vars["USERPHONE_SMTP_URL"], vars["USERPHONE_MAIL_FROM"] = mail.SMTPURL(), "noreply@example.com"
	}
	maps.Copy(vars, extra)
	t.Cleanup(serveInBackground(t, vars))
	return "http://" + vars["USERPHONE_ADDR"] + openapi.BasePath, cfg.DataDir
}

// contractRun is what a run of `userphone contract-test` printed and
// wrote.
type contractRun struct {
	code           int
	stdout, stderr string
	junit          string // the -junit file, when one was given
}

// contractTestRun runs `userphone contract-test args...` in-process with
// vars as its environment.
func contractTestRun(t *testing.T, vars map[string]string, args ...string) contractRun {
	t.Helper()
	var out, errs bytes.Buffer
	run := contractRun{code: run(context.Background(), append([]string{"contract-test"}, args...), env(vars), &out, &errs),
		stdout: out.String(), stderr: errs.String()}
	if i := slices.Index(args, "-junit"); i >= 0 && i+1 < len(args) {
		if b, err := os.ReadFile(args[i+1]); err == nil {
			run.junit = string(b)
		}
	}
	if t.Failed() || run.code != 0 {
		t.Logf("contract-test exit %d\nstdout:\n%s\nstderr:\n%s", run.code, run.stdout, run.stderr)
	}
	return run
}

// wantLines fails t unless out has a line starting with each of want.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains("\n"+out, "\n"+w) {
			t.Errorf("the summary lacks a line starting %q", w)
		}
	}
}

// wantNoSecret fails t if the run's standard output (with -v's lines),
// standard error or JUnit file shows a code, a link's token or one of
// secrets.
func wantNoSecret(t *testing.T, run contractRun, secrets ...string) {
	t.Helper()
	for _, s := range append(append([]string{"token="}, testCodes(t)...), secrets...) {
		for where, out := range map[string]string{"standard output": run.stdout, "standard error": run.stderr, "the JUnit file": run.junit} {
			if strings.Contains(out, s) {
				t.Errorf("%s shows a secret (%.12s…)", where, s)
			}
		}
	}
}

// totals reads the summary's "N passed, N failed, N skipped" line.
func totals(t *testing.T, out string) (passed, failed, skipped int) {
	t.Helper()
	m := regexp.MustCompile(`\n([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the summary has no totals:\n%s", out)
	}
	passed, _ = strconv.Atoi(m[1])
	failed, _ = strconv.Atoi(m[2])
	skipped, _ = strconv.Atoi(m[3])
	return passed, failed, skipped
}

func TestContractTestRefusesBadFlagsWithExit2(t *testing.T) {
	base := "http://127.0.0.1:1" + openapi.BasePath
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"-token", "t"}, "-url is required"},
		{[]string{"-url", "http://127.0.0.1:1/api", "-token", "t"}, "must be the API base, ending in " + openapi.BasePath},
		{[]string{"-url", "ftp://example.com" + openapi.BasePath, "-token", "t"}, "is not an http(s) URL"},
		{[]string{"-url", "http://qa:hunter2@127.0.0.1:1" + openapi.BasePath, "-token", "t"}, "-url must not hold a user name or password"},
		{[]string{"-url", "http://staging.example.com" + openapi.BasePath, "-token", "t"}, "would send a secret in clear text; use https"},
		{[]string{"-url", base}, "give exactly one token source"},
		{[]string{"-url", base, "-token", "t", "-token-command", "echo t"}, "give exactly one token source"},
		{[]string{"-url", base, "-token-url", "http://127.0.0.1:1/token", "-client-id", "qa"}, "-token-url needs -client-id and -client-secret"},
		{[]string{"-url", base, "-token-url", "http://id.example.com/token", "-client-id", "qa", "-client-secret", "hunter2"},
			"-token-url http://id.example.com/token would send a secret in clear text"},
		{[]string{"-url", base, "-token", "t", "-client-id", "qa"}, "-client-id needs -token-url"},
		{[]string{"-url", base, "-token", "t", "-public-url", "https://qa:hunter2@staging.example.com"}, "-public-url must not hold a user name or password"},
		{[]string{"-url", base, "-token", "t", "-mailpit-url", "mailpit:8025"}, "-mailpit-url \"mailpit:8025\" is not an http(s) URL"},
		{[]string{"-url", base, "-token", "t", "-test-numbers", "+4915112345678=12"}, "-test-numbers: the code of test number +4915112345678 must be 6 digits"},
		{[]string{"-url", base, "-token", "t", "-timeout", "0s"}, "-timeout must be positive"},
		{[]string{"-url", base, "-token", "t", "extra"}, `unexpected argument "extra"`},
		{[]string{"-url", base, "-no-such-flag"}, "flag provided but not defined: -no-such-flag; -h lists the flags"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			run := contractTestRun(t, nil, c.args...)
			if run.code != 2 || !strings.Contains(run.stderr, c.says) || run.stdout != "" {
				t.Fatalf("exit %d, stderr %q; want 2 and a sentence saying %q", run.code, run.stderr, c.says)
			}
			wantNoSecret(t, run, "hunter2")
		})
	}
	// The token may come from the environment, out of shell history.
	f, err := parseContractFlags([]string{"-url", base}, env(map[string]string{contractTokenEnv: "from-env"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := f.config(); err != nil || cfg.Token != contracttest.FixedToken("from-env") {
		t.Fatalf("%s is not taken as the token: %v, %v", contractTokenEnv, cfg.Token, err)
	}
}

// A fresh instance keeps the contract through the whole flow on both
// databases, the e-mail step through a real mailpit: a user minted by
// -token-command runs the first number and the change; a user with a
// fixed -token runs it twice, the second time from the change on.
func TestContractTestPassesAgainstAFreshInstanceOnBothDatabases(t *testing.T) {
	bin := testenv.BuildUserphone(t)
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			mail := mailpittest.Start(t)
			// No cool-down, so that a change left open can be called off and
			// followed by another at once (the last run below).
			base, dataDir := contractInstance(t, d, mail, map[string]string{"USERPHONE_RESEND_COOLDOWN": "0s"})
			mint := fmt.Sprintf(`USERPHONE_DATA_DIR=%q %q token --sub "qa-$(date +%%s%%N)" --email "qa-$$@example.com"`, dataDir, bin)
			junit := filepath.Join(t.TempDir(), "report.xml")
			run := contractTestRun(t, nil, "-url", base, "-token-command", mint, "-test-numbers", testNumbersSetting,
				"-mailpit-url", mail.APIURL(), "-junit", junit, "-v")
			if run.code != 0 {
				t.Fatalf("exit %d, want 0", run.code)
			}
			wantLines(t, run.stdout, "PASS  token: from the -token-command: user qa-", "PASS  served spec: agrees with the embedded spec",
				"PASS  flow: first number:", "PASS  flow: a wrong code:", "PASS  flow: verify the first number:",
				"PASS  flow: the confirmation e-mail: mailpit holds", "PASS  flow: confirm the change:",
				"PASS  flow: verify the second number: VerifyUserPhone PUT /user/phone/verify → 200: +4915112340002 verified=true",
				"PASS  negative: UpdateUserPhone with the wrong media type:", "  seen            ConfirmPhoneChange 200",
				"  never answered  UpdateUserPhone 404", "  ConfirmPhoneChange POST /user/phone/confirm → 200 (text/html")
			if !strings.HasSuffix(run.stdout, " passed, 0 failed, 0 skipped\n") {
				t.Errorf("the summary does not end with no failure and no skip")
			}
			wantNoSecret(t, run)
			wantJUnit(t, junit, strings.Count(run.stdout, "\nPASS  "))

			tok := devToken(t, dataDir, "returning")
			for i, first := range []bool{true, false, false} {
				if i == 2 {
					leaveAChangeOpen(t, base, tok)
				}
				run := contractTestRun(t, nil, "-url", base, "-token", tok, "-test-numbers", testNumbersSetting, "-mailpit-url", mail.APIURL(), "-v")
				if run.code != 0 || strings.Contains(run.stdout, "flow: first number") != first || !strings.Contains(run.stdout, "PASS  flow: verify the second number") {
					t.Fatalf("run %d with a fixed token: exit %d; want 0, the first number only on the first run, the change each time", i+1, run.code)
				}
				wantNoSecret(t, run, tok)
			}
		})
	}
}

// leaveAChangeOpen asks for a number other than the verified one and
// goes no further, as a run that was stopped halfway would.
func leaveAChangeOpen(t *testing.T, base, tok string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", base+"/user/phone", strings.NewReader(`{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112349999"}}}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("the change left open: %v %v", resp, err)
	}
	resp.Body.Close()
}

func wantJUnit(t *testing.T, path string, passed int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Skipped  int `xml:"skipped,attr"`
		Cases    []struct {
			Name string `xml:"name,attr"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(b, &suite); err != nil {
		t.Fatalf("the JUnit report does not parse: %v", err)
	}
	if suite.Tests != passed || len(suite.Cases) != passed || suite.Failures != 0 || suite.Skipped != 0 {
		t.Fatalf("JUnit: %d tests (%d cases), %d failures, %d skipped; want %d passed", suite.Tests, len(suite.Cases), suite.Failures, suite.Skipped, passed)
	}
}

// What cannot run is skipped with its reason: no -test-numbers, one test
// number, no -mailpit-url. A skip fails the run, so that a pipeline that
// lacks an input does not go green without the flow, unless -allow-skip
// accepts it; the summary's last lines name the inputs to add.
func TestContractTestSkipsWhatItCannotRunAndSaysWhy(t *testing.T) {
	base, dataDir := contractInstance(t, store.SQLite, nil, nil)
	oneNumber, _, _ := strings.Cut(testNumbersSetting, ",")
	for _, c := range []struct {
		user  string
		args  []string
		says  string
		needs string
	}{
		{"no-numbers", nil, "SKIP  flow: first number: no -test-numbers", "add -test-numbers and -mailpit-url.\n"},
		{"one-number", []string{"-test-numbers", oneNumber}, "SKIP  flow: change to a second number: the user's verified number is the only test number",
			"add a second test number in -test-numbers and -mailpit-url.\n"},
		{"no-mailpit", []string{"-test-numbers", testNumbersSetting}, "SKIP  flow: change to a second number: no -mailpit-url", "add -mailpit-url.\n"},
	} {
		tok := devToken(t, dataDir, c.user)
		args := append([]string{"-url", base, "-token", tok}, c.args...)
		run := contractTestRun(t, nil, args...)
		if run.code != 1 {
			t.Fatalf("%s: exit %d, want 1 for a run that skipped checks", c.user, run.code)
		}
		wantLines(t, run.stdout, c.says, "PASS  negative: an unknown path:")
		if _, failed, skipped := totals(t, run.stdout); failed != 0 || skipped == 0 {
			t.Errorf("%s: %d failed, %d skipped; want skips and no failure", c.user, failed, skipped)
		}
		if !strings.HasSuffix(run.stdout, c.needs+"Skipped checks fail the run; -allow-skip accepts a run without them.\n") {
			t.Errorf("%s: the summary does not end by naming the inputs to add (%q) and -allow-skip", c.user, c.needs)
		}

		run = contractTestRun(t, nil, append(args, "-allow-skip")...)
		if run.code != 0 || !strings.HasSuffix(run.stdout, c.needs+"-allow-skip accepts the skipped checks.\n") {
			t.Fatalf("%s with -allow-skip: exit %d; want 0, and the inputs to add named", c.user, run.code)
		}
	}
}

// A set-up mistake fails the run with a sentence that names it: an
// instance that does not answer (and nothing else is tried), a -spec-url
// where no spec is, a -mailpit-url where no mailpit is.
func TestContractTestNamesWhatIsWrongWithTheSetUp(t *testing.T) {
	run := contractTestRun(t, nil, "-url", "http://"+testenv.FreeAddr(t)+openapi.BasePath, "-token", "t")
	if run.code != 1 || strings.Contains(run.stdout, "flow:") {
		t.Fatalf("no instance: exit %d; want 1 and no further checks", run.code)
	}
	wantLines(t, run.stdout, "FAIL  served spec: GET "+openapi.SpecPath+": no answer (")
	if !strings.Contains(run.stdout, "is -url right and the instance up?") {
		t.Error("the failure does not say what to check")
	}

	base, dataDir := contractInstance(t, store.SQLite, nil, nil)
	specURL := strings.TrimSuffix(base, openapi.BasePath) + "/no-spec.yaml"
	// mailpit's --ui-auth-file asks for a password, which no line shows.
	closed := testenv.FreeAddr(t)
	run = contractTestRun(t, nil, "-url", base, "-token", devToken(t, dataDir, "set-up"), "-spec-url", specURL,
		"-test-numbers", testNumbersSetting, "-mailpit-url", "http://qa:hunter2@"+closed)
	if run.code != 1 {
		t.Fatalf("exit %d, want 1", run.code)
	}
	wantLines(t, run.stdout, "FAIL  served spec: GET "+specURL+" answered 404, want 200 with the spec; give -spec-url if it is served elsewhere",
		"FAIL  flow: change to a second number: mailpit cannot be reached at http://qa:xxxxx@"+closed)
	wantNoSecret(t, run, "hunter2")
}

// A failing -token-command's standard error may hold a token: the run
// says how the command ended and what to do, and shows nothing it printed,
// in no output.
func TestContractTestShowsNothingAFailingTokenCommandPrinted(t *testing.T) {
	junit := filepath.Join(t.TempDir(), "report.xml")
	run := contractTestRun(t, nil, "-url", "http://"+testenv.FreeAddr(t)+openapi.BasePath,
		"-token-command", "echo 'Authorization: Bearer SECRET' >&2; exit 1", "-junit", junit, "-v")
	if run.code != 1 {
		t.Fatalf("exit %d, want 1", run.code)
	}
	wantLines(t, run.stdout, "FAIL  token: the -token-command failed (exit status 1); run it alone to see why\n")
	if !strings.Contains(run.junit, "the -token-command failed (exit status 1)") {
		t.Errorf("the JUnit file does not report the failure:\n%s", run.junit)
	}
	wantNoSecret(t, run, "SECRET")
}

// The e-mail's link carries the link's token: it is followed only to the
// instance's public URL, the root of -url or -public-url. Here the
// instance's USERPHONE_PUBLIC_URL is a reverse proxy in front of it.
func TestContractTestFollowsTheEmailsLinkOnlyToTheInstance(t *testing.T) {
	mail := mailpittest.Start(t)
	addr := testenv.FreeAddr(t)
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr}).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	base, dataDir := contractInstance(t, store.SQLite, mail, map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_PUBLIC_URL": proxy.URL})

	run := contractTestRun(t, nil, "-url", base, "-token", devToken(t, dataDir, "elsewhere"), "-test-numbers", testNumbersSetting,
		"-mailpit-url", mail.APIURL())
	if run.code != 1 || proxied.Load() != 0 {
		t.Fatalf("exit %d, %d requests to the other host; want 1 and none", run.code, proxied.Load())
	}
	confirm := openapi.BasePath + openapi.ConfirmPath
	wantLines(t, run.stdout, "FAIL  flow: the confirmation e-mail: the e-mail's link goes to "+proxy.URL+confirm+", not "+
		strings.TrimSuffix(base, openapi.BasePath)+confirm+"; is the instance's USERPHONE_PUBLIC_URL right, or give -public-url\n")
	wantNoSecret(t, run)

	run = contractTestRun(t, nil, "-url", base, "-public-url", proxy.URL, "-token", devToken(t, dataDir, "public"),
		"-test-numbers", testNumbersSetting, "-mailpit-url", mail.APIURL())
	if run.code != 0 || proxied.Load() == 0 {
		t.Fatalf("with -public-url: exit %d, %d requests through the public URL; want 0 and the link followed there", run.code, proxied.Load())
	}
	wantLines(t, run.stdout, "PASS  flow: confirm the change:")
}

// A 429 of the user's limits fails the run with a sentence that says so
// and what to do.
func TestContractTestSaysWhenTheUsersLimitsAreSpent(t *testing.T) {
	base, dataDir := contractInstance(t, store.SQLite, nil, map[string]string{"USERPHONE_LIMIT_CHANGES_PER_HOUR": "1", "USERPHONE_RESEND_COOLDOWN": "0s"})
	tok := devToken(t, dataDir, "spent")
	req, _ := http.NewRequest("PUT", base+"/user/phone", strings.NewReader(phoneBody))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("the change that spends the hour's one: %v %v", resp, err)
	}
	resp.Body.Close()
	run := contractTestRun(t, nil, "-url", base, "-token", tok, "-test-numbers", testNumbersSetting)
	if run.code != 1 {
		t.Fatalf("exit %d, want 1", run.code)
	}
	wantLines(t, run.stdout, "FAIL  flow: first number: UpdateUserPhone PUT /user/phone → 429 rate-limited",
		"SKIP  flow: check while the code is awaited: an earlier step of the flow failed (first number)")
	if !strings.Contains(run.stdout, "this user's limits are spent; run with a fresh user (e.g. a -token-command that mints one), or wait ") {
		t.Errorf("the failure does not say that the limits are spent and what to do")
	}
}

// An instance that answers off the spec fails the run, and the line says
// which operation, which status and what is wrong. A reverse proxy in
// front of a real instance changes one answer.
func TestContractTestFailsOnAnAnswerOffTheSpec(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*http.Response) // applied to the answer to match
		match  func(*http.Request, *http.Response) bool
		want   string
	}{
		{"a dropped required field", dropAttribute("verified"), answerTo("PUT", "/user/phone", 201),
			`FAIL  flow: first number: UpdateUserPhone PUT /user/phone → 201 breaks the served and the embedded spec: response body doesn't match schema #/components/schemas/PhoneDocument: Error at "/data/attributes/verified": property "verified" is missing` + "\n"},
		{"the wrong content type", setHeader("Content-Type", "application/json"), answerTo("GET", "/user/phone", 404),
			`FAIL  flow: the user's state: CheckUserPhone GET /user/phone → 404 breaks the served and the embedded spec: response header Content-Type has unexpected value: "application/json"`},
		{"an undocumented status", setStatus(http.StatusTeapot), answerTo("PUT", "/user/phone/verify", 422),
			`FAIL  flow: a wrong code: VerifyUserPhone PUT /user/phone/verify → 418 breaks the served and the embedded spec: status is not supported`},
		{"an undocumented redirect", setStatus(http.StatusTemporaryRedirect), answerTo("GET", "/user/phone", 404),
			`FAIL  flow: the user's state: CheckUserPhone GET /user/phone → 307 breaks the served and the embedded spec: status is not supported`},
		{"a served spec without a documented status", removeFromBody("        \"409\":\n          $ref: \"#/components/responses/Conflict\"\n"), answerTo("GET", openapi.SpecPath, 200),
			`FAIL  served spec: the served spec differs from the embedded one at /paths/~1user~1phone/put/responses/409: served (none), embedded {"$ref":"#/components/responses/Conflict"}`},
		{"a served spec with a shorter confirmation token", replaceInBody("        maxLength: 256\n      example: 3q2", "        maxLength: 128\n      example: 3q2"), answerTo("GET", openapi.SpecPath, 200),
			`FAIL  served spec: the served spec differs from the embedded one at /components/parameters/ConfirmationToken/schema/maxLength: served 128, embedded 256`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			base, dataDir := contractInstance(t, store.SQLite, nil, nil)
			proxied := offSpecProxy(t, base, c.match, c.change)
			run := contractTestRun(t, nil, "-url", proxied, "-token", devToken(t, dataDir, "proxied"), "-test-numbers", testNumbersSetting)
			if run.code != 1 {
				t.Fatalf("exit %d, want 1", run.code)
			}
			wantLines(t, run.stdout, c.want)
		})
	}
}

// offSpecProxy is a reverse proxy to the instance at base that changes
// the answers that match; it returns its own API base URL.
func offSpecProxy(t *testing.T, base string, match func(*http.Request, *http.Response) bool, change func(*http.Response)) string {
	t.Helper()
	target, _ := url.Parse(base)
	target.Path = ""
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if match(resp.Request, resp) {
			change(resp)
		}
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL + openapi.BasePath
}

func answerTo(method, path string, status int) func(*http.Request, *http.Response) bool {
	return func(r *http.Request, resp *http.Response) bool {
		return r.Method == method && strings.HasSuffix(r.URL.Path, path) && resp.StatusCode == status
	}
}

func setHeader(name, value string) func(*http.Response) {
	return func(resp *http.Response) { resp.Header.Set(name, value) }
}

func setStatus(status int) func(*http.Response) {
	return func(resp *http.Response) {
		resp.StatusCode, resp.Status = status, strconv.Itoa(status)+" "+http.StatusText(status)
	}
}

func dropAttribute(name string) func(*http.Response) {
	return rewriteBody(func(b []byte) []byte {
		var doc struct {
			Data map[string]any `json:"data"`
		}
		if json.Unmarshal(b, &doc) != nil {
			return b
		}
		if attrs, ok := doc.Data["attributes"].(map[string]any); ok {
			delete(attrs, name)
		}
		out, _ := json.Marshal(doc)
		return out
	})
}

func removeFromBody(text string) func(*http.Response) {
	return replaceInBody(text, "")
}

func replaceInBody(old, new string) func(*http.Response) {
	return rewriteBody(func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) })
}

func rewriteBody(edit func([]byte) []byte) func(*http.Response) {
	return func(resp *http.Response) {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b = edit(b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	}
}

// The client-credentials token source against a real Ory Hydra: the
// client's token (its sub is the client id; a token hook adds the e-mail
// claim, as a consent app would) runs the whole flow against an instance
// that checks Hydra's tokens, the client secret coming from the
// environment.
func TestContractTestWithClientCredentialsFromHydra(t *testing.T) {
	const email = "qa-client@example.com"
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"session":{"access_token":{"email":%q}}}`, email)
	}))
	t.Cleanup(hook.Close)
	hy := hydratest.Start(t, hydratest.Set("oauth2.token_hook", hook.URL))
	client := hy.NewClient(t, []string{"userphone"}, auth.AllScopes)
	mail := mailpittest.Start(t)
	base, _ := contractInstance(t, store.SQLite, mail, map[string]string{
		"USERPHONE_OIDC_ISSUER": hy.Issuer(), "USERPHONE_OIDC_AUDIENCE": "userphone", "USERPHONE_ALLOW_TEST_NUMBERS": "1"})
	// The README's command against staging, with this test's hosts and
	// client in place of staging's.
	args := readmeCommand(t, "Against staging, with the client credentials", "userphone contract-test", strings.NewReplacer(
		"https://staging.example.com"+openapi.BasePath, base, "https://id.staging.example.com/oauth2/token", hy.TokenURL(),
		"userphone-qa", client.ID, "http://mailpit.staging.internal:8025", mail.APIURL(),
		"contract-test.xml", filepath.Join(t.TempDir(), "contract-test.xml")))
	run := contractTestRun(t, map[string]string{contractClientSecretEnv: client.Secret}, append(args, "-v")...)
	if run.code != 0 {
		t.Fatalf("exit %d, want 0", run.code)
	}
	wantLines(t, run.stdout, "PASS  token: from the client credentials of "+client.ID+": user "+client.ID+", e-mail to "+email,
		"PASS  flow: the confirmation e-mail:", "PASS  flow: verify the second number:")
	if !strings.HasSuffix(run.stdout, " passed, 0 failed, 0 skipped\n") {
		t.Errorf("the summary does not end with no failure and no skip")
	}
	wantNoSecret(t, run, client.Secret)

	run = contractTestRun(t, nil, "-url", base, "-token-url", hy.TokenURL(), "-client-id", client.ID,
		"-client-secret", "not-the-secret", "-audience", "userphone")
	if run.code != 1 {
		t.Fatalf("a wrong client secret: exit %d, want 1", run.code)
	}
	wantLines(t, run.stdout, "FAIL  token: the token endpoint answered 401 invalid_client")
	wantNoSecret(t, run, "not-the-secret")
}
