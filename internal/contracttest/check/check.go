// Package check owns the one validator that holds an HTTP answer to the
// spec: kin-openapi's openapi3filter checks that the status is documented
// for the operation, and the answer's headers, content type and body
// schema; an answer outside the spec's operations that is an error must
// be the JSON:API error document. It also lists a spec's documented
// (operation, status) pairs and compares two specs (diff.go).
//
// Both users of the contract go through it: the tests (internal/contract,
// which adds testing.T and the pairs the tests produced) and the contract
// test that QA points at a deployed instance (internal/contracttest).
package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"

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

// ErrorMediaType is the media type of every error answer: the JSON:API
// error document.
const ErrorMediaType = openapi.MediaTypeJSONAPI

func init() {
	// The confirmation pages are text/html; kin-openapi checks them as
	// strings.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// Spec is a parsed spec, ready to check answers to requests under one
// base path.
type Spec struct {
	doc    *openapi3.T
	router routers.Router
}

// Embedded is the embedded spec (openapi.Spec), routing under
// openapi.BasePath, parsed once per process.
var Embedded = sync.OnceValues(func() (*Spec, error) {
	doc, err := openapi.Load()
	if err != nil {
		return nil, err
	}
	return New(doc, openapi.BasePath)
})

// Parse reads a spec (YAML or JSON), as an instance serves it, for
// requests under base (a path, such as openapi.BasePath).
func Parse(data []byte, base string) (*Spec, error) {
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("the spec does not parse: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the spec is not a valid OpenAPI document: %w", err)
	}
	return New(doc, base)
}

// New makes doc a Spec for requests under base, whatever their host. It
// takes doc over: its servers are replaced by base, as the servers an
// instance lists (itself first) must not decide what is checked.
func New(doc *openapi3.T, base string) (*Spec, error) {
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route the spec's paths: %w", err)
	}
	return &Spec{doc: doc, router: router}, nil
}

// Doc is the parsed document; callers must not change it.
func (s *Spec) Doc() *openapi3.T { return s.doc }

// Describe names the spec's size for a report: "3 paths, 5 operations".
func (s *Spec) Describe() string {
	ops := 0
	for _, item := range s.doc.Paths.Map() {
		ops += len(item.Operations())
	}
	return fmt.Sprintf("%d paths, %d operations", s.doc.Paths.Len(), ops)
}

// Exchange is one request, as sent, and its answer.
type Exchange struct {
	Request     *http.Request // its URL path under the Spec's base
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Operation returns the operationId that req is, or an error when it is
// none of the spec's operations (an unknown path, or a method the path
// does not have).
func (s *Spec) Operation(req *http.Request) (string, error) {
	route, _, err := s.router.FindRoute(openapi.Routable(req))
	if err != nil {
		return "", fmt.Errorf("not an operation of the spec: %w", err)
	}
	return route.Operation.OperationID, nil
}

// Check validates x against the spec and returns the operation its
// request matched ("" for none). A request that matches no operation
// (health, /docs, an unknown path or method) is not part of the contract,
// but when it fails it must still answer the JSON:API error document.
func (s *Spec) Check(x Exchange) (operationID string, err error) {
	route, params, ferr := s.router.FindRoute(openapi.Routable(x.Request))
	switch {
	case ferr != nil && x.Status < 400:
		return "", nil
	case ferr != nil:
		return "", s.CheckErrorDocument(x.Header.Get("Content-Type"), x.Body)
	}
	if err := statusDocumented(route.Operation, x.Status); err != nil {
		return route.Operation.OperationID, err
	}
	r := x.Request.Clone(context.Background())
	r.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	return route.Operation.OperationID, openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route},
		Status:                 x.Status,
		Header:                 x.Header,
		Body:                   io.NopCloser(bytes.NewReader(x.Body)),
		// An undocumented status is an error, not a pass.
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

// statusDocumented fails a status that op documents neither as itself
// (or its range, "3XX") nor as default. kin-openapi asks that too, but
// passes 301, 304, 307 and 308 without looking: an undocumented redirect
// would pass unseen.
func statusDocumented(op *openapi3.Operation, status int) error {
	if op.Responses.Status(status) != nil || op.Responses.Default() != nil {
		return nil
	}
	return fmt.Errorf("status is not supported: %s documents neither %d nor default", op.OperationID, status)
}

// CheckErrorDocument checks that an error answer is the spec's JSON:API
// error document.
func (s *Spec) CheckErrorDocument(contentType string, body []byte) error {
	if contentType != ErrorMediaType {
		return fmt.Errorf("content type %q, want %s", contentType, ErrorMediaType)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	schema := s.doc.Components.Schemas["ErrorDocument"]
	if schema == nil || schema.Value == nil {
		return errors.New("the spec has no ErrorDocument schema")
	}
	return schema.Value.VisitJSON(v)
}

// Pair is one documented (operation, status) pair.
type Pair struct {
	Operation string // operationId
	Status    string // "200", or "default"
	// NotAnswered says the spec marks the response as one the service
	// never gives (see NotAnswered).
	NotAnswered bool
}

// Key is the pair as "Operation Status", as reports print it.
func (p Pair) Key() string { return PairKey(p.Operation, p.Status) }

// PairKey is how a pair is named: "UpdateUserPhone 201".
func PairKey(operationID, status string) string { return operationID + " " + status }

// StatusKey is PairKey for a status code.
func StatusKey(operationID string, status int) string {
	return PairKey(operationID, strconv.Itoa(status))
}

// PairCoverage is the documented pairs grouped by what a run's answers
// did with them, each group in key order.
type PairCoverage struct {
	Seen          []string // an answer produced the pair
	NotSeen       []string // none did
	NeverAnswered []string // none can: the spec marks it NotAnswered
}

// Coverage groups pairs by seen, which holds the keys of the pairs that
// answers produced.
func Coverage(pairs []Pair, seen map[string]bool) PairCoverage {
	var c PairCoverage
	for _, p := range pairs {
		switch {
		case seen[p.Key()]:
			c.Seen = append(c.Seen, p.Key())
		case p.NotAnswered:
			c.NeverAnswered = append(c.NeverAnswered, p.Key())
		default:
			c.NotSeen = append(c.NotSeen, p.Key())
		}
	}
	return c
}

// Pairs lists every documented (operation, status) pair, sorted by key.
func (s *Spec) Pairs() []Pair {
	var pairs []Pair
	for _, item := range s.doc.Paths.Map() {
		for _, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				pairs = append(pairs, Pair{Operation: op.OperationID, Status: status,
					NotAnswered: ref.Value != nil && ref.Value.Extensions[NotAnswered] == true})
			}
		}
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].Key() < pairs[j].Key() })
	return pairs
}
