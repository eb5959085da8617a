package contracttest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/internal/contracttest/check"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/phone"
)

func TestAPIBaseMustEndInTheSpecsBasePath(t *testing.T) {
	u, err := APIBase("https://staging.example.com/api" + openapi.BasePath + "/")
	if err != nil {
		t.Fatal(err)
	}
	if got := DefaultSpecURL(u); got != "https://staging.example.com/api"+openapi.SpecPath {
		t.Fatalf("the spec's URL is %q, want the root's %s", got, openapi.SpecPath)
	}
	for _, bad := range []string{"https://staging.example.com", "staging.example.com" + openapi.BasePath, "https://x" + openapi.BasePath + "?a=b"} {
		if _, err := APIBase(bad); err == nil || !strings.Contains(err.Error(), openapi.BasePath) {
			t.Errorf("APIBase(%q) = %v, want an error that shows the base path", bad, err)
		}
	}
}

// The URL that gets the token must not print a password, nor send the
// token in clear text off this machine.
func TestAPIBaseRefusesAPasswordAndPlainHTTPOffLoopback(t *testing.T) {
	for raw, says := range map[string]string{
		"https://qa:hunter2@staging.example.com" + openapi.BasePath: "-url must not hold a user name or password",
		"http://staging.example.com" + openapi.BasePath:             "would send a secret in clear text; use https",
	} {
		_, err := APIBase(raw)
		if err == nil || !strings.Contains(err.Error(), says) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("APIBase(%q) = %v; want an error saying %q, without the password", raw, err, says)
		}
	}
	for _, ok := range []string{"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "https://staging.example.com"} {
		if _, err := APIBase(ok + openapi.BasePath); err != nil {
			t.Errorf("APIBase(%q): %v", ok+openapi.BasePath, err)
		}
	}
	if err := (ClientCredentials{TokenURL: "http://id.example.com/oauth2/token"}).CheckURL(); err == nil || !strings.Contains(err.Error(), "-token-url") {
		t.Errorf("a token URL over http off loopback: %v", err)
	}
}

// The error codes' statuses and the body cap come from the spec's
// ErrorCode table.
func TestTheErrorTableIsReadFromTheSpec(t *testing.T) {
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	statuses, bodyCap := errorTable(doc)
	for code, status := range map[string]int{"unauthorized": 401, "unsupported-media-type": 415, "invalid-request": 400,
		"request-too-large": 413, "invalid-phone-number": 422, "method-not-allowed": 405, "invalid-code": 422,
		"no-pending-verification": 404, "email-confirmation-pending": 409, "cross-site-request": 403, "not-found": 404} {
		if statuses[code] != status {
			t.Errorf("%s: status %d, want %d", code, statuses[code], status)
		}
	}
	if bodyCap != 16<<10 {
		t.Errorf("the body cap is %d, want 16 KiB", bodyCap)
	}
}

// A spec whose ErrorCode table names no body cap fails the case that
// needs it, rather than guess one.
func TestABodyCapTheSpecDoesNotNameFailsItsCase(t *testing.T) {
	r := testRunner(t)
	gaps := 0
	for _, n := range r.negatives(0) {
		if !strings.Contains(n.name, "over") {
			continue
		}
		if n.specGap == "" {
			t.Fatalf("%s is sent without a cap from the spec", n.name)
		}
		gaps++
		r.step(context.Background(), n.name, sendNegative(n, nil))
	}
	for _, res := range r.report.Results {
		if res.Outcome != Failed || !strings.Contains(res.Reason, "names no cap") {
			t.Errorf("%s: %s %s; want a failure that names the gap in the spec", res.Name, res.Outcome, res.Reason)
		}
	}
	if gaps == 0 || len(r.report.Results) != gaps {
		t.Fatalf("%d cases over the cap, %d results", gaps, len(r.report.Results))
	}
}

