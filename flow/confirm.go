package flow

import (
	"context"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// LookUpConfirmation tells what token stands for without changing anything:
// mail scanners open links, and only the user's click may confirm.
func (s *Service) LookUpConfirmation(ctx context.Context, token string) (userphone.Confirmation, error) {
	now := s.clock()
	var conf userphone.Confirmation
	err := s.store.Read(ctx, func(tx userphone.Tx) error {
		c, err := tx.ChangeByEmailToken(ctx, s.tokenHash(token))
		if err != nil {
			return err
		}
		conf, err = describe(ctx, tx, c, now)
		return err
	})
	return conf, err
}

// Confirm confirms the change that token stands for and sends the SMS.
func (s *Service) Confirm(ctx context.Context, token string) (userphone.Confirmation, error) {
	var conf userphone.Confirmation
	var userID, number string // for the trail, should a limit refuse the SMS
	err := s.inTx(ctx, func(t *txn) error {
		found, err := t.tx.ChangeByEmailToken(t.ctx, s.tokenHash(token))
		if err != nil || found == nil {
			conf = userphone.Confirmation{State: userphone.LinkUnknown}
			return err
		}
		userID, number = found.UserID, found.PhoneNumber
		// Lock order is user, then change: lock the user, then read the
		// change again, as a PUT may have cancelled it or replaced its link
		// since the first read.
		if _, _, err := s.lockUser(t, found.UserID); err != nil {
			return err
		}
		c, err := t.tx.ChangeByEmailToken(t.ctx, s.tokenHash(token))
		if err != nil || c == nil {
			conf = userphone.Confirmation{State: userphone.LinkUnknown}
			return err
		}
		conf, err = s.confirmChange(t, c)
		return err
	})
	if err != nil && userID != "" {
		s.recordRefusal(ctx, userID, number, err)
	}
	return conf, err
}

// confirmChange moves c, locked, from the e-mail step to the code step
// and sends the SMS; a link that is no longer valid changes nothing but
// the close of a change found past its limit.
func (s *Service) confirmChange(t *txn, c *userphone.PhoneChange) (userphone.Confirmation, error) {
	conf, err := describe(t.ctx, t.tx, c, t.now)
	if err != nil || conf.State != userphone.LinkValid {
		if conf.State == userphone.LinkExpired && c.Status.Open() {
			return conf, s.expire(t, c)
		}
		return conf, err
	}
	c.Status = userphone.StatusAwaitingCode
	c.UpdatedAt = t.now
	if err := s.record(t, userphone.EventEmailConfirmed, c, ""); err != nil {
		return conf, err
	}
	if err := s.issueCode(t, c); err != nil {
		return conf, err
	}
	conf.State = userphone.LinkConfirmed
	return conf, t.tx.SaveChange(t.ctx, c)
}

func describe(ctx context.Context, tx userphone.Tx, c *userphone.PhoneChange, now time.Time) (userphone.Confirmation, error) {
	if c == nil {
		return userphone.Confirmation{State: userphone.LinkUnknown}, nil
	}
	user, _, err := tx.GetUser(ctx, c.UserID)
	if err != nil {
		return userphone.Confirmation{}, err
	}
	conf := userphone.Confirmation{MaskedNumber: phone.Mask(c.PhoneNumber), ExpiresAt: c.ExpiresAt, Locale: user.Locale}
	switch {
	case c.Status == userphone.StatusExpired || c.ExpiredAt(now):
		conf.State = userphone.LinkExpired
	case c.Status == userphone.StatusAwaitingEmailConfirmation:
		conf.State = userphone.LinkValid
	case c.Status == userphone.StatusAwaitingCode:
		conf.State = userphone.LinkConfirmed
	default:
		conf.State = userphone.LinkUsed
	}
	return conf, nil
}
