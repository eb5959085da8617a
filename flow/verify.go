package flow

import (
	"context"
	"crypto/hmac"
	"time"

	"github.com/pace/userphone"
)

// Verify checks code against the user's pending change and, when it is
// right, makes the pending number the user's verified number.
func (s *Service) Verify(ctx context.Context, id userphone.Identity, code string) (userphone.Phone, error) {
	var p userphone.Phone
	// outcome is an error that must still commit the state that led to it:
	// a counted wrong attempt, a cancellation, an expiry.
	var outcome error
	err := s.inTx(ctx, func(ctx context.Context, tx userphone.Tx, now time.Time) error {
		outcome = nil
		user, err := tx.UpsertUser(ctx, id, now)
		if err != nil {
			return err
		}
		c, err := tx.OpenChange(ctx, user.ID)
		if err != nil {
			return err
		}
		if c == nil {
			return noPending(ctx, tx, user.ID)
		}
		c.UpdatedAt = now
		switch {
		case c.ExpiredAt(now):
			outcome = expired()
			return s.expire(ctx, tx, c, now)
		case c.Status == userphone.StatusAwaitingEmailConfirmation:
			return userphone.Errorf(userphone.CodeEmailConfirmationPending,
				"Confirm the change with the link in the e-mail first; the SMS with the code follows.")
		case !hmac.Equal(s.codeHash(c.ID, code), c.CodeHash):
			outcome = s.wrongCode(c, now)
			if err := tx.SaveChange(ctx, c); err != nil {
				return err
			}
			if err := s.record(ctx, tx, userphone.EventVerifyFailed, user.ID, c, "", "", now); err != nil {
				return err
			}
			if c.Status == userphone.StatusCancelled {
				return s.record(ctx, tx, userphone.EventCancelled, user.ID, c, "", c.CancelReason, now)
			}
			return nil
		}
		previous, err := tx.TakeVerifiedNumber(ctx, user.ID, c.PhoneNumber, now)
		if err != nil {
			return err
		}
		c.Close(userphone.StatusVerified, "", now)
		if err := tx.SaveChange(ctx, c); err != nil {
			return err
		}
		if err := s.record(ctx, tx, userphone.EventVerified, user.ID, c, "", "", now); err != nil {
			return err
		}
		for _, prev := range previous {
			s.log.Info("verified number moved to another user", "change", c.ID)
			if err := s.record(ctx, tx, userphone.EventMovedAway, prev.ID, c, "", "", now); err != nil {
				return err
			}
			err := s.queue.Enqueue(ctx, tx, userphone.Outgoing{
				Kind: KindNumberRemoved, ChangeID: c.ID, UserID: prev.ID, Number: c.PhoneNumber,
				RequestID: userphone.RequestMetaFrom(ctx).ID,
			})
			if err != nil {
				return err
			}
		}
		user.PhoneNumber, user.PhoneVerifiedAt = c.PhoneNumber, &now
		p = view(user, nil)
		return nil
	})
	if err != nil {
		return userphone.Phone{}, err
	}
	if outcome != nil {
		return userphone.Phone{}, outcome
	}
	return p, nil
}

// wrongCode counts a wrong attempt and cancels the change when none are
// left. The user row lock taken before makes the count exact under
// concurrent verifies.
func (s *Service) wrongCode(c *userphone.PhoneChange, now time.Time) error {
	c.Attempts++
	left := s.cfg.MaxCodeAttempts - c.Attempts
	if left <= 0 {
		c.Close(userphone.StatusCancelled, userphone.CancelTooManyAttempts, now)
		e := userphone.Errorf(userphone.CodeTooManyAttempts,
			"The code was wrong too often, so the change is cancelled; ask for the number again to get a new code.")
		// A new change must wait out the cool-down since the last SMS.
		if c.LastSentAt != nil {
			e.RetryAfter = max(0, c.LastSentAt.Add(s.cfg.ResendCooldown).Sub(now))
		}
		return e
	}
	return &userphone.Error{
		Code:              userphone.CodeInvalidCode,
		Detail:            "The code is wrong; check the SMS and try again.",
		RemainingAttempts: &left,
	}
}

func noPending(ctx context.Context, tx userphone.Tx, userID string) error {
	latest, err := tx.LatestChange(ctx, userID)
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
