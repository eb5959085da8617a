package contracttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// negative is one request that the spec says must fail, and how.
type negative struct {
	name string
	req  request
	// code is the error code the answer must carry, with the status the
	// spec's ErrorCode table gives it; or, for the confirmation pages,
	// page is the status of the HTML page.
	code string
	page int
	// specGap, when set, is why the spec does not say enough to build
	// the case: the check fails with it, as the spec must say.
	specGap string
}

// invalidNumber is no number at all. It stands in for the spec's example
// number in every negative request, so that an instance that wrongly
// takes one never texts the example's real owner.
const invalidNumber = "+49 12"

// runNegatives sends the negative cases derived from the spec and holds
// each answer to the error the spec documents.
func (r *runner) runNegatives(ctx context.Context) {
	statuses, bodyCap := errorTable(r.embedded.Doc())
	for _, n := range r.negatives(bodyCap) {
		r.step(ctx, "negative: "+n.name, sendNegative(n, statuses))
	}
}

// sendNegative is the check of one negative case: its answer must be the
// page, or the error code with the status the ErrorCode table gives it.
func sendNegative(n negative, statuses map[string]int) stepFunc {
	return func(ctx context.Context, s *step) (string, error) {
		if n.specGap != "" {
			return "", errors.New(n.specGap)
		}
		a, err := s.send(ctx, n.req)
		if err != nil {
			return "", err
		}
		if n.page != 0 {
			return a.label() + ": the HTML page", expect(a, n.page)
		}
		status, ok := statuses[n.code]
		if !ok {
			return "", fmt.Errorf("the spec's ErrorCode table lists no %s", n.code)
		}
		return a.label() + " " + n.code, expectError(a, status, n.code)
	}
}

// negatives derives the cases from the spec: for each operation, no token
// and a bad one where it is secured, the wrong media type, malformed JSON
// and a body over the cap where it takes a body and documents the error,
// an unknown link token where it shows a page; for each path, a method it
// does not have; and a path that is none.
func (r *runner) negatives(bodyCap int) []negative {
	doc := r.embedded.Doc()
	var out []negative
	for _, path := range slices.Sorted(maps.Keys(doc.Paths.Map())) {
		item := doc.Paths.Value(path)
		for _, method := range slices.Sorted(maps.Keys(item.Operations())) {
			out = append(out, r.operationNegatives(doc, path, method, item.GetOperation(method), bodyCap)...)
		}
		out = append(out, negative{name: "an unknown method on " + path, code: "method-not-allowed",
			req: r.api(unknownMethod(item), path, "", nil)})
	}
	return append(out, negative{name: "an unknown path", code: "not-found",
		req: r.api(http.MethodGet, "/user/no-such-resource", "", nil)})
}

func (r *runner) operationNegatives(doc *openapi3.T, path, method string, op *openapi3.Operation, bodyCap int) []negative {
	var out []negative
	name := op.OperationID
	media, body := exampleBody(op)
	req := func(bearer, contentType string, b []byte) request {
		return request{method: method, path: path, bearer: bearer, contentType: contentType, body: b}
	}
	bearer := ""
	if secured(doc, op) {
		bearer = r.token
		if documents(op, http.StatusUnauthorized) {
			out = append(out,
				negative{name: name + " without a token", code: "unauthorized", req: req("", media, body)},
				negative{name: name + " with a bad token", code: "unauthorized", req: req("not-a-valid-token", media, body)})
		}
	}
	if media != "" && documents(op, http.StatusUnsupportedMediaType) {
		out = append(out, negative{name: name + " with the wrong media type", code: "unsupported-media-type", req: req(bearer, "text/plain", body)})
	}
	if strings.Contains(media, "json") && documents(op, http.StatusBadRequest) {
		out = append(out, negative{name: name + " with malformed JSON", code: "invalid-request", req: req(bearer, media, []byte(`{"data":`))})
	}
	switch {
	case media == "" || !documents(op, http.StatusRequestEntityTooLarge):
	case bodyCap == 0:
		out = append(out, negative{name: name + " with a body over the cap", specGap: "the spec's ErrorCode table names no cap " +
			"(\"… KiB\") for request-too-large, so no body can be sent that must be refused; the spec must name it"})
	default:
		out = append(out, negative{name: fmt.Sprintf("%s with a body over %d KiB", name, bodyCap>>10), code: "request-too-large",
			req: req(bearer, media, oversized(media, bodyCap+1))})
	}
	if strings.Contains(string(body), invalidNumber) && documents(op, http.StatusUnprocessableEntity) {
		out = append(out, negative{name: name + " with an invalid number", code: "invalid-phone-number", req: req(bearer, media, body)})
	}
	if documents(op, http.StatusBadRequest) {
		out = append(out, missingRequired(op, req(bearer, media, body))...)
	}
	if media == formMedia && documents(op, http.StatusForbidden) {
		// A form posted for another site is the one 403 a form that needs
		// no token can get (CrossSiteRequest); browsers say so in
		// Sec-Fetch-Site.
		crossSite := req(bearer, media, body)
		crossSite.header = http.Header{"Sec-Fetch-Site": {"cross-site"}}
		out = append(out, negative{name: name + " from another site", code: "cross-site-request", req: crossSite})
	}
	if htmlPage(op, http.StatusNotFound) {
		unknown := req(bearer, media, body)
		if media == "" {
			unknown.path += "?token=contract-test-unknown-token"
		}
		out = append(out, negative{name: name + " with an unknown link token", page: http.StatusNotFound, req: unknown})
	}
	return out
}

