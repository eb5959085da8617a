package userphone

import (
	"context"
	"errors"
	"time"
)

// ChangeStatus is the state of one phone number change.
type ChangeStatus string

const (
	StatusAwaitingEmailConfirmation ChangeStatus = "awaiting-email-confirmation"
	StatusAwaitingCode              ChangeStatus = "awaiting-code"
	StatusVerified                  ChangeStatus = "verified"
	StatusExpired                   ChangeStatus = "expired"
	StatusCancelled                 ChangeStatus = "cancelled"
)

// Open reports whether a change in this status can still proceed.
func (s ChangeStatus) Open() bool {
	return s == StatusAwaitingEmailConfirmation || s == StatusAwaitingCode
}

// OpenStatuses are the statuses of a change that can still proceed. A user
// has at most one change in them, which the store enforces.
var OpenStatuses = []ChangeStatus{StatusAwaitingEmailConfirmation, StatusAwaitingCode}

// Why a change was cancelled; recorded for support and audit.
const (
	CancelSuperseded      = "superseded"
	CancelAlreadyVerified = "number-already-verified"
	CancelTooManyAttempts = "too-many-attempts"
	// CancelDeliveryFailed prefixes the reason when a message could not be
	// delivered: the provider refused it, or the attempts ran out.
	CancelDeliveryFailed = "delivery-failed"
)

// Identity is what a bearer token says about its user.
type Identity struct {
	Subject string
	Email   string
	// EmailUnverified is true when the token's email_verified claim is
	// present and false: the address may not be the user's, so it is
	// neither remembered nor sent a confirmation link. A token without the
	// claim leaves it false.
	EmailUnverified bool
	Locale          string
	Scopes          []string
	// LinkedIdentities names the identity providers the user has linked,
	// from the token's linked-identity claim.
	LinkedIdentities []string
	// Expiry is when the token stops being valid (its exp claim).
	Expiry time.Time
}

// User is a user as the service remembers them.
type User struct {
	ID     string
	Email  string
	Locale string
	// PhoneNumber is the verified number in E.164, or empty.
	PhoneNumber     string
	PhoneVerifiedAt *time.Time
}

// PhoneChange is one attempt to set a user's phone number, from the request
// to verification or its end.
type PhoneChange struct {
	ID          string
	UserID      string
	PhoneNumber string
	Status      ChangeStatus
	// EmailTokenHash is the keyed hash of the e-mail link's token; only the
	// newest link's hash is kept, so a resent e-mail voids the previous one.
	EmailTokenHash []byte
	// CodeHash is the keyed hash of the newest SMS code.
	CodeHash []byte
	// Attempts counts wrong codes over the whole change, so a resend does not
	// give a brute-forcer fresh tries.
	Attempts int
	// Sends counts messages sent for this change; it numbers each message.
	Sends        int
	LastSentAt   *time.Time
	CancelReason string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ExpiresAt    time.Time
	ClosedAt     *time.Time
}

// ExpiredAt reports whether an open change has passed its time limit at now.
func (c *PhoneChange) ExpiredAt(now time.Time) bool {
	return c.Status.Open() && !now.Before(c.ExpiresAt)
}

// Close ends the change in status with an optional reason. The code hash
// goes, as nothing may verify against it any more; the e-mail token's hash
// stays so that a late click on the link is told what became of the change.
func (c *PhoneChange) Close(status ChangeStatus, reason string, now time.Time) {
	c.Status = status
	c.CancelReason = reason
	c.ClosedAt = &now
	c.CodeHash = nil
}

// Phone is the user's phone as the API shows it: their number, whether it
// is verified, and the pending change, if any.
type Phone struct {
	UserID string
	// Number is the verified number, or the pending one when none is verified.
	Number   string
	Verified bool
	Pending  *PhoneChange
}

// Channel names how a message travels.
type Channel string

const (
	ChannelEmail Channel = "email"
	ChannelSMS   Channel = "sms"
)

// Message is one e-mail or SMS, ready to send.
type Message struct {
	Channel Channel
	To      string
	Subject string // e-mail only
	Text    string
	// HTML is the e-mail's HTML alternative to Text; empty for SMS.
	HTML string
	// Kind names the purpose, e.g. "confirm-change", for logs without content.
	Kind string
	// Lang is the language of the text, "de" or "en".
	Lang string
	// IdempotencyKey is the same for every attempt to send this message and
	// differs from every other message's, so a provider or receiver that
	// deduplicates delivers it once.
	IdempotencyKey string
}

