package contract

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pace/userphone/openapi"
)

// These show that a handler answering off-spec fails its test: each
// exchange below is one a broken handler could produce.
func TestCheckRefusesOffSpecAnswers(t *testing.T) {
	const phone = `{"data":{"type":"phone","id":"u1","attributes":{"phoneNumber":"+4915112345678","verified":true}}}`
	const notFound = `{"errors":[{"id":"r1","status":"404","code":"not-found","title":"Not found","detail":"No phone number is set."}]}`
	jsonAPI := http.Header{"Content-Type": {"application/vnd.api+json"}}
	cases := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   string // in the error; "" means the exchange is on-spec
	}{
		{"on-spec 200", 200, jsonAPI, phone, ""},
		{"on-spec 404", 404, jsonAPI, notFound, ""},
		{"an undocumented status", 418, jsonAPI, notFound, "status is not supported"},
		{"a body that breaks the schema", 200, jsonAPI, `{"data":{"type":"phone","id":"u1","attributes":{"verified":"yes"}}}`, "verified"},
		{"an unknown error code", 404, jsonAPI, strings.Replace(notFound, "not-found", "no-such-thing", 1), "no-such-thing"},
		{"the wrong content type", 200, http.Header{"Content-Type": {"application/json"}}, phone, "application/json"},
		{"an error that is not JSON:API", 404, http.Header{"Content-Type": {"text/plain"}}, "not found", "text/plain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", openapi.BasePath+"/user/phone", nil)
			err := Check(t, req, nil, c.status, c.header, []byte(c.body))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused an on-spec answer: %v", err)
			case c.want != "" && err == nil:
				t.Fatal("an off-spec answer passed")
			case c.want != "" && !strings.Contains(err.Error(), c.want):
				t.Fatalf("the error %q does not name %q", err, c.want)
			}
		})
	}
}

func TestCheckHoldsErrorsOutsideTheAPIToTheErrorDocument(t *testing.T) {
	req := httptest.NewRequest("GET", "/nowhere", nil)
	jsonAPI := http.Header{"Content-Type": {"application/vnd.api+json"}}
	if err := Check(t, req, nil, 404, jsonAPI, []byte(`{"errors":[{"id":"r","status":"404","code":"not-found","title":"Not found","detail":"d"}]}`)); err != nil {
		t.Fatalf("refused a JSON:API 404: %v", err)
	}
	if err := Check(t, req, nil, 404, http.Header{"Content-Type": {"text/plain"}}, []byte("404 page not found")); err == nil {
		t.Fatal("a plain-text 404 passed")
	}
	if err := Check(t, httptest.NewRequest("GET", "/health/ready", nil), nil, 200, nil, []byte("ok")); err != nil {
		t.Fatalf("a 200 outside the API: %v", err)
	}
}

func TestCoverageSkipsResponsesMarkedNotAnswered(t *testing.T) {
	report, missing, err := Coverage()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report, "not-answered  UpdateUserPhone 404") {
		t.Fatalf("UpdateUserPhone 404 is not reported as not answered:\n%s", report)
	}
	for _, m := range missing {
		if m == "UpdateUserPhone 404" {
			t.Fatal("UpdateUserPhone 404 is counted as missing")
		}
	}
}
