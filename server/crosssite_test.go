package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

const confirmPath = "/user/2021-2/user/phone/confirm"

// pendingConfirmation gives sub a verified number and a change to next
// that waits for the e-mail link, and returns the link's token.
func (h *harness) pendingConfirmation(tok, email, first, next string) string {
	h.t.Helper()
	h.verifyNumber(tok, first)
	if r := h.put(tok, next); r.StatusCode() != http.StatusCreated {
		h.t.Fatalf("PUT %s: %d %s", next, r.StatusCode(), r.Body)
	}
	return h.linkToken(email)
}

func (h *harness) postConfirm(token string, header ...string) (*http.Response, []byte) {
	h.t.Helper()
	return h.raw("POST", confirmPath, "application/x-www-form-urlencoded", url.Values{"token": {token}}.Encode(), header...)
}

// wantAwaitingEmail asserts that the change to number is still unconfirmed
// and that no SMS went to it.
func (h *harness) wantAwaitingEmail(tok, number string) {
	h.t.Helper()
	c := h.check(tok)
	if c.StatusCode() != http.StatusOK || c.ApplicationvndApiJSON200.Data.Attributes.PendingChange == nil ||
		c.ApplicationvndApiJSON200.Data.Attributes.PendingChange.Status != api.AwaitingEmailConfirmation {
		h.t.Fatalf("the change is no longer awaiting e-mail confirmation: %d %s", c.StatusCode(), c.Body)
	}
	if m := h.messagesTo(number); len(m) != 0 {
		h.t.Fatalf("an SMS went to %s: %+v", number, m)
	}
}

func (h *harness) wantConfirmed(tok, number string, resp *http.Response, body []byte) {
	h.t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		h.t.Fatalf("confirm: %d %s", resp.StatusCode, body)
	}
	c := h.check(tok)
	if p := c.ApplicationvndApiJSON200.Data.Attributes.PendingChange; p == nil || p.Status != api.AwaitingCode {
		h.t.Fatalf("after confirming: %s", c.Body)
	}
	if len(h.messagesTo(number)) != 1 {
		h.t.Fatalf("no SMS to %s after confirming", number)
	}
}

func TestConfirmFormFromAnotherSiteIsRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("ines", "ines@example.com")
		link := h.pendingConfirmation(tok, "ines@example.com", numberA, numberB)

		for _, header := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "https://evil.example"},
			// Sec-Fetch-Site decides over a matching Origin.
			{"Sec-Fetch-Site", "cross-site", "Origin", h.srv.URL},
		} {
			resp, body := h.postConfirm(link, header...)
			e := wantError(t, http.StatusForbidden, resp.StatusCode, body, api.ErrorCodeCrossSiteRequest)
			if e.Id != resp.Header.Get("X-Request-Id") {
				t.Fatalf("error id %q, X-Request-Id %q", e.Id, resp.Header.Get("X-Request-Id"))
			}
			h.wantAwaitingEmail(tok, numberB)
		}

		// The page itself may be opened from anywhere: the link is in an
		// e-mail, and showing it changes nothing.
		resp, body := h.raw("GET", confirmPath+"?token="+link, "", "", "Sec-Fetch-Site", "cross-site")
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="confirm"`) {
			t.Fatalf("page opened from another site: %d %s", resp.StatusCode, body)
		}

		// The form on our own page confirms.
		resp, body = h.postConfirm(link, "Sec-Fetch-Site", "same-origin", "Origin", h.srv.URL)
		h.wantConfirmed(tok, numberB, resp, body)
	})
}

func TestConfirmFormWithoutBrowserHeadersIsAccepted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		// curl and the README walk-through send neither Sec-Fetch-Site nor
		// Origin; the token is the credential.
		tok := h.token("jon", "jon@example.com")
		link := h.pendingConfirmation(tok, "jon@example.com", numberA, numberB)
		resp, body := h.postConfirm(link)
		h.wantConfirmed(tok, numberB, resp, body)

		// An older browser without Sec-Fetch-Site sends our own Origin.
		tok = h.token("kai", "kai@example.com")
		link = h.pendingConfirmation(tok, "kai@example.com", numberC, numberD)
		resp, body = h.postConfirm(link, "Origin", h.srv.URL)
		h.wantConfirmed(tok, numberD, resp, body)
	})
}

// Other numbers for users who must not share any with numberA or numberB.
const (
	numberC = "+4917612345678"
	numberD = "+4916012345678"
)

// TestCrossSiteRules checks each header combination on a token that names
// no change: a request let through gets the "unknown link" page (404 HTML),
// a refused one 403 cross-site-request.
func TestCrossSiteRules(t *testing.T) {
	h := newHarness(t, options{cfg: storetest.Config(t, store.SQLite)})
	self := strings.TrimPrefix(h.srv.URL, "http://") // 127.0.0.1:port
	_, port, _ := strings.Cut(self, ":")
	for _, c := range []struct {
		name    string
		header  []string
		refused bool
	}{
		{"no headers", nil, false},
		{"same-origin", []string{"Sec-Fetch-Site", "same-origin"}, false},
		{"user's own navigation", []string{"Sec-Fetch-Site", "none"}, false},
		{"same-origin in capitals", []string{"Sec-Fetch-Site", "Same-Origin"}, false},
		{"same-site", []string{"Sec-Fetch-Site", "same-site"}, true},
		{"cross-site", []string{"Sec-Fetch-Site", "cross-site"}, true},
		{"unknown Sec-Fetch-Site", []string{"Sec-Fetch-Site", "elsewhere"}, true},
		{"same-origin wins over a foreign Origin", []string{"Sec-Fetch-Site", "same-origin", "Origin", "https://evil.example"}, false},
		{"our Origin", []string{"Origin", "http://" + self}, false},
		{"our Origin behind TLS", []string{"Origin", "https://" + self}, false},
		{"Origin null (Referrer-Policy no-referrer)", []string{"Origin", "null"}, false},
		{"foreign Origin", []string{"Origin", "https://evil.example"}, true},
		{"our host, another port", []string{"Origin", "http://127.0.0.1:1"}, true},
		{"our port, another host", []string{"Origin", "http://localhost:" + port}, true},
		{"our host as a subdomain", []string{"Origin", "http://127.0.0.1." + "evil.example:" + port}, true},
		{"default port differs", []string{"Origin", "http://127.0.0.1"}, true},
		{"Origin not a URL", []string{"Origin", "127.0.0.1:" + port}, true},
		{"Origin with user info", []string{"Origin", "http://x@" + self}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.postConfirm("unknown-token", c.header...)
			if c.refused {
				wantError(t, http.StatusForbidden, resp.StatusCode, body, api.ErrorCodeCrossSiteRequest)
				return
			}
			if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("%d %s %s, want the unknown-link page", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		})
	}
	// Only the form's POST is guarded; the page and the API are not.
	resp, _ := h.raw("GET", confirmPath+"?token=unknown-token", "", "", "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of the page from another site: %d", resp.StatusCode)
	}
	resp, body := h.raw("GET", "/user/2021-2/user/phone", "", "", "Sec-Fetch-Site", "cross-site")
	wantError(t, http.StatusUnauthorized, resp.StatusCode, body, userphone.CodeUnauthorized)
}
