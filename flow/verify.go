package flow

import (
	"context"
	"crypto/hmac"

	"github.com/pace/userphone"
)

// Verify checks code against the user's pending change and, when it is
// right, makes the pending number the user's verified number.
func (s *Service) Verify(ctx context.Context, id userphone.Identity, code string) (userphone.Phone, error) {
	var p userphone.Phone
	// outcome is an error that must still commit the state that led to it:
	// a counted wrong attempt, a cancellation, an expiry.
	var outcome error
	err := s.inTx(ctx, func(t *txn) error {
		outcome = nil
		user, err := t.tx.UpsertUser(t.ctx, id, t.now)
		if err != nil {
			return err
		}
		c, err := t.tx.OpenChange(t.ctx, user.ID)
		if err != nil {
			return err
		}
		if c == nil {
			return noPending(t, user.ID)
		}
		c.UpdatedAt = t.now
		switch {
		case c.ExpiredAt(t.now):
			outcome = expired()
			return s.expire(t, c)
		case c.Status == userphone.StatusAwaitingEmailConfirmation:
			return userphone.Errorf(userphone.CodeEmailConfirmationPending,
				"Confirm the change with the link in the e-mail first; the SMS with the code follows.")
		case !hmac.Equal(s.codeHash(c.ID, code), c.CodeHash):
			outcome, err = s.countWrongCode(t, c)
			return err
		}
		p, err = s.takeNumber(t, user, c)
		return err
	})
	if err != nil {
		return userphone.Phone{}, err
	}
	if outcome != nil {
		return userphone.Phone{}, outcome
	}
	return p, nil
}

// countWrongCode counts a wrong attempt at c's code, cancelling c when none
// are left, and records both. It returns the caller's answer, and an error
// when the recording failed.
func (s *Service) countWrongCode(t *txn, c *userphone.PhoneChange) (answer, err error) {
	answer = s.wrongCode(t, c)
	if err := t.tx.SaveChange(t.ctx, c); err != nil {
		return nil, err
	}
	if err := s.record(t, userphone.EventVerifyFailed, c, ""); err != nil {
		return nil, err
	}
	if c.Status == userphone.StatusCancelled {
		return answer, s.record(t, userphone.EventCancelled, c, c.CancelReason)
	}
	return answer, nil
}

// takeNumber closes c as verified and makes its number the user's,
// taking it from whoever had it verified before; they are told by e-mail.
func (s *Service) takeNumber(t *txn, user userphone.User, c *userphone.PhoneChange) (userphone.Phone, error) {
	previous, err := t.tx.TakeVerifiedNumber(t.ctx, user.ID, c.PhoneNumber, t.now)
	if err != nil {
		return userphone.Phone{}, err
	}
	c.Close(userphone.StatusVerified, "", t.now)
	if err := t.tx.SaveChange(t.ctx, c); err != nil {
		return userphone.Phone{}, err
	}
	if err := s.record(t, userphone.EventVerified, c, ""); err != nil {
		return userphone.Phone{}, err
	}
	for _, prev := range previous {
		if err := s.tellOfMovedNumber(t, prev, c); err != nil {
			return userphone.Phone{}, err
		}
	}
	now := t.now
	user.PhoneNumber, user.PhoneVerifiedAt = c.PhoneNumber, &now
	return view(user, nil), nil
}

// tellOfMovedNumber records that prev lost their verified number to the
// change c, and queues the e-mail that tells them.
func (s *Service) tellOfMovedNumber(t *txn, prev userphone.User, c *userphone.PhoneChange) error {
	s.log.Info("verified number moved to another user", "change", c.ID)
	moved := userphone.Event{Kind: userphone.EventMovedAway, UserID: prev.ID, ChangeID: c.ID, PhoneNumber: c.PhoneNumber}
	if err := s.recordEvent(t, moved); err != nil {
		return err
	}
	return s.queue.Enqueue(t.ctx, t.tx, userphone.Outgoing{
		Kind: KindNumberRemoved, ChangeID: c.ID, UserID: prev.ID, Number: c.PhoneNumber,
		RequestID: userphone.RequestMetaFrom(t.ctx).ID,
	})
}

// wrongCode counts a wrong attempt and cancels the change when none are
// left. The user row lock taken before makes the count exact under
// concurrent verifies.
func (s *Service) wrongCode(t *txn, c *userphone.PhoneChange) error {
	c.Attempts++
	left := s.cfg.MaxCodeAttempts - c.Attempts
	if left <= 0 {
		c.Close(userphone.StatusCancelled, userphone.CancelTooManyAttempts, t.now)
		e := userphone.Errorf(userphone.CodeTooManyAttempts,
			"The code was wrong too often, so the change is cancelled; ask for the number again to get a new code.")
		// A new change must wait out the cool-down since the last SMS.
		if c.LastSentAt != nil {
			e.RetryAfter = max(0, c.LastSentAt.Add(s.cfg.ResendCooldown).Sub(t.now))
		}
		return e
	}
	return &userphone.Error{
		Code:              userphone.CodeInvalidCode,
		Detail:            "The code is wrong; check the SMS and try again.",
		RemainingAttempts: &left,
	}
}

func noPending(t *txn, userID string) error {
	latest, err := t.tx.LatestChange(t.ctx, userID)
	if err != nil {
		return err
	}
	if latest != nil && latest.Status == userphone.StatusExpired {
		return expired()
	}
	return userphone.Errorf(userphone.CodeNoPendingVerification,
		"There is no phone number change waiting for a code; ask for the number first.")
}

func expired() error {
	return userphone.Errorf(userphone.CodeVerificationExpired,
		"The phone number change has passed its time limit; ask for the number again.")
}