// testRunner is a runner for an instance that is not there, with a token.
func testRunner(t *testing.T) *runner {
	t.Helper()
	r, err := newRunner(Config{BaseURL: "http://127.0.0.1:1" + openapi.BasePath, Token: FixedToken("t")})
	if err != nil {
		t.Fatal(err)
	}
	r.token = "t"
	return r
}

// The negative cases follow from the spec: each secured operation without
// a token, each body with the wrong media type, ... and no request carries
// the example's real-looking number.
func TestNegativesAreDerivedFromTheSpec(t *testing.T) {
	r := testRunner(t)
	names := map[string]negative{}
	for _, n := range r.negatives(16 << 10) {
		names[n.name] = n
		if strings.Contains(string(n.req.body), "15112345678") {
			t.Errorf("%s sends the example's number", n.name)
		}
	}
	for _, want := range []string{"CheckUserPhone without a token", "VerifyUserPhone with a bad token",
		"UpdateUserPhone with the wrong media type", "VerifyUserPhone with malformed JSON", "ConfirmPhoneChange with a body over 16 KiB",
		"UpdateUserPhone with an invalid number", "ShowPhoneConfirmation without its token", "ConfirmPhoneChange from another site",
		"ShowPhoneConfirmation with an unknown link token", "an unknown method on /user/phone/verify", "an unknown path"} {
		if _, ok := names[want]; !ok {
			t.Errorf("no negative case %q", want)
		}
	}
	if _, ok := names["ShowPhoneConfirmation without a token"]; ok {
		t.Error("the confirmation page needs no bearer token, but a case asks for 401")
	}
	if n := names["ConfirmPhoneChange with a body over 16 KiB"]; len(n.req.body) != 16<<10+1 {
		t.Errorf("the oversized body has %d bytes, want one over the cap", len(n.req.body))
	}
}

func TestTheConfirmationFormIsReadAsABrowserWould(t *testing.T) {
	confirm := openapi.BasePath + openapi.ConfirmPath
	page := []byte(`<html><body><form method="post" action="` + confirm + `" enctype="application/x-www-form-urlencoded">
<input type="hidden" name="token" value="a&#43;b"><button type="submit">Confirm</button></form></body></html>`)
	link, _ := url.Parse("https://staging.example.com" + confirm + "?token=abc")
	f, err := readConfirmForm(page, link)
	if err != nil {
		t.Fatal(err)
	}
	if f.method != "POST" || f.action.String() != "https://staging.example.com"+confirm || f.fields.Get("token") != "a+b" {
		t.Fatalf("form %s %s %v", f.method, f.action, f.fields)
	}
	if _, err := readConfirmForm([]byte(`<form method="get" action="/x"><input name="token" value="t"></form>`), link); err == nil {
		t.Fatal("a form that GETs passed")
	}
	if _, err := readConfirmForm([]byte(`<p>Confirmed.</p>`), link); err == nil {
		t.Fatal("a page without a form passed")
	}
}

// The e-mail's link and the form's action carry the link's token: the
// run follows them only to the instance's confirmation page, under -url's
// root or -public-url.
func TestLinksAreFollowedOnlyToTheInstance(t *testing.T) {
	confirm := openapi.BasePath + openapi.ConfirmPath
	for _, c := range []struct {
		base, public, link string
		ok                 bool
	}{
		{"https://staging.example.com", "", "https://staging.example.com" + confirm + "?token=t", true},
		{"https://staging.example.com", "", "https://STAGING.example.com:443" + confirm + "?token=t", true},
		{"https://staging.example.com", "", "https://evil.example" + confirm + "?token=t", false},
		{"https://staging.example.com", "", "http://staging.example.com" + confirm + "?token=t", false},
		{"https://staging.example.com", "", "https://staging.example.com:8443" + confirm + "?token=t", false},
		{"https://staging.example.com/api", "", "https://staging.example.com" + confirm + "?token=t", false},
		{"https://staging.example.com/api", "", "https://staging.example.com/api" + confirm + "?token=t", true},
		{"https://10.0.0.5:8443", "https://staging.example.com", "https://staging.example.com" + confirm + "?token=t", true},
		{"http://127.0.0.1:8080", "https://staging.example.com", "http://127.0.0.1:8080" + confirm + "?token=t", false},
	} {
		r, err := newRunner(Config{BaseURL: c.base + openapi.BasePath, PublicURL: c.public, Token: FixedToken("t")})
		if err != nil {
			t.Fatal(err)
		}
		link, _ := url.Parse(c.link)
		err = r.leadsToTheInstance("the e-mail's link", link)
		if (err == nil) != c.ok {
			t.Errorf("-url %s -public-url %q, link %s: %v; want ok=%v", c.base, c.public, c.link, err, c.ok)
		}
		if err != nil && (strings.Contains(err.Error(), "token=") ||
			!strings.Contains(err.Error(), "is the instance's USERPHONE_PUBLIC_URL right, or give -public-url")) {
			t.Errorf("the refusal %q shows the link's token, or does not say what to do", err)
		}
	}
}