// missingRequired leaves out what the operation requires: each required
// query parameter, and the fields of a required form.
func missingRequired(op *openapi3.Operation, example request) []negative {
	var out []negative
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == openapi3.ParameterInQuery && p.Value.Required {
			out = append(out, negative{name: op.OperationID + " without its " + p.Value.Name, code: "invalid-request", req: example})
		}
	}
	if example.contentType == formMedia {
		empty := example
		empty.body = nil
		out = append(out, negative{name: op.OperationID + " with an empty form", code: "invalid-request", req: empty})
	}
	return out
}

// exampleBody is the operation's request body as its first example has
// it, with an invalid number for any phone number, or "" and nil when it
// takes none.
func exampleBody(op *openapi3.Operation) (media string, body []byte) {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return "", nil
	}
	content := op.RequestBody.Value.Content
	media = slices.Sorted(maps.Keys(content))[0]
	mt := content[media]
	value := mt.Example
	if value == nil && len(mt.Examples) > 0 {
		first := mt.Examples[slices.Sorted(maps.Keys(mt.Examples))[0]]
		if first.Value != nil {
			value = first.Value.Value
		}
	}
	value = replaceKey(value, "phoneNumber", invalidNumber)
	if media == formMedia {
		form := url.Values{}
		if m, ok := value.(map[string]any); ok {
			for k, v := range m {
				form.Set(k, fmt.Sprint(v))
			}
		}
		return media, []byte(form.Encode())
	}
	body, _ = json.Marshal(value)
	return media, body
}

func replaceKey(v any, key string, with any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if k == key {
				out[k] = with
			} else {
				out[k] = replaceKey(x, key, with)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = replaceKey(x, key, with)
		}
		return out
	}
	return v
}

// oversized is a well-formed body of n bytes in media.
func oversized(media string, n int) []byte {
	if media == formMedia {
		return []byte("token=" + strings.Repeat("x", max(n-6, 0)))
	}
	return []byte(`{"pad":"` + strings.Repeat("x", max(n-10, 0)) + `"}`)
}

// secured reports whether op asks for a token: its own security, or the
// document's when it names none.
func secured(doc *openapi3.T, op *openapi3.Operation) bool {
	reqs := doc.Security
	if op.Security != nil {
		reqs = *op.Security
	}
	for _, req := range reqs {
		if len(req) > 0 {
			return true
		}
	}
	return false
}

func documents(op *openapi3.Operation, status int) bool {
	return op.Responses.Status(status) != nil
}

// htmlPage reports whether op answers status with an HTML page.
func htmlPage(op *openapi3.Operation, status int) bool {
	ref := op.Responses.Status(status)
	return ref != nil && ref.Value != nil && ref.Value.Content.Get("text/html") != nil
}

// unknownMethod is a method the path does not have.
func unknownMethod(item *openapi3.PathItem) string {
	for _, m := range []string{http.MethodDelete, http.MethodPatch, http.MethodPost, http.MethodPut} {
		if item.GetOperation(m) == nil {
			return m
		}
	}
	return http.MethodOptions
}

var (
	tableRow = regexp.MustCompile(`(?m)^\|\s*([a-z][a-z-]*)\s*\|\s*([0-9]{3})\s*\|([^|\n]*)\|`)
	kibibyte = regexp.MustCompile(`([0-9]+) KiB`)
)

// errorTable reads the spec's ErrorCode table: the status of each code,
// and the body cap that request-too-large names (0 if it names none).
func errorTable(doc *openapi3.T) (statuses map[string]int, bodyCap int) {
	statuses = map[string]int{}
	schema := doc.Components.Schemas["ErrorCode"]
	if schema == nil || schema.Value == nil {
		return statuses, bodyCap
	}
	for _, row := range tableRow.FindAllStringSubmatch(schema.Value.Description, -1) {
		statuses[row[1]], _ = strconv.Atoi(row[2])
		if m := kibibyte.FindStringSubmatch(row[3]); row[1] == "request-too-large" && m != nil {
			n, _ := strconv.Atoi(m[1])
			bodyCap = n << 10
		}
	}
	return statuses, bodyCap
}
