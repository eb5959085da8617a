package flow

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// Limits guard against SMS pumping, number takeover and plain floods. 0
// turns a limit off. They count the audit trail in the database, so they
// hold across replicas; see docs/SECURITY.md for the attacks each one
// answers and what an attacker gets with the defaults. DefaultLimits gives
// each its default, with the reason next to it.
type Limits struct {
	// ChangesPerHour and ChangesPerDay bound one user's change requests.
	ChangesPerHour int
	ChangesPerDay  int
	// SMSPerNumberPerHour and SMSPerNumberPerDay are one user's allowance
	// of SMS to one number: what others ask for never uses it up.
	SMSPerNumberPerHour int
	SMSPerNumberPerDay  int
	// SMSToOwnedNumberPerDay is what all users but its owner may have sent
	// to a number someone has verified, together. Past it the code is
	// withheld: the answer is the same, and no SMS goes out.
	SMSToOwnedNumberPerDay int
	// SMSPerNetworkPerHour and SMSPerNetworkPerDay bound the SMS that
	// clients of one network (see IPv4NetworkBits) may have sent.
	SMSPerNetworkPerHour int
	SMSPerNetworkPerDay  int
	// SMSPerPrefixPerHour and SMSPerPrefixPerDay bound the SMS to one
	// range of numbers (phone.Prefix), from anywhere.
	SMSPerPrefixPerHour int
	SMSPerPrefixPerDay  int
	// WrongCodesPerNumberPerDay bounds the wrong codes entered for one
	// number, over all its changes and accounts.
	WrongCodesPerNumberPerDay int
	// SMSPerHour is the budget for all SMS. Past half of it only quiet
	// networks and ranges send, past BudgetQuietShare only numbers the
	// user has verified before, and past all of it nothing (see
	// checkBudget).
	SMSPerHour int
	// IPv4NetworkBits and IPv6NetworkBits say how much of a client's
	// address names its network; 0 takes the default, as no network may
	// be the whole Internet.
	IPv4NetworkBits int
	IPv6NetworkBits int
	// AllowedRegions lists the ISO regions numbers may come from; empty
	// means all.
	AllowedRegions []string
	// DenyNonGeographic refuses numbers of no country (phone.NonGeographic).
	DenyNonGeographic bool
}

// DefaultLimits are the limits unless an operator says otherwise.
func DefaultLimits() Limits {
	return Limits{
		// A person changes their number a few times a year; 5 an hour and
		// 10 a day leave room for typos and resends, and none for a script.
		ChangesPerHour: 5,
		ChangesPerDay:  10,
		// A phone needs one code, maybe a resend or two.
		SMSPerNumberPerHour: 3,
		SMSPerNumberPerDay:  10,
		// The owner of a verified number may move it to a second account
		// now and then; three a day from strangers is little noise for the
		// owner, who is told of each by e-mail.
		SMSToOwnedNumberPerDay: 3,
		// An office or a carrier's NAT puts many people behind one /24,
		// but twenty new numbers an hour from one is no crowd of people:
		// a pumping script must buy a new network every twenty SMS.
		SMSPerNetworkPerHour: 20,
		SMSPerNetworkPerDay:  100,
		// A block of 10,000 numbers holds few of one service's users, who
		// change numbers rarely; a rented range asked for from many
		// networks meets this first.
		SMSPerPrefixPerHour: 10,
		SMSPerPrefixPerDay:  30,
		// Two changes' worth of guesses: the odds of hitting a 6-digit code
		// stay at 1 in 100,000 a day, whatever the number of accounts.
		WrongCodesPerNumberPerDay: 10,
		// A ceiling on the SMS bill whatever else fails; raise it with
		// traffic.
		SMSPerHour: 1000,
		// A /24 is what one customer, office or NAT pool gets; a /48 is
		// one IPv6 site.
		IPv4NetworkBits: 24,
		IPv6NetworkBits: 48,
		// Satellite and international-network numbers cost many times a
		// mobile's SMS and are pumping's favourite targets; nobody's
		// account needs one by default.
		DenyNonGeographic: true,
	}
}

// WithoutAbuseLimits returns l with every counted limit off, for load tests
// that send far more from one client than any limit lets through. The
// rules of what numbers are accepted (AllowedRegions, DenyNonGeographic)
// stay, as do the network sizes.
func WithoutAbuseLimits(l Limits) Limits {
	return Limits{
		AllowedRegions: l.AllowedRegions, DenyNonGeographic: l.DenyNonGeographic,
		IPv4NetworkBits: l.IPv4NetworkBits, IPv6NetworkBits: l.IPv6NetworkBits,
	}
}

