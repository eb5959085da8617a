package store

import (
	"time"

	"github.com/pace/userphone"
)

type userRow struct {
	ID              string `gorm:"primaryKey"`
	Email           string
	Locale          string
	PhoneNumber     *string
	PhoneVerifiedAt *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

func (userRow) TableName() string { return "users" }

func (r userRow) domain() userphone.User {
	u := userphone.User{ID: r.ID, Email: r.Email, Locale: r.Locale, PhoneVerifiedAt: utcPtr(r.PhoneVerifiedAt)}
	if r.PhoneNumber != nil {
		u.PhoneNumber = *r.PhoneNumber
	}
	return u
}

type changeRow struct {
	ID             string `gorm:"primaryKey"`
	UserID         string
	PhoneNumber    string
	Status         string
	EmailTokenHash []byte
	CodeHash       []byte
	Attempts       int
	Sends          int
	LastSentAt     *time.Time
	CancelReason   string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	ExpiresAt      time.Time
	ClosedAt       *time.Time
	Version        int
}

func (changeRow) TableName() string { return "phone_changes" }

func (r changeRow) domain() *userphone.PhoneChange {
	return &userphone.PhoneChange{
		ID: r.ID, UserID: r.UserID, PhoneNumber: r.PhoneNumber,
		Status:         userphone.ChangeStatus(r.Status),
		EmailTokenHash: r.EmailTokenHash, CodeHash: r.CodeHash,
		Attempts: r.Attempts, Sends: r.Sends, LastSentAt: utcPtr(r.LastSentAt),
		CancelReason: r.CancelReason,
		CreatedAt:    r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
		ClosedAt: utcPtr(r.ClosedAt),
	}
}

func changeRowOf(c *userphone.PhoneChange) changeRow {
	return changeRow{
		ID: c.ID, UserID: c.UserID, PhoneNumber: c.PhoneNumber, Status: string(c.Status),
		EmailTokenHash: c.EmailTokenHash, CodeHash: c.CodeHash,
		Attempts: c.Attempts, Sends: c.Sends, LastSentAt: utcPtr(c.LastSentAt),
		CancelReason: c.CancelReason,
		CreatedAt:    dbTime(c.CreatedAt), UpdatedAt: dbTime(c.UpdatedAt), ExpiresAt: dbTime(c.ExpiresAt),
		ClosedAt: utcPtr(c.ClosedAt),
	}
}

// dbTime keeps every stored time in UTC at PostgreSQL's microsecond
// precision, so SQLite's text timestamps compare in time order and a value
// reads back equal to what was written.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

type eventRow struct {
	ID            int64 `gorm:"primaryKey"`
	At            time.Time
	Kind          string
	UserID        string
	ChangeID      string
	PhoneNumber   string
	RequestID     string
	ClientIPHash  string
	ClientNetHash string
	DestPrefix    string
	Detail        string
}

func (eventRow) TableName() string { return "phone_events" }

// eventRowOf is the row of e, as AddEvent and the bulk loader write it.
func eventRowOf(e userphone.Event) eventRow {
	return eventRow{
		At: dbTime(e.At), Kind: string(e.Kind), UserID: e.UserID, ChangeID: e.ChangeID,
		PhoneNumber: e.PhoneNumber, RequestID: e.RequestID, ClientIPHash: e.ClientIPHash,
		ClientNetHash: e.ClientNetHash, DestPrefix: e.DestPrefix, Detail: e.Detail,
	}
}

func (r eventRow) domain() userphone.Event {
	return userphone.Event{
		At: r.At.UTC(), Kind: userphone.EventKind(r.Kind), UserID: r.UserID, ChangeID: r.ChangeID,
		PhoneNumber: r.PhoneNumber, RequestID: r.RequestID, ClientIPHash: r.ClientIPHash,
		ClientNetHash: r.ClientNetHash, DestPrefix: r.DestPrefix, Detail: r.Detail,
	}
}
