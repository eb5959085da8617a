package userphone

import (
	"context"
	"time"
)

// EventKind names a step of the audit trail.
type EventKind string

const (
	EventRequested      EventKind = "requested"
	EventEmailSent      EventKind = "email-sent" // queued for delivery
	EventEmailConfirmed EventKind = "email-confirmed"
	EventSMSSent        EventKind = "sms-sent" // queued for delivery
	// EventSMSWithheld: a code for a number another user has verified,
	// past the small allowance strangers share; it is not sent.
	EventSMSWithheld EventKind = "sms-withheld"
	// EventTestCode: a code for a test number, its fixed one; nothing is
	// sent, and no SMS limit counts it.
	EventTestCode       EventKind = "test-code"
	EventVerifyFailed   EventKind = "verify-failed"
	EventVerified       EventKind = "verified"
	EventExpired        EventKind = "expired"
	EventCancelled      EventKind = "cancelled"
	EventMovedAway      EventKind = "moved-away"
	EventRateLimited    EventKind = "rate-limited"
	EventDeliveryFailed EventKind = "delivery-failed"
)

// Event is one line of the audit trail. It never holds a code or a token;
// the client's IP is kept only as a keyed hash.
type Event struct {
	At           time.Time
	Kind         EventKind
	UserID       string
	ChangeID     string
	PhoneNumber  string
	RequestID    string
	ClientIPHash string
	// ClientNetHash is the keyed hash of the client's network (its /24 or
	// /48 by default), which the per-network limits count.
	ClientNetHash string
	// DestPrefix is the number's range (phone.Prefix), which the
	// per-prefix limits count.
	DestPrefix string
	Detail     string
}

// EventQuery selects events for the limits; empty fields match all.
type EventQuery struct {
	// Kinds are the kinds to count; at least one.
	Kinds       []EventKind
	UserID      string
	PhoneNumber string
	// NotUserID leaves out one user's events: the others' count.
	NotUserID     string
	ClientNetHash string
	DestPrefix    string
	Since         time.Time
}

// RequestMeta is what the HTTP layer knows about the request behind a
// call, for the audit trail.
type RequestMeta struct {
	ID       string
	ClientIP string
}

type requestMetaKey struct{}

// WithRequestMeta returns ctx carrying m.
func WithRequestMeta(ctx context.Context, m RequestMeta) context.Context {
	return context.WithValue(ctx, requestMetaKey{}, m)
}

// RequestMetaFrom returns the RequestMeta in ctx, or the zero value.
func RequestMetaFrom(ctx context.Context) RequestMeta {
	m, _ := ctx.Value(requestMetaKey{}).(RequestMeta)
	return m
}