func TestTheEmailAddressIsReadFromTheTokensClaims(t *testing.T) {
	jwt := func(payload string) string {
		return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".sig"
	}
	for token, want := range map[string]claims{
		jwt(`{"sub":"u1","email":"a@example.com"}`):         {Subject: "u1", Email: "a@example.com"},
		jwt(`{"sub":"c1","ext":{"email":"b@example.com"}}`): {Subject: "c1", Email: "b@example.com"},
		"ory_at_opaque-token":                               {},
	} {
		if got := readClaims(token); got != want {
			t.Errorf("readClaims(%.20s…) = %+v, want %+v", token, got, want)
		}
	}
}

func TestATokenCommandsOutputIsTheToken(t *testing.T) {
	ctx := context.Background()
	if tok, err := CommandToken("printf '  tok-123\\n'").Token(ctx); err != nil || tok != "tok-123" {
		t.Fatalf("Token = %q, %v; want the trimmed output", tok, err)
	}
	if _, err := CommandToken("echo two words").Token(ctx); err == nil || !strings.Contains(err.Error(), "did not print one token") {
		t.Fatalf("two words: %v", err)
	}
}

// A failing command's standard error may hold a token: the error says
// how it ended, never what it printed.
func TestAFailingTokenCommandsStandardErrorIsNotShown(t *testing.T) {
	_, err := CommandToken("echo 'Authorization: Bearer SECRET' >&2; exit 3").Token(context.Background())
	if err == nil || strings.Contains(err.Error(), "SECRET") ||
		err.Error() != "the -token-command failed (exit status 3); run it alone to see why" {
		t.Fatalf("a failing command: %v; want its exit status and what to do, not its output", err)
	}
}

// A child the command leaves in the background, holding its standard
// output, keeps the run waiting neither past the command's end nor past
// -timeout.
func TestATokenCommandsBackgroundChildDoesNotHoldTheRun(t *testing.T) {
	start := time.Now()
	tok, err := CommandToken("sleep 5 & echo tok-bg").Token(context.Background())
	if err != nil || tok != "tok-bg" || time.Since(start) > commandWaitDelay+2*time.Second {
		t.Fatalf("Token = %q, %v after %s; want the token within %s", tok, err, time.Since(start), commandWaitDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = CommandToken("sleep 5; echo late").Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "did not finish within -timeout") || time.Since(start) > commandWaitDelay+2*time.Second {
		t.Fatalf("a command past -timeout: %v after %s", err, time.Since(start))
	}
}

// The client's secret goes to -token-url only: a redirect is not
// followed.
func TestTheTokenEndpointsRedirectIsNotFollowed(t *testing.T) {
	var followed bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed = true }))
	defer elsewhere.Close()
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer issuer.Close()
	_, err := ClientCredentials{TokenURL: issuer.URL + "/token", ClientID: "qa", ClientSecret: "s"}.Token(context.Background())
	if followed || err == nil || !strings.Contains(err.Error(), "answered 307, a redirect") {
		t.Fatalf("followed=%v, %v; want the redirect refused", followed, err)
	}
}

