// Package contracttest owns the contract test that QA points at a deployed
// instance (`userphone contract-test`): it compares the spec the instance
// serves with the one it was built from, walks the whole documented flow
// for one user (a first number, a wrong code, the fixed code of a test
// number, a change confirmed from the e-mail in mailpit), sends the
// negative cases the spec derives (no token, the wrong media type, a body
// too large, ...), and holds every answer to both specs with the one
// validator (package check). It reports each check as passed, failed or
// skipped, and the documented (operation, status) pairs it saw.
package contracttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pace/userphone/internal/contracttest/check"
	"github.com/pace/userphone/openapi"
	phonenumbers "github.com/pace/userphone/phone"
)

// requestTimeout bounds one HTTP request: an instance that takes longer
// to answer one is broken for its users too.
const requestTimeout = 30 * time.Second

// Config is what a run needs.
type Config struct {
	// BaseURL is the API's base URL, ending in openapi.BasePath, e.g.
	// https://staging.example.com/user/2021-2.
	BaseURL string
	// PublicURL is the instance's USERPHONE_PUBLIC_URL, where the
	// confirmation e-mail's link must lead; "" means the root of BaseURL
	// (BaseURL without openapi.BasePath).
	PublicURL string
	// SpecURL is where the instance serves its spec; "" means the root
	// of BaseURL + openapi.SpecPath.
	SpecURL string
	Token   TokenSource
	// Email is where the confirmation e-mail goes; "" means the token's
	// email claim.
	Email string
	// TestNumbers are the instance's test numbers and their fixed codes.
	TestNumbers phonenumbers.TestNumbers
	// MailpitURL is the base of mailpit's HTTP API; "" skips the steps
	// that need the confirmation e-mail.
	MailpitURL string
	// AllowSkip accepts a run that skipped checks; without it a skipped
	// check fails the run (Report.OK), so that a pipeline that lacks an
	// input does not go green without the flow.
	AllowSkip bool
	// Verbose, if set, gets one line per request and answer; never a
	// token or a code.
	Verbose io.Writer
	// Client sends the requests; nil means a client with a 30 s timeout.
	Client *http.Client
}

// APIBase parses a base URL and checks that it ends in the spec's base
// path, the one place every operation lives under, and that it can carry
// the token: no user name or password that a report would print, and
// https unless the instance is on this machine.
func APIBase(raw string) (*url.URL, error) {
	u, err := parseHTTPURL("-url", strings.TrimSuffix(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("%w; give the API base, e.g. https://staging.example.com%s", err, openapi.BasePath)
	}
	if !strings.HasSuffix(u.Path, openapi.BasePath) || u.RawQuery != "" {
		return nil, fmt.Errorf("-url %q must be the API base, ending in %s, e.g. https://staging.example.com%s", u.Redacted(), openapi.BasePath, openapi.BasePath)
	}
	if err := noUserinfo("-url", u); err != nil {
		return nil, err
	}
	return u, secretsOnlyOverTLS("-url", u)
}

// PublicRoot parses -public-url, the instance's USERPHONE_PUBLIC_URL: an
// http(s) URL, perhaps with a path prefix.
func PublicRoot(raw string) (*url.URL, error) {
	u, err := parseHTTPURL("-public-url", strings.TrimSuffix(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("%w; give the instance's USERPHONE_PUBLIC_URL, e.g. https://staging.example.com", err)
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("-public-url %q has a query; give the instance's USERPHONE_PUBLIC_URL, e.g. https://staging.example.com", u.Redacted())
	}
	return u, noUserinfo("-public-url", u)
}

// parseHTTPURL parses the http(s) URL that flag gives. Its errors show
// the URL without its password.
func parseHTTPURL(flag, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s is not a URL", flag)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s %q is not an http(s) URL", flag, u.Redacted())
	}
	return u, nil
}

// noUserinfo refuses a user name or password in a URL: every report
// would print it, and the instance takes only the bearer token.
func noUserinfo(flag string, u *url.URL) error {
	if u.User != nil {
		return fmt.Errorf("%s must not hold a user name or password; the instance takes only the bearer token, so give the URL without them", flag)
	}
	return nil
}

// secretsOnlyOverTLS refuses plain http for a URL that gets a secret (the
// token, the client's secret), but on a loopback host, where nothing
// leaves the machine.
func secretsOnlyOverTLS(flag string, u *url.URL) error {
	if u.Scheme == "https" || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%s %s would send a secret in clear text; use https (http only to localhost, 127.0.0.1 or ::1)", flag, u.Redacted())
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultSpecURL is where an instance at base serves its spec: its root's
// openapi.SpecPath.
func DefaultSpecURL(base *url.URL) string {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, openapi.BasePath) + openapi.SpecPath
	return u.String()
}

// runner is one run's state.
type runner struct {
	cfg  Config
	base *url.URL
	// confirmURL is where the e-mail's link and the confirmation form
	// must lead: the public root + BasePath + ConfirmPath.
	confirmURL *url.URL
	// The flow's paths under the base, from the embedded spec.
	phonePath, verifyPath string
	client                *http.Client
	embedded              *check.Spec
	served                *check.Spec // nil when the served spec could not be read
	token                 string
	email                 string
	report                *Report
	// broken names the flow step that failed, and skipFlow why the flow's
	// next steps cannot run; either makes later flow steps skip.
	broken   string
	skipFlow skipped
	// One wrong code, and one verify while nothing is pending, a run are
	// enough to see their answers.
	wrongCodeSent, nothingPendingSent bool
	lastSent                          time.Time // of the last request, to pace the next
	unreachable                       bool      // the served spec got no answer at all
}

