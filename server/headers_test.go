package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// The confirmation pages carry a token in their URL and personal data in
// their body: nothing may cache, frame, sniff or refer them on.
func TestPagesAndAnswersCarryTheHardeningHeaders(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("hdr", "hdr@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB)
		page := h.showConfirmation(h.linkToken("hdr@example.com"))
		api := h.check(tok)
		for name, resp := range map[string]*http.Response{"page": page.HTTPResponse, "api": api.HTTPResponse} {
			hd := resp.Header
			csp := hd.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
				!strings.Contains(csp, "form-action 'self'") {
				t.Errorf("%s: Content-Security-Policy %q", name, csp)
			}
			for header, want := range map[string]string{
				"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
				"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
			} {
				if got := hd.Get(header); got != want {
					t.Errorf("%s: %s = %q, want %q", name, header, got, want)
				}
			}
		}
		// The pages name their charset, 200, 404 and 410 alike.
		for _, r := range []*http.Response{page.HTTPResponse, h.showConfirmation("unknown-token").HTTPResponse, h.confirm("unknown-token").HTTPResponse} {
			if got := r.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("%s %s: page content type %q, want text/html; charset=utf-8", r.Request.Method, r.Request.URL.Path, got)
			}
		}
	})
}

// PACE's three operations are deprecated in the spec: every answer says so,
// errors included (RFC 9745 Deprecation, RFC 8594 Sunset). The confirmation
// pages are not deprecated and say nothing.
func TestDeprecatedOperationsAnnounceDeprecationAndSunset(t *testing.T) {
	h := newHarness(t, options{cfg: storetest.Config(t, store.SQLite)})
	tok := h.token("dep", "dep@example.com")
	wantDeprecation := "@1795737600" // 2026-11-27T00:00:00Z, the harness's date
	wantSunset := "Fri, 31 Dec 2027 00:00:00 GMT"
	if got := "@" + strconv.FormatInt(testDeprecation.Unix(), 10); got != wantDeprecation {
		t.Fatalf("the harness's date is %s", got)
	}

	answers := map[string]*http.Response{
		"CheckUserPhone 404":  h.check(tok).HTTPResponse,
		"UpdateUserPhone 201": h.put(tok, numberA).HTTPResponse,
		"VerifyUserPhone 422": h.verify(tok, "000000").HTTPResponse,
		"CheckUserPhone 201":  h.check(tok).HTTPResponse,
		"CheckUserPhone 401":  h.check("").HTTPResponse,
	}
	bad, _ := h.raw("PUT", openapi.BasePath+"/user/phone", "application/vnd.api+json", `{"data":{}}`, "Authorization", "Bearer "+tok)
	answers["UpdateUserPhone 400"] = bad
	for name, resp := range answers {
		if got := resp.Header.Get("Deprecation"); got != wantDeprecation {
			t.Errorf("%s (%d): Deprecation %q, want %q", name, resp.StatusCode, got, wantDeprecation)
		}
		if got := resp.Header.Get("Sunset"); got != wantSunset {
			t.Errorf("%s (%d): Sunset %q, want %q", name, resp.StatusCode, got, wantSunset)
		}
	}
	page := h.showConfirmation("not-a-token").HTTPResponse
	if page.Header.Get("Deprecation") != "" || page.Header.Get("Sunset") != "" {
		t.Errorf("the confirmation page (not deprecated) says Deprecation %q, Sunset %q",
			page.Header.Get("Deprecation"), page.Header.Get("Sunset"))
	}
}