// The limits that refuse requests, as the observer is told them.
const (
	// LimitCooldown: a message for the change, or the user's last one, went
	// out moments ago.
	LimitCooldown = "cooldown"
	// LimitUserChanges: the user asked for too many changes this hour or day.
	LimitUserChanges = "user-changes"
	// LimitNumberSMS: the user asked for too many SMS to one number.
	LimitNumberSMS = "number-sms"
	// LimitNetworkSMS: too many SMS for clients of one network.
	LimitNetworkSMS = "network-sms"
	// LimitPrefixSMS: too many SMS to one range of numbers.
	LimitPrefixSMS = "prefix-sms"
	// LimitNumberGuesses: too many wrong codes for one number today.
	LimitNumberGuesses = "number-guesses"
	// LimitSMSBudget: the budget for all SMS is used up, or this source is
	// not let into what is left of it (503).
	LimitSMSBudget = "sms-budget"
)

// LimitNames lists every limit the observer may be told of.
var LimitNames = []string{LimitCooldown, LimitUserChanges, LimitNumberSMS, LimitNetworkSMS, LimitPrefixSMS, LimitNumberGuesses, LimitSMSBudget}

// retryStep is what every Retry-After is rounded up to: an exact wait
// would tell one user when another last asked for the same number.
const retryStep = time.Minute

// coarse rounds a wait up to whole retry steps.
func coarse(wait time.Duration) time.Duration {
	return max(retryStep, (wait+retryStep-1)/retryStep*retryStep)
}

// refusal is a limit's answer: the caller's error, and the limit's name for
// the observer.
type refusal struct {
	limit string
	err   *userphone.Error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// limitOf names the limit that refused with err, or is empty.
func limitOf(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.limit
	}
	return ""
}

// rateLimited is a refusal with a coarse Retry-After.
func rateLimited(limit, what string, wait time.Duration) *refusal {
	wait = coarse(wait)
	return &refusal{limit, &userphone.Error{
		Code:       userphone.CodeRateLimited,
		Detail:     "Too many " + what + "; try again in " + strconv.Itoa(int(wait/time.Minute)) + " minutes.",
		RetryAfter: wait,
	}}
}

// checkDestination refuses a number of no country, unless allowed, and
// one from outside the allowed regions.
func (s *Service) checkDestination(number string) error {
	l := s.cfg.Limits
	if l.DenyNonGeographic && phone.NonGeographic(number) {
		return notAllowed("Numbers of satellite and international networks are not accepted here; use a mobile number of a country.")
	}
	if len(l.AllowedRegions) == 0 {
		return nil
	}
	if region := phone.Region(number); slices.Contains(l.AllowedRegions, region) {
		return nil
	}
	return notAllowed("Numbers from this country are not accepted here; use a number from one of: " + strings.Join(l.AllowedRegions, ", ") + ".")
}

func notAllowed(detail string) error {
	return &userphone.Error{Code: userphone.CodePhoneNumberNotAllowed, Detail: detail, Field: userphone.FieldPhoneNumber}
}

// window is one limit on counted events.
type window struct {
	limit int
	span  time.Duration
	what  string
	name  string // LimitUserChanges, …
}

func hourly(limit int, what, name string) window {
	return window{limit, time.Hour, what + " this hour", name}
}

func daily(limit int, what, name string) window {
	return window{limit, 24 * time.Hour, what + " today", name}
}

// checkWindows refuses when q's events within any window reached its limit.
func checkWindows(t *txn, q userphone.EventQuery, windows ...window) error {
	for _, w := range windows {
		if w.limit <= 0 {
			continue
		}
		n, oldest, err := countSince(t, q, w.span)
		if err != nil {
			return err
		}
		if n >= w.limit {
			return rateLimited(w.name, w.what, oldest.Add(w.span).Sub(t.now))
		}
	}
	return nil
}

// countSince counts q's events within span before the transaction's time.
func countSince(t *txn, q userphone.EventQuery, span time.Duration) (int, time.Time, error) {
	q.Since = t.now.Add(-span)
	return t.tx.CountEvents(t.ctx, q)
}

// checkUserLimits bounds how often one user may ask for messages.
func (s *Service) checkUserLimits(t *txn, userID string) error {
	l := s.cfg.Limits
	return checkWindows(t, userphone.EventQuery{Kinds: []userphone.EventKind{userphone.EventRequested}, UserID: userID},
		hourly(l.ChangesPerHour, "phone number change requests", LimitUserChanges),
		daily(l.ChangesPerDay, "phone number change requests", LimitUserChanges))
}
