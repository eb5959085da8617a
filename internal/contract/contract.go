// Package contract owns how tests hold the live service to its spec: every
// response a test receives is validated (status, headers, content type and
// body, by the one validator, internal/contracttest/check), and the
// documented (operation, status) pairs the tests produced are counted, so
// that a package's tests can fail when one was never exercised.
//
// It is for tests only; nothing in the service imports it.
package contract

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pace/userphone/internal/contracttest/check"
)

// NotAnswered marks a documented response the service never gives; see
// check.NotAnswered.
const NotAnswered = check.NotAnswered

func load(t testing.TB) *check.Spec {
	s, err := check.Embedded()
	if err != nil {
		t.Fatalf("the spec does not load: %v", err)
	}
	return s
}

// Check validates one exchange against the spec (check.Spec.Check) and
// records its (operation, status) pair in Seen.
func Check(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	return checkExchange(t, false, req, reqBody, status, header, body)
}

// CheckOperation is Check for a request that must be one of the spec's
// operations: one that matches none is an error.
func CheckOperation(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	return checkExchange(t, true, req, reqBody, status, header, body)
}

func checkExchange(t testing.TB, operationOnly bool, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	s := load(t)
	if operationOnly {
		if _, err := s.Operation(req); err != nil {
			return err
		}
	}
	op, err := s.Check(check.Exchange{Request: req, RequestBody: reqBody, Status: status, Header: header, Body: body})
	if op != "" {
		Seen.add(op, status)
	}
	return err
}

// CheckErrorDocument checks that an error answer is the spec's JSON:API
// error document.
func CheckErrorDocument(t testing.TB, contentType string, body []byte) error {
	return load(t).CheckErrorDocument(contentType, body)
}

// Transport is an http.RoundTripper that checks every response against the
// spec and fails t on a violation or a missing X-Request-Id.
type Transport struct {
	T    testing.TB
	Next http.RoundTripper // nil means http.DefaultTransport
}

// Client returns an HTTP client whose every response is checked.
func Client(t testing.TB) *http.Client {
	load(t)
	return &http.Client{Transport: &Transport{T: t}}
}

func (c *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	next := c.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if id := resp.Header.Get("X-Request-Id"); id == "" {
		c.T.Errorf("%s %s: no X-Request-Id on the response", req.Method, req.URL.Path)
	}
	if err := Check(c.T, req, reqBody, resp.StatusCode, resp.Header, body); err != nil {
		c.T.Errorf("%s %s → %d breaks the spec: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

// Seen holds the (operation, status) pairs this test binary's tests
// produced.
var Seen = &pairs{m: map[string]bool{}}

type pairs struct {
	mu sync.Mutex
	m  map[string]bool
}

func (p *pairs) add(operationID string, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[check.StatusKey(operationID, status)] = true
}

// Coverage lists every documented (operation, status) pair, marked
// missing, not-answered (see NotAnswered) or ok, and returns the missing
// ones.
func Coverage() (report string, missing []string, err error) {
	s, err := check.Embedded()
	if err != nil {
		return "", nil, err
	}
	Seen.mu.Lock()
	c := check.Coverage(s.Pairs(), Seen.m)
	Seen.mu.Unlock()
	var lines []string
	for _, group := range []struct {
		label string
		keys  []string
	}{{"missing      ", c.NotSeen}, {"not-answered ", c.NeverAnswered}, {"ok           ", c.Seen}} {
		for _, k := range group.keys {
			lines = append(lines, group.label+" "+k)
		}
	}
	report = fmt.Sprintf("contract coverage: %d of %d documented (operation, status) pairs exercised, %d missing\n%s\n",
		len(c.Seen), len(lines), len(c.NotSeen), strings.Join(lines, "\n"))
	return report, c.NotSeen, nil
}
