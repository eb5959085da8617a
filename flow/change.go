package flow

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// RequestChange asks for rawNumber to become the user's number. created is
// false when the number already is the user's verified number, true when a
// change is pending.
func (s *Service) RequestChange(ctx context.Context, id userphone.Identity, rawNumber string) (p userphone.Phone, created bool, err error) {
	// Refusals are recorded after the rollback; see recordRefusal.
	number, err := phone.Normalize(rawNumber)
	if err != nil {
		return userphone.Phone{}, false, err
	}
	if err := s.checkRegion(number); err != nil {
		return userphone.Phone{}, false, err
	}
	defer func() { s.recordRefusal(ctx, id.Subject, number, err) }()
	err = s.inTx(ctx, func(ctx context.Context, tx userphone.Tx, now time.Time) error {
		user, err := tx.UpsertUser(ctx, id, now)
		if err != nil {
			return err
		}
		open, err := s.openChange(ctx, tx, user.ID, now)
		if err != nil {
			return err
		}
		switch {
		case number == user.PhoneNumber:
			if open != nil {
				if err := s.cancel(ctx, tx, open, userphone.CancelAlreadyVerified, now); err != nil {
					return err
				}
			}
			p, created = view(user, nil), false
			return nil
		case open != nil && open.PhoneNumber == number:
			if err := s.coolDown(open, now); err != nil {
				return err
			}
			if err := s.requested(ctx, tx, user.ID, open, now); err != nil {
				return err
			}
			if err := s.resend(ctx, tx, open, user, now); err != nil {
				return err
			}
			p, created = view(user, open), true
			return tx.SaveChange(ctx, open)
		}
		if err := s.coolDownAcrossChanges(ctx, tx, user.ID, open, now); err != nil {
			return err
		}
		if open != nil {
			// Superseded first: the store allows one open change per user.
			// Should the new change fail below, the rollback restores it.
			if err := s.cancel(ctx, tx, open, userphone.CancelSuperseded, now); err != nil {
				return err
			}
		}
		c := &userphone.PhoneChange{
			ID: uuid.NewString(), UserID: user.ID, PhoneNumber: number,
			CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.cfg.ProcessTTL),
		}
		if err := s.requested(ctx, tx, user.ID, c, now); err != nil {
			return err
		}
		if user.PhoneNumber != "" {
			// Someone holding only a stolen token must not be able to move a
			// verified account to their own phone: the owner's mailbox says yes.
			c.Status = userphone.StatusAwaitingEmailConfirmation
			err = s.issueEmail(ctx, tx, c, user, now)
		} else {
			c.Status = userphone.StatusAwaitingCode
			err = s.issueCode(ctx, tx, c, now)
		}
		if err != nil {
			return err
		}
		p, created = view(user, c), true
		return tx.InsertChange(ctx, c)
	})
	return p, created, err
}

// resend sends the current step's message again; the caller has checked
// the cool-down.
func (s *Service) resend(ctx context.Context, tx userphone.Tx, c *userphone.PhoneChange, user userphone.User, now time.Time) error {
	c.UpdatedAt = now
	if c.Status == userphone.StatusAwaitingEmailConfirmation {
		return s.issueEmail(ctx, tx, c, user, now)
	}
	return s.issueCode(ctx, tx, c, now)
}

// requested checks the user's limits and records a request that will send
// a message for c.
func (s *Service) requested(ctx context.Context, tx userphone.Tx, userID string, c *userphone.PhoneChange, now time.Time) error {
	if err := s.checkUserLimits(ctx, tx, userID, now); err != nil {
		return err
	}
	return s.record(ctx, tx, userphone.EventRequested, userID, c, "", "", now)
}

// coolDown refuses a message for c while its last one is fresher than the
// cool-down.
func (s *Service) coolDown(c *userphone.PhoneChange, now time.Time) error {
	if c == nil || c.LastSentAt == nil {
		return nil
	}
	wait := c.LastSentAt.Add(s.cfg.ResendCooldown).Sub(now)
	if wait <= 0 {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	return &refusal{LimitCooldown, &userphone.Error{
		Code:       userphone.CodeRateLimited,
		Detail:     "A message for this phone number change was sent moments ago; try again in " + strconv.Itoa(secs) + " seconds.",
		RetryAfter: time.Duration(secs) * time.Second,
	}}
}

// coolDownAcrossChanges applies the cool-down to a new change too, when the
// user's last change was left open or cancelled: otherwise alternating two
// numbers, or starting over after too many wrong codes, would send an SMS
// per request. A verified or expired change ended normally and does not
// hold up the next one.
//
// An open change is always the user's latest (a new one supersedes it), so
// only a user without one needs the query.
func (s *Service) coolDownAcrossChanges(ctx context.Context, tx userphone.Tx, userID string, open *userphone.PhoneChange, now time.Time) error {
	if open != nil {
		return s.coolDown(open, now)
	}
	latest, err := tx.LatestChange(ctx, userID)
	if err != nil || latest == nil {
		return err
	}
	if latest.Status.Open() || latest.Status == userphone.StatusCancelled {
		return s.coolDown(latest, now)
	}
	return nil
}

// Check returns the user's phone; found is false when they have neither a
// verified nor a pending number.
func (s *Service) Check(ctx context.Context, id userphone.Identity) (p userphone.Phone, found bool, err error) {
	now := s.clock()
	user, known, open, err := s.store.PhoneOf(ctx, id.Subject)
	if err != nil || !known {
		return p, false, err
	}
	if open != nil && open.ExpiredAt(now) {
		open = nil
	}
	return view(user, open), user.PhoneNumber != "" || open != nil, nil
}
