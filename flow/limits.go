package flow

import (
	"context"
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
// hold across replicas.
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
	e.Pointer = "/data/attributes/phoneNumber"
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
func checkWindows(ctx context.Context, tx userphone.Tx, q userphone.EventQuery, now time.Time, windows ...window) error {
	for _, w := range windows {
		if w.limit <= 0 {
			continue
		}
		q.Since = now.Add(-w.span)
		n, oldest, err := tx.CountEvents(ctx, q)
		if err != nil {
			return err
		}
		if n >= w.limit {
			wait := max(oldest.Add(w.span).Sub(now), time.Second)
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
func (s *Service) checkUserLimits(ctx context.Context, tx userphone.Tx, userID string, now time.Time) error {
	l := s.cfg.Limits
	return checkWindows(ctx, tx, userphone.EventQuery{Kind: userphone.EventRequested, UserID: userID}, now,
		window{l.ChangesPerHour, time.Hour, "phone number change requests this hour", LimitUserChanges},
		window{l.ChangesPerDay, 24 * time.Hour, "phone number change requests today", LimitUserChanges})
}

// checkSMSLimits bounds the SMS to one number, whoever asks, and all SMS.
// The number's lock makes its count exact across replicas; the global
// budget may overshoot by the requests in flight at the same moment.
func (s *Service) checkSMSLimits(ctx context.Context, tx userphone.Tx, number string, now time.Time) error {
	l := s.cfg.Limits
	if err := tx.LockNumber(ctx, number); err != nil {
		return err
	}
	err := checkWindows(ctx, tx, userphone.EventQuery{Kind: userphone.EventSMSSent, PhoneNumber: number}, now,
		window{l.SMSPerNumberPerHour, time.Hour, "SMS to this number this hour", LimitNumberSMS},
		window{l.SMSPerNumberPerDay, 24 * time.Hour, "SMS to this number today", LimitNumberSMS})
	if err != nil {
		return err
	}
	err = checkWindows(ctx, tx, userphone.EventQuery{Kind: userphone.EventSMSSent}, now, window{l.SMSPerHour, time.Hour, "SMS", LimitSMSBudget})
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
