package delivery

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/pace/userphone"
)

// sendError is a failed send whose text is safe to log: it names the
// recipient only masked, and never holds the message's content. It wraps
// its cause, so errors.Is and errors.As still see context.DeadlineExceeded,
// a *net.OpError or a provider's error type, and it wraps
// userphone.ErrPermanent when no retry can help.
type sendError struct {
	msg       string
	permanent bool
	cause     error
}

func (e *sendError) Error() string { return e.msg }

func (e *sendError) Unwrap() []error {
	var errs []error
	if e.permanent {
		errs = append(errs, userphone.ErrPermanent)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// permanentf returns a permanent failure with a formatted, already masked
// text and no cause.
func permanentf(format string, args ...any) error {
	return &sendError{msg: fmt.Sprintf(format, args...), permanent: true}
}

// redact replaces every spelling of the recipient in s (case aside; for a
// number also without its "+", and its national digits) with masked, so
// that an error text that echoes the recipient, as SMTP replies and
// Twilio errors do, can be logged.
func redact(s, recipient, masked string) string {
	if recipient == "" {
		return s
	}
	variants := []string{regexp.QuoteMeta(recipient)}
	if digits, ok := strings.CutPrefix(recipient, "+"); ok && digits != "" {
		variants = append(variants, regexp.QuoteMeta(digits))
		if n, err := phonenumbers.Parse(recipient, ""); err == nil {
			if nsn := phonenumbers.GetNationalSignificantNumber(n); len(nsn) >= 6 {
				variants = append(variants, regexp.QuoteMeta(nsn))
			}
		}
	}
	// Longest first, so that "+49151…" is replaced whole, not its digits.
	return regexp.MustCompile(`(?i)`+strings.Join(variants, "|")).ReplaceAllLiteralString(s, masked)
}

// isLoopbackHost reports whether host (without port or brackets) is this
// machine: "localhost" or a loopback address. Only there may a connection
// go without TLS by default, as nothing leaves the machine.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// truncate shortens s to at most n bytes on a rune boundary, for provider
// texts that go into error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// checkSMS refuses, before any request, what no SMS provider can send.
func checkSMS(ctx context.Context, provider string, m userphone.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.Channel != userphone.ChannelSMS {
		return permanentf("delivery: %s: cannot send a %q message, only SMS", provider, m.Channel)
	}
	if m.To == "" {
		return permanentf("delivery: %s: SMS %q has no recipient", provider, m.Kind)
	}
	return nil
}
