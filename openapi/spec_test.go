package openapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/phone"
)

func load(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestSpecAndItsExamplesAreValid(t *testing.T) {
	doc := load(t)
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatal(err)
	}
}

// PACE's own example number is not a valid one; ours must be numbers that
// the service itself accepts, or a QA team copying them gets a 422.
func TestExamplePhoneNumbersAreAcceptedAsTheyStand(t *testing.T) {
	doc := load(t)
	var numbers []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "phoneNumber" {
					numbers = append(numbers, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, ex := range doc.Components.Examples {
		walk(ex.Value.Value)
	}
	for _, path := range doc.Paths.Map() {
		for _, op := range path.Operations() {
			if op.RequestBody != nil {
				for _, mt := range op.RequestBody.Value.Content {
					for _, ex := range mt.Examples {
						walk(ex.Value.Value)
					}
				}
			}
		}
	}
	if len(numbers) < 3 {
		t.Fatalf("found only %d example numbers; the walk misses the examples", len(numbers))
	}
	for _, n := range numbers {
		if got, err := phone.Normalize(n); err != nil || got != n {
			t.Errorf("example %q normalizes to %q (%v)", n, got, err)
		}
	}
}

func TestEveryOperationIsUnderTheBasePathAndPACEsAreDeprecated(t *testing.T) {
	doc := load(t)
	for _, s := range doc.Servers {
		if len(s.URL) < len("/user/2021-2") || s.URL[len(s.URL)-len("/user/2021-2"):] != "/user/2021-2" {
			t.Errorf("server %s does not end with the base path", s.URL)
		}
	}
	for _, id := range []string{"UpdateUserPhone", "VerifyUserPhone", "CheckUserPhone"} {
		op := findOperation(doc, id)
		if op == nil || !op.Deprecated {
			t.Errorf("%s is missing or not deprecated", id)
		}
	}
}

func findOperation(doc *openapi3.T, id string) *openapi3.Operation {
	for _, path := range doc.Paths.Map() {
		for _, op := range path.Operations() {
			if op.OperationID == id {
				return op
			}
		}
	}
	return nil
}

// Our own lint rules, on the spec with its $refs resolved.
func TestEveryErrorAnswerIsAJSONAPIErrorDocument(t *testing.T) {
	doc := load(t)
	errorDoc := doc.Components.Schemas["ErrorDocument"].Value
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, ref := range op.Responses.Map() {
				if status < "400" {
					continue
				}
				for mediaType, mt := range ref.Value.Content {
					if mediaType == "text/html" && (status == "404" || status == "410") && strings.HasSuffix(path, "/confirm") {
						continue // the confirmation pages answer people, in HTML
					}
					if mediaType != "application/vnd.api+json" || mt.Schema == nil || mt.Schema.Value != errorDoc {
						t.Errorf("%s %s %s: %s is not the JSON:API error document", method, path, status, mediaType)
					}
				}
				if len(ref.Value.Content) == 0 {
					t.Errorf("%s %s %s: no body", method, path, status)
				}
			}
		}
	}
}

func TestEveryOperationHasAnIDAndExamples(t *testing.T) {
	doc := load(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			if op.RequestBody != nil {
				for mediaType, mt := range op.RequestBody.Value.Content {
					if mt.Example == nil && len(mt.Examples) == 0 {
						t.Errorf("%s %s: request %s has no example", method, path, mediaType)
					}
				}
			}
			for status, ref := range op.Responses.Map() {
				for mediaType, mt := range ref.Value.Content {
					if mediaType == "text/html" {
						continue
					}
					if mt.Example == nil && len(mt.Examples) == 0 {
						t.Errorf("%s %s %s: %s has no example", method, path, status, mediaType)
					}
				}
			}
		}
	}
}
