package server

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/pace/userphone"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
)

// The spec documents the code → status table that clients rely on; the
// server's one mapping must say the same, code by code.
func TestErrorStatusesMatchTheSpec(t *testing.T) {
	doc, err := openapi.Load()
	if err != nil {
		t.Fatal(err)
	}
	schema := doc.Components.Schemas["ErrorCode"].Value
	rows := regexp.MustCompile(`(?m)^\| ([a-z-]+) \| (\d{3}) \|`).FindAllStringSubmatch(schema.Description, -1)
	documented := map[api.ErrorCode]int{}
	for _, r := range rows {
		status, _ := strconv.Atoi(r[2])
		documented[api.ErrorCode(r[1])] = status
	}
	if len(documented) != len(schema.Enum) {
		t.Fatalf("the table has %d codes, the enum %d", len(documented), len(schema.Enum))
	}
	for _, v := range schema.Enum {
		code := api.ErrorCode(v.(string))
		kind, ok := errorKinds[code]
		if !ok {
			t.Errorf("%s is in the spec but has no status in errorKinds", code)
			continue
		}
		if kind.status != documented[code] {
			t.Errorf("%s: server answers %d, spec says %d", code, kind.status, documented[code])
		}
	}
	if len(errorKinds) != len(schema.Enum) {
		t.Errorf("errorKinds has %d codes, the spec %d", len(errorKinds), len(schema.Enum))
	}
}

// Every code the domain answers with is one of the spec's, with a status.
func TestEveryDomainCodeHasAStatus(t *testing.T) {
	for _, code := range []userphone.ErrorCode{
		userphone.CodeUnauthorized, userphone.CodeMissingLinkedIdentity, userphone.CodeInsufficientScope,
		userphone.CodeInvalidPhoneNumber, userphone.CodePhoneNumberNotAllowed, userphone.CodeEmailRequired,
		userphone.CodeEmailConfirmationPending, userphone.CodeNoPendingVerification, userphone.CodeVerificationExpired,
		userphone.CodeInvalidCode, userphone.CodeTooManyAttempts, userphone.CodeRateLimited,
		userphone.CodeInternal, userphone.CodeServiceUnavailable,
	} {
		if _, ok := errorKinds[api.ErrorCode(code)]; !ok {
			t.Errorf("the domain code %s has no status", code)
		}
	}
}
