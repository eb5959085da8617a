package server_test

import (
	"net/http"
	"strings"
	"testing"
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
		if !strings.HasPrefix(page.HTTPResponse.Header.Get("Content-Type"), "text/html") {
			t.Errorf("page content type %q", page.HTTPResponse.Header.Get("Content-Type"))
		}
	})
}
