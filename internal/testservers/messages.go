package testservers

import (
	"regexp"

	"github.com/pace/userphone/openapi"
)

// What a recipient reads in the service's messages, read one way by every
// test: the code an SMS starts with, and the token of the confirmation
// e-mail's link.

var (
	leadingCode = regexp.MustCompile(`^\s*(\d{6})\b`)
	tokenInLink = regexp.MustCompile(regexp.QuoteMeta(openapi.BasePath+openapi.ConfirmPath) + `\?token=([A-Za-z0-9_-]+)`)
)

// SMSCode returns the code an SMS text of the service starts with.
func SMSCode(text string) (string, bool) { return firstGroup(leadingCode, text) }

// ConfirmLinkToken returns the token of the confirmation link in an
// e-mail's text.
func ConfirmLinkToken(text string) (string, bool) { return firstGroup(tokenInLink, text) }

func firstGroup(re *regexp.Regexp, text string) (string, bool) {
	m := re.FindStringSubmatch(text)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// WrongCode returns a well-formed code that is not code.
func WrongCode(code string) string {
	if code == "000000" {
		return "111111"
	}
	return "000000"
}
