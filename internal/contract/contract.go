// Package contract owns how tests hold the live service to its spec: every
// response a test receives is validated with kin-openapi (status, headers,
// content type and body), and the documented (operation, status) pairs the
// tests produced are counted, so that a package's tests can fail when one
// was never exercised.
//
// It is for tests only; nothing in the service imports it.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/pace/userphone/openapi"
)

// NotAnswered marks a documented response the service never gives: PACE
// documents it for the operation, and it stays in the contract so that
// PACE's clients keep their types, but no request can produce it. Coverage
// does not ask for such a pair.
const NotAnswered = "x-userphone-not-answered"

func init() {
	// The confirmation pages are text/html; kin-openapi checks them as
	// strings.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

var spec = sync.OnceValues(func() (*spec_, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	// Requests are matched by path under the base path, whatever the host.
	doc.Servers = openapi3.Servers{{URL: openapi.BasePath}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &spec_{doc: doc, router: router}, nil
})

type spec_ struct {
	doc    *openapi3.T
	router routers.Router
}

func load(t testing.TB) *spec_ {
	s, err := spec()
	if err != nil {
		t.Fatalf("the spec does not load: %v", err)
	}
	return s
}

// Check validates one exchange against the spec. A request that matches no
// operation (health, /docs, an unknown path) is not part of the contract,
// but when it fails it must still answer a JSON:API error document.
// The (operation, status) pair is recorded in Seen.
func Check(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	return check(t, false, req, reqBody, status, header, body)
}

// CheckOperation is Check for a request that must be one of the spec's
// operations: one that matches none is an error.
func CheckOperation(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	return check(t, true, req, reqBody, status, header, body)
}

func check(t testing.TB, operationOnly bool, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	s := load(t)
	route, params, err := s.router.FindRoute(openapi.Routable(req))
	switch {
	case err != nil && operationOnly:
		return fmt.Errorf("not an operation of the spec: %w", err)
	case err != nil && status < 400:
		return nil
	case err != nil:
		return CheckErrorDocument(t, header.Get("Content-Type"), body)
	}
	Seen.add(route.Operation.OperationID, status)
	r := req.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		// An undocumented status is an error, not a pass.
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

// CheckErrorDocument checks that an error answer is the spec's JSON:API
// error document.
func CheckErrorDocument(t testing.TB, contentType string, body []byte) error {
	if contentType != "application/vnd.api+json" {
		return fmt.Errorf("content type %q, want application/vnd.api+json", contentType)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return load(t).doc.Components.Schemas["ErrorDocument"].Value.VisitJSON(v)
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
	p.m[operationID+" "+strconv.Itoa(status)] = true
}

// Coverage lists every documented (operation, status) pair, marked ok,
// missing, or not-answered (see NotAnswered), and returns the missing ones.
func Coverage() (report string, missing []string, err error) {
	s, err := spec()
	if err != nil {
		return "", nil, err
	}
	Seen.mu.Lock()
	defer Seen.mu.Unlock()
	var lines []string
	exercised := 0
	for _, item := range s.doc.Paths.Map() {
		for _, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				key := op.OperationID + " " + status
				switch {
				case Seen.m[key]:
					exercised++
					lines = append(lines, "ok            "+key)
				case ref.Value != nil && ref.Value.Extensions[NotAnswered] == true:
					lines = append(lines, "not-answered  "+key)
				default:
					missing = append(missing, key)
					lines = append(lines, "missing       "+key)
				}
			}
		}
	}
	sort.Strings(lines)
	sort.Strings(missing)
	report = fmt.Sprintf("contract coverage: %d of %d documented (operation, status) pairs exercised, %d missing\n%s\n",
		exercised, len(lines), len(missing), strings.Join(lines, "\n"))
	return report, missing, nil
}
