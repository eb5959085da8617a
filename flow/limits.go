package flow

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// Limits guard against SMS pumping, code brute force and plain floods. 0
// turns a limit off. They count the audit trail in the database, so they
// hold across replicas. DefaultLimits gives each its default, with the
// reason next to it.
type Limits struct {
	ChangesPerHour      int
	ChangesPerDay       int
	SMSPerNumberPerHour int
	SMSPerNumberPerDay  int
	// SMSPerHour is the budget for all SMS; past it, nothing is sent.
	SMSPerHour int
	// AllowedRegions lists the ISO regions numbers may come from; empty
	// means all.
	AllowedRegions []string
}

// DefaultLimits are the limits unless an operator says otherwise.
func DefaultLimits() Limits {
	return Limits{
		// A person changes their number a few times a year; 5 an hour and
		// 10 a day leave room for typos and resends, and none for a script.
		ChangesPerHour: 5,
		ChangesPerDay:  10,
		// A phone needs one code, maybe a resend or two; more, from any
		// number of accounts, is pumping.
		SMSPerNumberPerHour: 3,
		SMSPerNumberPerDay:  10,
		// A ceiling on the SMS bill whatever else fails; raise it with
		// traffic.
		SMSPerHour: 1000,
	}
}

// The limits that refuse requests, as the observer is told them.
const (
	// LimitCooldown: a message for the change, or the user's last one, went
	// out moments ago.
	LimitCooldown = "cooldown"
	// LimitUserChanges: the user asked for too many changes this hour or day.
	LimitUserChanges = "user-changes"
	// LimitNumberSMS: too many SMS to one number this hour or day.
	LimitNumberSMS = "number-sms"
	// LimitSMSBudget: the budget for all SMS is used up (503).
	LimitSMSBudget = "sms-budget"
)

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

// checkRegion refuses a number from outside the allowed regions.
func (s *Service) checkRegion(number string) error {
	if len(s.cfg.Limits.AllowedRegions) == 0 {
		return nil
	}
	if region := phone.Region(number); slices.Contains(s.cfg.Limits.AllowedRegions, region) {
		return nil
	}
	e := userphone.Errorf(userphone.CodePhoneNumberNotAllowed,
		"Numbers from this country are not accepted here; use a number from one of: %s.", strings.Join(s.cfg.Limits.AllowedRegions, ", "))
	e.Field = userphone.FieldPhoneNumber
	return e
}

// window is one limit on counted events.
type window struct {
	limit int
	span  time.Duration
	what  string
	name  string // LimitUserChanges, …
}

// checkWindows refuses when q's events within any window reached its limit.
func checkWindows(t *txn, q userphone.EventQuery, windows ...window) error {
	for _, w := range windows {
		if w.limit <= 0 {
			continue
		}
		q.Since = t.now.Add(-w.span)
		n, oldest, err := t.tx.CountEvents(t.ctx, q)
		if err != nil {
			return err
		}
		if n >= w.limit {
			wait := max(oldest.Add(w.span).Sub(t.now), time.Second)
			secs := int(math.Ceil(wait.Seconds()))
			return &refusal{w.name, &userphone.Error{
				Code:       userphone.CodeRateLimited,
				Detail:     "Too many " + w.what + "; try again in " + strconv.Itoa(secs) + " seconds.",
				RetryAfter: time.Duration(secs) * time.Second,
			}}
		}
	}
	return nil
}

// checkUserLimits bounds how often one user may ask for messages.
func (s *Service) checkUserLimits(t *txn, userID string) error {
	l := s.cfg.Limits
	return checkWindows(t, userphone.EventQuery{Kind: userphone.EventRequested, UserID: userID},
		window{l.ChangesPerHour, time.Hour, "phone number change requests this hour", LimitUserChanges},
		window{l.ChangesPerDay, 24 * time.Hour, "phone number change requests today", LimitUserChanges})
}

// checkSMSLimits bounds the SMS to one number, whoever asks, and all SMS.
// The number's lock makes its count exact across replicas; the global
// budget may overshoot by the requests in flight at the same moment.
func (s *Service) checkSMSLimits(t *txn, number string) error {
	l := s.cfg.Limits
	if err := t.tx.LockNumber(t.ctx, number); err != nil {
		return err
	}
	err := checkWindows(t, userphone.EventQuery{Kind: userphone.EventSMSSent, PhoneNumber: number},
		window{l.SMSPerNumberPerHour, time.Hour, "SMS to this number this hour", LimitNumberSMS},
		window{l.SMSPerNumberPerDay, 24 * time.Hour, "SMS to this number today", LimitNumberSMS})
	if err != nil {
		return err
	}
	err = checkWindows(t, userphone.EventQuery{Kind: userphone.EventSMSSent}, window{l.SMSPerHour, time.Hour, "SMS", LimitSMSBudget})
	if e := userphone.AsError(err); e != nil {
		s.log.Error("the global SMS budget is used up; no SMS is sent until the hour rolls on",
			"budget_per_hour", l.SMSPerHour, "retry_after", e.RetryAfter)
		return &refusal{LimitSMSBudget, &userphone.Error{
			Code:       userphone.CodeServiceUnavailable,
			Detail:     "SMS cannot be sent right now; try again later.",
			RetryAfter: e.RetryAfter,
		}}
	}
	return err
}
