package flow

import (
	"context"
	"crypto/hmac"
	"time"

	"github.com/pace/userphone"
)

// Verify checks code against the user's pending change and, when it is
// right, makes the pending number the user's verified number.
func (s *Service) Verify(ctx context.Context, id userphone.Identity, code string) (p userphone.Phone, err error) {
	// outcome is an error that must still commit the state that led to it:
	// a counted wrong attempt, a cancellation, an expiry.
	var outcome error
	var number string // for the trail, should a limit refuse the attempt
	defer func() { s.recordRefusal(ctx, id.Subject, number, err) }()
	err = s.inTx(ctx, func(t *txn) error {
		user, err := s.upsertUser(t, id)
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
		number = c.PhoneNumber
		p, outcome, err = s.verifyCode(t, user, c, code)
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

// verifyCode checks code against c, locked, in the order that tells the
// user the most useful thing first: the change's end, the missing e-mail
// step, the number's guesses for the day, the code's age, then the code.
// outcome is an answer that commits (a counted wrong code, an expiry); err
// one that rolls back.
func (s *Service) verifyCode(t *txn, user userphone.User, c *userphone.PhoneChange, code string) (p userphone.Phone, outcome, err error) {
	c.UpdatedAt = t.now
	switch {
	case c.ExpiredAt(t.now):
		return p, expired(), s.expire(t, c)
	case c.Status == userphone.StatusAwaitingEmailConfirmation:
		return p, nil, userphone.Errorf(userphone.CodeEmailConfirmationPending,
			"Confirm the change with the link in the e-mail first; the SMS with the code follows.")
	}
	if err := s.checkGuesses(t, c.PhoneNumber); err != nil {
		return p, nil, err
	}
	switch {
	case s.codeExpired(c, t.now):
		return p, nil, userphone.Errorf(userphone.CodeCodeExpired,
			"The code has expired; ask for the number again (the same request as before) to get a new one.")
	case !hmac.Equal(s.codeHash(c.ID, code), c.CodeHash):
		outcome, err = s.countWrongCode(t, c)
		return p, outcome, err
	}
	p, err = s.takeNumber(t, user, c)
	return p, nil, err
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
	t.announce(userphone.Outgoing{
		Kind: KindNumberRemoved, ChangeID: c.ID, UserID: prev.ID, Number: c.PhoneNumber,
		RequestID: userphone.RequestMetaFrom(t.ctx).ID,
	})
	return nil
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
			e.RetryAfter = coarse(c.LastSentAt.Add(s.cfg.ResendCooldown).Sub(t.now))
		}
		return e
	}
	return &userphone.Error{
		Code:              userphone.CodeInvalidCode,
		Detail:            "The code is wrong; check the SMS and try again.",
		RemainingAttempts: &left,
	}
}

// checkGuesses refuses every attempt at a code for number once it has had
// its wrong codes for the day, over all changes and accounts: otherwise
// each new change would give a guesser a fresh set. The number's lock
// makes the count exact across replicas.
func (s *Service) checkGuesses(t *txn, number string) error {
	cap := s.cfg.Limits.WrongCodesPerNumberPerDay
	if _, test := s.testCode(number, t.now); cap <= 0 || test {
		return nil
	}
	if err := s.lock(t, "number:"+number); err != nil {
		return err
	}
	n, oldest, err := countSince(t, userphone.EventQuery{Kinds: []userphone.EventKind{userphone.EventVerifyFailed}, PhoneNumber: number}, 24*time.Hour)
	if err != nil || n < cap {
		return err
	}
	return &refusal{LimitNumberGuesses, &userphone.Error{
		Code:       userphone.CodeTooManyAttempts,
		Detail:     "This number has had too many wrong codes today; it takes no more until tomorrow.",
		RetryAfter: coarse(oldest.Add(24 * time.Hour).Sub(t.now)),
	}}
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