// Run runs every check against the instance and returns the report. It
// returns an error only when cfg is unusable; a failing instance is a
// report with failed checks.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.failOnTimeout(ctx)
	r.step(ctx, "token", r.getTokenAndEmail)
	if r.token == "" {
		return r.report, nil
	}
	if !r.step(ctx, "served spec", r.compareServedSpec) && r.unreachable {
		// Every other check would fail the same way.
		return r.report, nil
	}
	r.runFlow(ctx)
	r.runNegatives(ctx)
	return r.report, nil
}

// failOnTimeout fails a run that stopped at its timeout: the checks it
// did not get to are skipped, and skipped is no pass.
func (r *runner) failOnTimeout(ctx context.Context) {
	if ctx.Err() != nil {
		r.report.Results = append(r.report.Results, Result{Name: "timeout", Outcome: Failed, Reason: errTimeout.Error()})
	}
}

func newRunner(cfg Config) (*runner, error) {
	base, err := APIBase(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	confirmURL, err := confirmURLOf(base, cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	if err := checkOptionalURLs(cfg); err != nil {
		return nil, err
	}
	if cfg.Token == nil {
		return nil, errors.New("no token source; give -token, -token-command or client credentials")
	}
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	embedded, err := check.New(doc, base.Path)
	if err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: requestTimeout}
	}
	// Every answer is checked as it comes, redirects included.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &runner{cfg: cfg, base: base, confirmURL: confirmURL, client: &c, embedded: embedded,
		phonePath: openapi.PathOf(doc, "UpdateUserPhone"), verifyPath: openapi.PathOf(doc, "VerifyUserPhone"),
		report: &Report{Target: base.Redacted(), Started: time.Now(), Pairs: embedded.Pairs(), Seen: map[string]bool{},
			AllowSkip: cfg.AllowSkip}}, nil
}

// checkOptionalURLs checks -spec-url and -mailpit-url when they are
// given. Either may hold a user name and password (mailpit's
// --ui-auth-file asks for them); reports show neither.
func checkOptionalURLs(cfg Config) error {
	for _, u := range []struct{ flag, raw, example string }{
		{"-spec-url", cfg.SpecURL, "https://staging.example.com" + openapi.SpecPath},
		{"-mailpit-url", cfg.MailpitURL, "http://127.0.0.1:8025"},
	} {
		if u.raw == "" {
			continue
		}
		if _, err := parseHTTPURL(u.flag, u.raw); err != nil {
			return fmt.Errorf("%w; e.g. %s", err, u.example)
		}
	}
	return nil
}

// confirmURLOf is the confirmation page's URL under the public root:
// publicURL, or the root of base when it is "".
func confirmURLOf(base *url.URL, publicURL string) (*url.URL, error) {
	root := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: strings.TrimSuffix(base.Path, openapi.BasePath)}
	if publicURL != "" {
		var err error
		if root, err = PublicRoot(publicURL); err != nil {
			return nil, err
		}
	}
	return &url.URL{Scheme: root.Scheme, Host: root.Host, Path: root.Path + openapi.BasePath + openapi.ConfirmPath}, nil
}

// getTokenAndEmail gets the run's token once, and learns where the
// confirmation e-mail goes.
func (r *runner) getTokenAndEmail(ctx context.Context, s *step) (string, error) {
	tok, err := r.cfg.Token.Token(ctx)
	if err != nil {
		return "", err
	}
	r.token = tok
	c := readClaims(tok)
	r.email = r.cfg.Email
	if r.email == "" {
		r.email = c.Email
	}
	who := "an opaque token"
	if c.Subject != "" {
		who = "user " + c.Subject
	}
	mail := "no e-mail address (no email claim; -email gives one)"
	if r.email != "" {
		mail = "e-mail to " + r.email
	}
	return fmt.Sprintf("from %s: %s, %s", r.cfg.Token.Name(), who, mail), nil
}

// compareServedSpec fetches the served spec and compares it with the
// embedded one.
func (r *runner) compareServedSpec(ctx context.Context, s *step) (string, error) {
	specURL := r.cfg.SpecURL
	if specURL == "" {
		specURL = DefaultSpecURL(r.base)
	}
	shown := redacted(specURL)
	a, err := s.send(ctx, request{method: http.MethodGet, url: specURL, unchecked: true})
	var none *noAnswer
	if errors.As(err, &none) {
		r.unreachable = true
	}
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", fmt.Errorf("GET %s answered %d, want 200 with the spec; give -spec-url if it is served elsewhere", shown, a.status)
	}
	served, err := check.Parse(a.body, r.base.Path)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w; is this where the instance serves its spec? -spec-url names another place", shown, err)
	}
	r.served = served
	if d := check.Diff(served.Doc(), r.embedded.Doc()); d != "" {
		return "", errors.New("the served spec differs from the embedded one " + d)
	}
	return "agrees with the embedded spec (" + served.Describe() + "; the servers may differ)", nil
}

// redacted is a URL as a report may show it: without its password, and
// without its query, which may hold a token.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	u.RawQuery, u.Fragment = "", ""
	return u.Redacted()
}
