package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pace/userphone"
)

// brokenStore fails every transaction with an error the service does not
// know, as a bug or a corrupt database would.
type brokenStore struct{ userphone.Store }

var errDiskOnFire = errors.New("disk on fire at sector 7")

func (brokenStore) InTx(context.Context, func(userphone.Tx) error) error { return errDiskOnFire }
func (brokenStore) Read(context.Context, func(userphone.Tx) error) error { return errDiskOnFire }
func (brokenStore) PhoneOf(context.Context, string) (userphone.User, bool, *userphone.PhoneChange, error) {
	return userphone.User{}, false, nil, errDiskOnFire
}

// Something unexpected answers 501 internal-error, as PACE documents, with
// the request id and without the internal message.
func TestUnexpectedErrorsAnswer501WithoutDetails(t *testing.T) {
	forEachDialectWith(t, options{wrapStore: func(s userphone.Store) userphone.Store { return brokenStore{s} }}, func(t *testing.T, h *harness) {
		tok := h.token("broken", "")
		update := h.put(tok, numberA)
		verify := h.verify(tok, "123456")
		check := h.check(tok)
		page := h.showConfirmation("some-token")
		confirm := h.confirm("some-token")
		for name, r := range map[string]struct {
			status int
			body   []byte
		}{
			"update": {update.StatusCode(), update.Body}, "verify": {verify.StatusCode(), verify.Body},
			"check": {check.StatusCode(), check.Body}, "page": {page.StatusCode(), page.Body},
			"confirm": {confirm.StatusCode(), confirm.Body},
		} {
			e := wantError(t, 501, r.status, r.body, userphone.CodeInternal)
			if strings.Contains(string(r.body), "disk") || e.Id == "" {
				t.Errorf("%s: %s", name, r.body)
			}
		}
		if !h.logs.has("disk on fire") {
			t.Error("the internal error is not in the log")
		}
	})
}
