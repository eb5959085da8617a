package userphone

import (
	"errors"
	"fmt"
	"time"
)

// ErrorCode is one of the stable error codes that the spec documents in its
// ErrorCode schema. Clients branch on it, so a code is never renamed. These
// are the codes the domain answers with; the HTTP layer adds its own (a
// body too large, an unknown route, …) from the spec.
type ErrorCode string

const (
	CodeUnauthorized             ErrorCode = "unauthorized"
	CodeMissingLinkedIdentity    ErrorCode = "missing-linked-identity"
	CodeInsufficientScope        ErrorCode = "insufficient-scope"
	CodeInvalidPhoneNumber       ErrorCode = "invalid-phone-number"
	CodePhoneNumberNotAllowed    ErrorCode = "phone-number-not-allowed"
	CodeEmailRequired            ErrorCode = "email-required"
	CodeEmailNotVerified         ErrorCode = "email-not-verified"
	CodeEmailConfirmationPending ErrorCode = "email-confirmation-pending"
	CodeNoPendingVerification    ErrorCode = "no-pending-verification"
	CodeVerificationExpired      ErrorCode = "verification-expired"
	CodeInvalidCode              ErrorCode = "invalid-code"
	CodeCodeExpired              ErrorCode = "code-expired"
	CodeTooManyAttempts          ErrorCode = "too-many-attempts"
	CodeRateLimited              ErrorCode = "rate-limited"
	CodeInternal                 ErrorCode = "internal-error"
	CodeServiceUnavailable       ErrorCode = "service-unavailable"
)

// Field names an input of a domain operation that an error is about. The
// HTTP layer knows where each one sits in a request.
type Field string

const (
	// FieldPhoneNumber is the number a user asks for.
	FieldPhoneNumber Field = "phoneNumber"
)

// Error is an error the caller can act on. Its Detail is shown to the
// caller, so it must never hold a secret or an internal message; anything
// that is not an *Error is reported as internal-error without detail.
type Error struct {
	Code   ErrorCode
	Detail string
	// Field is the input at fault, if one is.
	Field Field
	// RemainingAttempts is set with CodeInvalidCode.
	RemainingAttempts *int
	// RetryAfter is set with CodeRateLimited, CodeTooManyAttempts and
	// CodeServiceUnavailable.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Detail
}

// Errorf returns an *Error with a formatted detail.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// ErrorCodeOf returns the code of err, or CodeInternal for an error that is
// not an *Error.
func ErrorCodeOf(err error) ErrorCode {
	if e := AsError(err); e != nil {
		return e.Code
	}
	return CodeInternal
}

// ErrConflict is returned by a store when a uniqueness rule stopped a write
// because a concurrent transaction got there first. Retrying the whole
// transaction resolves it.
var ErrConflict = errors.New("concurrent update conflict")

// ErrUnavailable is returned by a store when the database cannot be reached.
var ErrUnavailable = errors.New("database unavailable")
