package contracttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pace/userphone/internal/contracttest/check"
)

// request is one request of a run.
type request struct {
	method string
	// path is where the request goes under the API base ("/user/phone"),
	// with a query if any; url, when set, is an absolute URL instead (the
	// served spec, the e-mail's link), and path is then the operation's
	// path under the base that the answer is checked as.
	path, url   string
	bearer      string // "" sends no Authorization
	contentType string
	body        []byte
	header      http.Header
	// unchecked is a request outside the API (the served spec): its answer
	// is not held to the spec.
	unchecked bool
}

// answer is what the instance answered, and the operation the embedded
// spec matched ("" for none).
type answer struct {
	req       request
	status    int
	header    http.Header
	body      []byte
	operation string
}

var errTimeout = errors.New("the run took longer than -timeout allows; give it more, e.g. -timeout 5m")

// noAnswer is a request that got no HTTP answer at all.
type noAnswer struct{ error }

func (e *noAnswer) Unwrap() error { return e.error }

// label names an exchange in a report: "UpdateUserPhone PUT /user/phone
// → 201". The query, which may hold the e-mail's token, is left out.
func (a *answer) label() string {
	path, _, _ := strings.Cut(a.req.path, "?")
	op := a.operation
	if op != "" {
		op += " "
	}
	return fmt.Sprintf("%s%s %s → %d", op, a.req.method, path, a.status)
}

// errorCode is the first error's code and detail of a JSON:API error
// document, or "" when the body is none.
func (a *answer) errorCode() (code, detail string) {
	var doc struct {
		Errors []struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(a.body, &doc) != nil || len(doc.Errors) == 0 {
		return "", ""
	}
	return doc.Errors[0].Code, doc.Errors[0].Detail
}

// step is one named check while it runs: the violations its answers had.
type step struct {
	r          *runner
	violations []string
	last       *answer
}

type stepFunc func(ctx context.Context, s *step) (string, error)

// skipped is a step that could not run: why, and the inputs that would
// let it run (none, as after an earlier failure, when no input would).
type skipped struct {
	reason string
	needs  []string
}

func (s skipped) Error() string { return s.reason }

// step runs fn as the named check and records its result: failed on any
// answer off either spec or on an error, skipped when fn says so, passed
// otherwise. It reports whether the check passed.
func (r *runner) step(ctx context.Context, name string, fn stepFunc) bool {
	s := &step{r: r}
	start := time.Now()
	if ctx.Err() != nil {
		fn = skip(skipped{reason: "the run stopped at its -timeout before this check"})
	}
	note, err := fn(ctx, s)
	res := Result{Name: name, Outcome: Passed, Reason: note, Duration: time.Since(start)}
	var skip skipped
	switch {
	case len(s.violations) > 0:
		// A break of the contract comes first, even in a step that then
		// could not go on: it is what the run is for.
		res.Outcome, res.Reason, res.Details = Failed, s.violations[0], s.violations[1:]
		if err != nil {
			res.Details = append(res.Details, err.Error())
		}
	case errors.As(err, &skip):
		res.Outcome, res.Reason, res.Needs = Skipped, skip.reason, skip.needs
	case err != nil:
		res.Outcome, res.Reason = Failed, err.Error()
	}
	if res.Outcome == Failed && s.last != nil && len(s.last.body) > 0 {
		res.Details = append(res.Details, "the answer's body: "+check.Shorten(string(s.last.body), 600))
	}
	// What the instance said is printed: as one line, its control
	// characters escaped.
	res.Reason = check.Shorten(res.Reason, 2000)
	for i, d := range res.Details {
		res.Details[i] = check.Shorten(d, 2000)
	}
	r.report.Results = append(r.report.Results, res)
	return res.Outcome == Passed
}

// send sends req, reads the answer and holds it to both specs. A 429
// that asks for a wait of a few seconds is the per-client request rate,
// not the user's limits: send waits as asked and tries once more.
func (s *step) send(ctx context.Context, req request) (*answer, error) {
	a, err := s.sendOnce(ctx, req)
	if err != nil || a.status != http.StatusTooManyRequests {
		return a, err
	}
	wait, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || wait > maxRetryWait {
		return a, nil
	}
	if err := sleep(ctx, time.Duration(wait)*time.Second); err != nil {
		return a, nil
	}
	return s.sendOnce(ctx, req)
}

// maxRetryWait is the longest Retry-After, in seconds, that send waits
// for: the per-client rate asks for a second or two; the user's limits
// ask for minutes.
const maxRetryWait = 5

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// pace keeps the run under the instance's per-client request rate
// (USERPHONE_LIMIT_IP_RATE, 20/s by default): a run's 45 requests at
// once would use up the burst a client is allowed.
func (r *runner) pace(ctx context.Context) error {
	if wait := time.Until(r.lastSent.Add(requestInterval)); wait > 0 {
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	r.lastSent = time.Now()
	return nil
}

// requestInterval is 15 requests a second.
const requestInterval = time.Second / 15

func (s *step) sendOnce(ctx context.Context, req request) (*answer, error) {
	target := req.url
	if target == "" {
		target = s.r.base.String() + req.path
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, target, bytes.NewReader(req.body))
	if err != nil {
		return nil, err
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	if req.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+req.bearer)
	}
	if err := s.r.pace(ctx); err != nil {
		return nil, errTimeout
	}
	start := time.Now()
	resp, err := s.r.client.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", req.method, pathOnly(target), errTimeout)
		}
		return nil, &noAnswer{fmt.Errorf("%s %s: no answer (%w); is -url right and the instance up?", req.method, pathOnly(target), unwrapURLError(err))}
	}
	defer resp.Body.Close()
	body, err := readAnswer(resp.Body, maxAnswer)
	if err != nil {
		if ctx.Err() != nil {
			err = errTimeout
		}
		return nil, fmt.Errorf("%s %s → %d: %w", req.method, pathOnly(target), resp.StatusCode, err)
	}
	a := &answer{req: req, status: resp.StatusCode, header: resp.Header, body: body}
	if req.url != "" && req.path == "" {
		a.req.path = pathOnly(target)
	}
	if !req.unchecked {
		a.operation = s.checkAgainstSpecs(a, hr.Header)
		if a.operation != "" {
			// The documented pair this answer produced, for the report's
			// coverage.
			s.r.report.Seen[check.StatusKey(a.operation, a.status)] = true
		}
	}
	s.last = a
	if w := s.r.cfg.Verbose; w != nil {
		fmt.Fprintf(w, "  %s (%s, %s)\n", a.label(), check.Shorten(a.header.Get("Content-Type"), 100), time.Since(start).Round(time.Millisecond))
	}
	return a, nil
}