// An answer over the cap fails, rather than be checked cut short.
func TestAnAnswerOverTheCapFails(t *testing.T) {
	if b, err := readAnswer(strings.NewReader(strings.Repeat("x", maxAnswer)), maxAnswer); err != nil || len(b) != maxAnswer {
		t.Fatalf("an answer of exactly 1 MiB: %d bytes, %v", len(b), err)
	}
	if _, err := readAnswer(strings.NewReader(strings.Repeat("x", maxAnswer+1)), maxAnswer); err == nil ||
		!strings.Contains(err.Error(), "the answer is larger than 1 MiB") {
		t.Fatalf("an answer over 1 MiB: %v", err)
	}
}

// A step that saw an answer off the spec fails, even when it then
// says it could not go on.
func TestAViolationOutranksASkip(t *testing.T) {
	r := testRunner(t)
	r.step(context.Background(), "a step", func(_ context.Context, s *step) (string, error) {
		s.violations = append(s.violations, "X GET /x → 500 breaks the embedded spec: bad")
		return "", skipped{reason: "cannot go on"}
	})
	if res := r.report.Results[0]; res.Outcome != Failed || !strings.Contains(res.Reason, "breaks the embedded spec") {
		t.Fatalf("result %+v; want the violation as a failure", res)
	}
}

func TestTheWrongCodeIsNoTestNumbersCode(t *testing.T) {
	if c := wrongCode(map[string]string{"+1": "000000", "+2": "111111"}); c == "000000" || c == "111111" || len(c) != 6 {
		t.Fatalf("wrongCode = %q", c)
	}
}

func TestTheReportSaysWhatPassedFailedAndWasSkipped(t *testing.T) {
	r := &Report{Target: "http://x" + openapi.BasePath, Results: []Result{
		{Name: "served spec", Outcome: Passed, Reason: "agrees"},
		{Name: "flow: first number", Outcome: Failed, Reason: "UpdateUserPhone PUT /user/phone → 500", Details: []string{"the answer's body: {}"}},
		{Name: "flow: change", Outcome: Skipped, Reason: "no -mailpit-url", Needs: []string{"-mailpit-url"}},
	}, Pairs: []check.Pair{{Operation: "CheckUserPhone", Status: "200"}, {Operation: "CheckUserPhone", Status: "404"},
		{Operation: "UpdateUserPhone", Status: "404", NotAnswered: true}}, Seen: map[string]bool{"CheckUserPhone 200": true}}
	var out bytes.Buffer
	r.WriteSummary(&out)
	for _, want := range []string{"PASS  served spec: agrees\n", "FAIL  flow: first number: UpdateUserPhone PUT /user/phone → 500\n        the answer's body: {}\n",
		"SKIP  flow: change: no -mailpit-url\n", "1 seen, 1 not seen, 1 documented as never answered", "  seen            CheckUserPhone 200\n",
		"  not seen        CheckUserPhone 404\n", "  never answered  UpdateUserPhone 404\n", "\n1 passed, 1 failed, 1 skipped\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, out.String())
		}
	}
	if !r.Failed() || r.OK() {
		t.Error("a report with a failure says it passed")
	}
	var x bytes.Buffer
	if err := r.WriteJUnit(&x); err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests, Failures, Skipped int `xml:",attr"`
		Cases                    []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(x.Bytes(), &suite); err != nil {
		t.Fatal(err)
	}
	if len(suite.Cases) != 3 || suite.Cases[1].Failure == nil || suite.Cases[1].Failure.Message != "UpdateUserPhone PUT /user/phone → 500" {
		t.Fatalf("JUnit cases: %+v", suite.Cases)
	}
}

