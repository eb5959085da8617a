package flow

import (
	"context"
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
			return &userphone.Error{
				Code:       userphone.CodeRateLimited,
				Detail:     "Too many " + w.what + "; try again in " + strconv.Itoa(secs) + " seconds.",
				RetryAfter: time.Duration(secs) * time.Second,
			}
		}
	}
	return nil
}

// checkUserLimits bounds how often one user may ask for messages.
func (s *Service) checkUserLimits(ctx context.Context, tx userphone.Tx, userID string, now time.Time) error {
	l := s.cfg.Limits
	return checkWindows(ctx, tx, userphone.EventQuery{Kind: userphone.EventRequested, UserID: userID}, now,
		window{l.ChangesPerHour, time.Hour, "phone number change requests this hour"},
		window{l.ChangesPerDay, 24 * time.Hour, "phone number change requests today"})
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
		window{l.SMSPerNumberPerHour, time.Hour, "SMS to this number this hour"},
		window{l.SMSPerNumberPerDay, 24 * time.Hour, "SMS to this number today"})
	if err != nil {
		return err
	}
	err = checkWindows(ctx, tx, userphone.EventQuery{Kind: userphone.EventSMSSent}, now, window{l.SMSPerHour, time.Hour, "SMS"})
	if e := userphone.AsError(err); e != nil {
		s.log.Error("the global SMS budget is used up; no SMS is sent until the hour rolls on",
			"budget_per_hour", l.SMSPerHour, "retry_after", e.RetryAfter)
		return &userphone.Error{
			Code:       userphone.CodeServiceUnavailable,
			Detail:     "SMS cannot be sent right now; try again later.",
			RetryAfter: e.RetryAfter,
		}
	}
	return err
}