// maxAnswer is the largest answer a run reads: the spec and every page
// are far smaller.
const maxAnswer = 1 << 20

// readAnswer reads a body of at most limit bytes, and fails a larger one
// rather than check a cut one.
func readAnswer(body io.Reader, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(body, int64(limit)+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("the answer broke off (%w); run again, and if it recurs look at the instance's or its proxy's logs", unwrapURLError(err))
	case len(b) > limit:
		return nil, fmt.Errorf("the answer is larger than %s", sizeName(limit))
	}
	return b, nil
}

func sizeName(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// checkAgainstSpecs holds a to the embedded spec and, when it could be
// read, the served one, notes every violation, and returns the
// operation the embedded spec matched ("" for none).
func (s *step) checkAgainstSpecs(a *answer, sent http.Header) string {
	vr, err := http.NewRequest(a.req.method, "http://contract-test"+s.r.base.Path+a.req.path, nil)
	if err != nil {
		s.violations = append(s.violations, fmt.Sprintf("%s: cannot be checked: %v", a.label(), err))
		return ""
	}
	vr.Header = sent.Clone()
	x := check.Exchange{Request: vr, RequestBody: a.req.body, Status: a.status, Header: a.header, Body: a.body}
	op, embeddedErr := s.r.embedded.Check(x)
	a.operation = op // for the labels of the violations
	var servedErr error
	if s.r.served != nil {
		_, servedErr = s.r.served.Check(x)
	}
	switch {
	case embeddedErr != nil && servedErr != nil && embeddedErr.Error() == servedErr.Error():
		s.violate(a, "breaks the served and the embedded spec", embeddedErr)
	default:
		if servedErr != nil {
			s.violate(a, "breaks the served spec", servedErr)
		}
		if embeddedErr != nil {
			s.violate(a, "breaks the embedded spec", embeddedErr)
		}
	}
	return op
}

func (s *step) violate(a *answer, what string, err error) {
	s.violations = append(s.violations, fmt.Sprintf("%s %s: %s", a.label(), what, withoutDumps(err.Error())))
}

// withoutDumps is a validator's message without the schema and value it
// prints after each error: the answer's body is shown once, apart.
func withoutDumps(msg string) string {
	parts := strings.Split(msg, " | ") // how kin-openapi joins errors
	for i, p := range parts {
		p, _, _ = strings.Cut(p, "\nSchema:")
		parts[i] = check.Shorten(p, 500)
	}
	return strings.Join(parts, "; ")
}

// expect checks an answer's status. A 429 means the user's limits are
// spent, which no later step can get past.
func expect(a *answer, status int) error {
	if a.status == status {
		return nil
	}
	code, detail := a.errorCode()
	if a.status == http.StatusTooManyRequests {
		return limitsSpent(a, code, detail)
	}
	if code != "" {
		return fmt.Errorf("%s %s (%s), want %d", a.label(), code, detail, status)
	}
	return fmt.Errorf("%s, want %d", a.label(), status)
}

func limitsSpent(a *answer, code, detail string) error {
	wait := ""
	if ra := a.header.Get("Retry-After"); ra != "" {
		wait = ", or wait " + ra + " s"
	}
	return fmt.Errorf("%s %s (%s): this user's limits are spent; run with a fresh user (e.g. a -token-command that mints one)%s", a.label(), code, detail, wait)
}

// expectError checks that a is the error document with code, and the
// status that the spec's ErrorCode table gives it.
func expectError(a *answer, status int, code string) error {
	got, detail := a.errorCode()
	switch {
	case a.status == http.StatusTooManyRequests && status != a.status:
		return limitsSpent(a, got, detail)
	case a.status != status || got != code:
		return fmt.Errorf("%s %s (%s), want %d %s", a.label(), got, detail, status, code)
	}
	return nil
}

func pathOnly(rawURL string) string {
	rawURL, _, _ = strings.Cut(rawURL, "?")
	if i := strings.Index(rawURL, "://"); i >= 0 {
		if j := strings.Index(rawURL[i+3:], "/"); j >= 0 {
			return rawURL[i+3+j:]
		}
		return "/"
	}
	return rawURL
}

// unwrapURLError drops the url.Error's method and URL, which may hold a
// token in the query; the caller names the path.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && strings.Contains(err.Error(), "://") {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
