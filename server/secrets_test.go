package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pace/userphone/internal/testservers"
)

// No code, link token or bearer token may reach a log line; the dev outbox
// is the one place that shows them.
func TestNoSecretInAnyLogLine(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("uma", "uma@example.com")
		h.put(tok, numberA)
		code := h.code(numberA)
		h.verify(tok, testservers.WrongCode(code))
		h.verify(tok, code)
		h.put(tok, numberB)
		link := h.linkToken("uma@example.com")
		h.showConfirmation(link)
		h.confirm(link)
		h.verify(tok, h.code(numberB))
		h.raw("GET", "/user/2021-2/user/phone?token="+link, "", "", "Authorization", "Bearer "+tok)
		if r := h.check(tok); r.StatusCode() != http.StatusOK {
			t.Fatalf("check: %d", r.StatusCode())
		}

		logs := h.logs.String()
		secrets := map[string]string{"the first code": code, "the second code": h.code(numberB), "the link token": link, "the bearer token": tok}
		for _, m := range h.messages() {
			secrets["the text of a "+m.Kind+" message"] = m.Text
		}
		for what, secret := range secrets {
			if strings.Contains(logs, secret) {
				t.Errorf("%s appears in the log", what)
			}
		}
		for _, full := range []string{numberA, numberB, "uma@example.com"} {
			if strings.Contains(logs, full) {
				t.Errorf("%s appears unmasked in the log", full)
			}
		}
	})
}
