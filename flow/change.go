package flow

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// RequestChange asks for rawNumber to become the user's number. created is
// false when the number already is the user's verified number, true when a
// change is pending.
func (s *Service) RequestChange(ctx context.Context, id userphone.Identity, rawNumber string) (p userphone.Phone, created bool, err error) {
	number, err := s.acceptableNumber(rawNumber)
	if err != nil {
		return userphone.Phone{}, false, err
	}
	// Refusals are recorded after the rollback; see recordRefusal.
	defer func() { s.recordRefusal(ctx, id.Subject, number, err) }()
	err = s.inTx(ctx, func(t *txn) error {
		user, err := s.upsertUser(t, id)
		if err != nil {
			return err
		}
		open, err := s.openChange(t, user.ID)
		if err != nil {
			return err
		}
		switch {
		case number == user.PhoneNumber:
			p, created, err = s.keepVerifiedNumber(t, user, open)
		case open != nil && open.PhoneNumber == number:
			p, created, err = s.resendForOpenChange(t, user, open)
		default:
			p, created, err = s.startChange(t, user, open, number)
		}
		return err
	})
	return p, created, err
}

// acceptableNumber normalizes what the user typed and refuses a number
// of a destination that is not allowed.
func (s *Service) acceptableNumber(rawNumber string) (string, error) {
	number, err := phone.Normalize(rawNumber)
	if err != nil {
		return "", err
	}
	if err := s.checkDestination(number); err != nil {
		return "", err
	}
	return number, s.refuseEndedTestNumber(number, s.clock())
}

// keepVerifiedNumber answers a request for the number the user already
// has: nothing to verify, and a pending change to another number is
// called off.
func (s *Service) keepVerifiedNumber(t *txn, user userphone.User, open *userphone.PhoneChange) (userphone.Phone, bool, error) {
	if open != nil {
		if err := s.cancel(t, open, userphone.CancelAlreadyVerified); err != nil {
			return userphone.Phone{}, false, err
		}
	}
	return view(user, nil), false, nil
}

// resendForOpenChange answers a repeated request for the pending number:
// after the cool-down and within the user's limits, the current step's
// message goes again.
func (s *Service) resendForOpenChange(t *txn, user userphone.User, open *userphone.PhoneChange) (userphone.Phone, bool, error) {
	if err := s.coolDown(open, t.now); err != nil {
		return userphone.Phone{}, false, err
	}
	if err := s.checkUserLimits(t, user.ID); err != nil {
		return userphone.Phone{}, false, err
	}
	if err := s.record(t, userphone.EventRequested, open, ""); err != nil {
		return userphone.Phone{}, false, err
	}
	open.UpdatedAt = t.now
	var err error
	if open.Status == userphone.StatusAwaitingEmailConfirmation {
		err = s.issueEmail(t, open, user)
	} else {
		err = s.issueCode(t, open)
	}
	if err != nil {
		return userphone.Phone{}, false, err
	}
	return view(user, open), true, t.tx.SaveChange(t.ctx, open)
}

// startChange opens a change to number, superseding the user's open one,
// and sends its first message: the confirmation e-mail when the user has
// a verified number to protect, else the SMS code.
func (s *Service) startChange(t *txn, user userphone.User, open *userphone.PhoneChange, number string) (userphone.Phone, bool, error) {
	if err := s.coolDownAcrossChanges(t, user.ID, open); err != nil {
		return userphone.Phone{}, false, err
	}
	if open != nil {
		// Superseded first: the store allows one open change per user.
		// Should the new change fail below, the rollback restores it.
		if err := s.cancel(t, open, userphone.CancelSuperseded); err != nil {
			return userphone.Phone{}, false, err
		}
	}
	c := &userphone.PhoneChange{
		ID: uuid.NewString(), UserID: user.ID, PhoneNumber: number,
		CreatedAt: t.now, UpdatedAt: t.now, ExpiresAt: t.now.Add(s.cfg.ProcessTTL),
	}
	if err := s.checkUserLimits(t, user.ID); err != nil {
		return userphone.Phone{}, false, err
	}
	if err := s.record(t, userphone.EventRequested, c, ""); err != nil {
		return userphone.Phone{}, false, err
	}
	if err := s.queueOwnerNotice(t, c); err != nil {
		return userphone.Phone{}, false, err
	}
	var err error
	if user.PhoneNumber != "" {
		// Someone holding only a stolen token must not be able to move a
		// verified account to their own phone: the owner's mailbox says yes.
		c.Status = userphone.StatusAwaitingEmailConfirmation
		err = s.issueEmail(t, c, user)
	} else {
		c.Status = userphone.StatusAwaitingCode
		err = s.issueCode(t, c)
	}
	if err != nil {
		return userphone.Phone{}, false, err
	}
	return view(user, c), true, t.tx.InsertChange(t.ctx, c)
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
	return &refusal{LimitCooldown, &userphone.Error{
		Code:       userphone.CodeRateLimited,
		Detail:     "A message for this phone number change was sent moments ago; try again in a minute.",
		RetryAfter: coarse(wait),
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
func (s *Service) coolDownAcrossChanges(t *txn, userID string, open *userphone.PhoneChange) error {
	if open != nil {
		return s.coolDown(open, t.now)
	}
	latest, err := t.tx.LatestChange(t.ctx, userID)
	if err != nil || latest == nil {
		return err
	}
	if latest.Status.Open() || latest.Status == userphone.StatusCancelled {
		return s.coolDown(latest, t.now)
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
