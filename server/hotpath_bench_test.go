package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
)

// What kin-openapi's request validation costs on the largest body, a
// phone change: routing the request to its operation, then checking the
// parameters, content type and body against the spec.
func BenchmarkValidateRequest(b *testing.B) {
	v, err := newValidator(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	const body = `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345678"}}}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("PUT", openapi.BasePath+"/user/phone", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.api+json")
		route, params, err := v.router.FindRoute(req)
		if err != nil {
			b.Fatal(err)
		}
		if err := openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, KeepValidatedValue: true},
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// Encoding the JSON:API documents the API answers with: the phone resource
// with a pending change (the largest success), and an error.
func BenchmarkEncodePhoneDocument(b *testing.B) {
	doc := phoneDocument(userphone.Phone{UserID: "0b6f2a4e-6d0c-4c1e-9a55-2f0d5c1b7e21", Number: "+4915112345678", Verified: true,
		Pending: &userphone.PhoneChange{PhoneNumber: "+4915798765432", Status: userphone.StatusAwaitingCode,
			ExpiresAt: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}})
	resp := api.CheckUserPhone200ApplicationVndAPIPlusJSONResponse{Body: doc}
	b.ReportAllocs()
	for b.Loop() {
		if err := resp.VisitCheckUserPhoneResponse(discardWriter{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeErrorDocument(b *testing.B) {
	detail := "The code is wrong; 4 attempts are left."
	remaining := 4
	doc := api.ErrorDocument{Errors: []api.Error{{Id: "4f0c2b1e9d3a4c5b8e7f6a5b4c3d2e1f", Status: "422", Code: api.ErrorCode(userphone.CodeInvalidCode),
		Title: "Invalid code", Detail: &detail, Meta: &api.Error_Meta{RemainingAttempts: &remaining}}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := jsonEncode(io.Discard, doc); err != nil {
			b.Fatal(err)
		}
	}
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}
