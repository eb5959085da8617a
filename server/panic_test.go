package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/contract"
)

func TestPanicBecomes501WithTheRequestID(t *testing.T) {
	handler, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Routes added later still run behind the global middleware.
	handler.(*gin.Engine).GET("/panic", func(*gin.Context) { panic("secret internal state") })
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/panic", nil)
	req.Header.Set("X-Request-Id", "req-42")
	handler.ServeHTTP(rec, req)
	if err := contract.Check(t, req, nil, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("breaks the spec: %v", err)
	}

	var doc api.ErrorDocument
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	e := doc.Errors[0]
	if rec.Code != http.StatusNotImplemented || e.Code != api.ErrorCodeInternalError || e.Id != "req-42" || e.Status != "501" {
		t.Fatalf("got %d %+v", rec.Code, e)
	}
	if strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("the panic leaked: %s", rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/vnd.api+json" {
		t.Fatalf("content type %q", ct)
	}
}