// A skipped check fails the run unless -allow-skip accepts it, and the
// summary's last lines name the inputs that would run it.
func TestASkippedCheckFailsTheRunUnlessAllowed(t *testing.T) {
	r := &Report{Target: "http://x" + openapi.BasePath, Seen: map[string]bool{}, Results: []Result{
		{Name: "negative: an unknown path", Outcome: Passed, Reason: "ok"},
		{Name: "flow: first number", Outcome: Skipped, Reason: "no -test-numbers", Needs: []string{"-test-numbers"}},
		{Name: "flow: the used link", Outcome: Skipped, Reason: "no -test-numbers", Needs: []string{"-test-numbers"}},
		{Name: "flow: change", Outcome: Skipped, Reason: "no -mailpit-url", Needs: []string{"-mailpit-url"}},
	}}
	var out bytes.Buffer
	r.WriteSummary(&out)
	want := "\n1 passed, 0 failed, 3 skipped\nTo run the 3 skipped checks, add -test-numbers and -mailpit-url.\n" +
		"Skipped checks fail the run; -allow-skip accepts a run without them.\n"
	if r.OK() || !strings.HasSuffix(out.String(), want) {
		t.Fatalf("OK=%v, the summary:\n%s\nwant it to end:\n%s", r.OK(), out.String(), want)
	}
	r.AllowSkip = true
	out.Reset()
	r.WriteSummary(&out)
	if !r.OK() || !strings.HasSuffix(out.String(), "add -test-numbers and -mailpit-url.\n-allow-skip accepts the skipped checks.\n") {
		t.Fatalf("with -allow-skip: OK=%v, the summary:\n%s", r.OK(), out.String())
	}
}

// mailpit lists messages newest first: the newest e-mail with a link to
// the number the change is to is the one, not another run's, nor an older
// one, nor a notice without a link.
func TestTheNewestConfirmationEmailToTheNumberIsTaken(t *testing.T) {
	confirm := "https://staging.example.com" + openapi.BasePath + openapi.ConfirmPath + "?token="
	const number, other = "+4915112340002", "+4915112340001"
	text := func(n, tok string) string {
		return "You asked to change the phone number of your account to " + phone.Mask(n) + ". Confirm: " + confirm + tok
	}
	messages := map[string]string{ // newest first below
		"notice":   "Someone asked for your number.",
		"other":    text(other, "other-run"),
		"newest":   text(number, "newest"),
		"older":    text(number, "older"),
		"no-mask":  "Confirm: " + confirm + "no-mask",
		"previous": text(number, "previous"),
	}
	order := []string{"notice", "other", "newest", "older", "no-mask", "previous"}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/message/"); ok {
			json.NewEncoder(w).Encode(map[string]string{"Subject": "Confirm", "Text": messages[id]})
			return
		}
		var list []map[string]string
		for _, id := range order {
			list = append(list, map[string]string{"ID": id})
		}
		json.NewEncoder(w).Encode(map[string]any{"messages": list})
	}))
	defer api.Close()
	m := mailpit{base: api.URL, client: api.Client()}
	for i := 0; i < 5; i++ { // the same answer each time, whatever the map order
		found, err := m.waitForLink(context.Background(), "qa@example.com", map[string]bool{"previous": true}, number)
		if err != nil || found.link.Query().Get("token") != "newest" {
			t.Fatalf("the link taken: %v, %v; want the newest one to %s", found.link, err, number)
		}
	}
	order = order[3:] // "older" is now the newest to the number, then one that shows no number
	found, err := m.waitForLink(context.Background(), "qa@example.com", nil, number)
	if err != nil || found.link.Query().Get("token") != "older" {
		t.Fatalf("the link taken: %v, %v; want the older one", found.link, err)
	}
}

func TestViolationsDropTheValidatorsDumps(t *testing.T) {
	msg := "response body doesn't match schema: Error at \"/a\": property \"a\" is missing\nSchema:\n  {\"type\":\"object\"}\n\nValue:\n  {} | Error at \"/b\": bad\nSchema:\n {}"
	if got := withoutDumps(msg); got != `response body doesn't match schema: Error at "/a": property "a" is missing; Error at "/b": bad` {
		t.Fatalf("withoutDumps = %q", got)
	}
}