// Sender delivers messages. Implementations must not log a message's text,
// which holds codes and links. An error that retrying cannot fix (a number
// that does not exist, an address the server rejects) is wrapped with
// ErrPermanent; any other error is worth another try.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Outgoing names a message to send without holding its content: the text,
// with its code or link, is built when the message is sent, from the server
// secret and the message's identity, so no secret ever sits in the queue.
type Outgoing struct {
	Kind string `json:"kind"`
	// ChangeID and MessageNo name the message of a change: its MessageNo-th
	// send. A newer send makes this one stale, and it is dropped.
	ChangeID  string `json:"change_id"`
	MessageNo int    `json:"message_no"`
	// UserID and Number are set for the notice to a user whose verified
	// Number moved to another account (ChangeID is that account's change).
	UserID string `json:"user_id,omitempty"`
	Number string `json:"number,omitempty"`
	// RequestID ties the delivery to the request in the audit trail.
	RequestID string `json:"request_id,omitempty"`
}

// ErrPermanent marks a delivery failure that no retry can fix.
var ErrPermanent = errors.New("permanent delivery failure")

// Store opens transactions over the service's state.
type Store interface {
	// InTx runs fn in one transaction, committing when fn returns nil.
	InTx(ctx context.Context, fn func(Tx) error) error
	// Read runs fn without taking locks; fn must not write.
	Read(ctx context.Context, fn func(Tx) error) error
	// PhoneOf returns the user and their open change (nil if none) from
	// one snapshot, in a single statement: the whole read of CheckUserPhone.
	PhoneOf(ctx context.Context, userID string) (u User, found bool, open *PhoneChange, err error)
	Ping(ctx context.Context) error
}

// Tx is what one transaction can do. Lock order is the user row first,
// then their changes, so one user's requests apply one at a time. Moving a
// verified number also locks the previous owner's row; two users swapping
// numbers at the same moment can deadlock on PostgreSQL, which breaks the
// deadlock, and the loser's transaction runs again (ErrConflict).
type Tx interface {
	// UpsertUser remembers the identity's e-mail and locale (keeping the old
	// ones when the token lacks them) and locks the user's row.
	UpsertUser(ctx context.Context, id Identity, now time.Time) (User, error)
	// LockUser locks and returns the user; found is false if unknown.
	LockUser(ctx context.Context, userID string) (u User, found bool, err error)
	GetUser(ctx context.Context, userID string) (u User, found bool, err error)
	// OpenChange returns the user's open change, or nil.
	OpenChange(ctx context.Context, userID string) (*PhoneChange, error)
	// LatestChange returns the user's newest change in any status, or nil.
	LatestChange(ctx context.Context, userID string) (*PhoneChange, error)
	// ChangeByID returns the change, or nil.
	ChangeByID(ctx context.Context, id string) (*PhoneChange, error)
	// ChangeByEmailToken returns the change whose current e-mail token has
	// this hash, or nil. It takes no lock: lock the user, then re-read the
	// change with OpenChange.
	ChangeByEmailToken(ctx context.Context, tokenHash []byte) (*PhoneChange, error)
	InsertChange(ctx context.Context, c *PhoneChange) error
	SaveChange(ctx context.Context, c *PhoneChange) error
	// TakeVerifiedNumber makes number the user's verified number and removes
	// it from any other user, whom it returns so they can be told.
	TakeVerifiedNumber(ctx context.Context, userID, number string, now time.Time) (previousOwners []User, err error)
	// ExpireDue closes every open change whose time limit has passed, and
	// returns them.
	ExpireDue(ctx context.Context, now time.Time) ([]PhoneChange, error)
	// PurgeClosedBefore deletes changes that ended before t, and events
	// older than t.
	PurgeClosedBefore(ctx context.Context, t time.Time) (int64, error)
	// AddEvent appends to the audit trail.
	AddEvent(ctx context.Context, e Event) error
	// CountEvents counts the events q selects, and returns the oldest one's
	// time, which tells when a limit on them frees up.
	CountEvents(ctx context.Context, q EventQuery) (n int, oldest time.Time, err error)
	// Events returns a user's trail, oldest first.
	Events(ctx context.Context, userID string) ([]Event, error)
	// Lock serialises, across replicas, the transactions that take the
	// same key until they end, so that a limit counted under it holds
	// exactly. Keys are taken in the order number, prefix, network, so that
	// two transactions never wait for each other.
	Lock(ctx context.Context, key string) error
	// OwnerOf returns the user who has number as their verified number.
	OwnerOf(ctx context.Context, number string) (userID string, found bool, err error)
}
