package userphone

import "time"

// LinkState is what the token of a confirmation e-mail's link stands for now.
type LinkState int

const (
	// LinkValid: the change waits for this confirmation.
	LinkValid LinkState = iota
	// LinkConfirmed: the change is confirmed and waits for the SMS code. A
	// second confirmation (a refresh of the confirmed page) lands here too
	// and sends nothing.
	LinkConfirmed
	// LinkUnknown: no change has this token (typo, or replaced by a newer e-mail).
	LinkUnknown
	// LinkUsed: the change was verified or cancelled.
	LinkUsed
	// LinkExpired: the change passed its time limit.
	LinkExpired
)

// Confirmation is what a confirmation link leads to: its state and what the
// page about it shows.
type Confirmation struct {
	State        LinkState
	MaskedNumber string
	ExpiresAt    time.Time
	// Locale is the user's remembered locale, for the page's language.
	Locale string
}
