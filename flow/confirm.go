package flow

import (
	"context"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// LinkState is what an e-mail link's token stands for now.
type LinkState int

const (
	// LinkValid: the change waits for this confirmation.
	LinkValid LinkState = iota
	// LinkConfirmed: the change is confirmed and waits for the SMS code. A
	// second POST (a refresh of the confirmed page) lands here too and sends
	// nothing.
	LinkConfirmed
	// LinkUnknown: no change has this token (typo, or replaced by a newer e-mail).
	LinkUnknown
	// LinkUsed: the change was verified or cancelled.
	LinkUsed
	// LinkExpired: the change passed its time limit.
	LinkExpired
)

// Confirmation is what the confirmation pages show.
type Confirmation struct {
	State        LinkState
	MaskedNumber string
	ExpiresAt    time.Time
	// Locale is the user's remembered locale, for the page's language.
	Locale string
}

// LookUpConfirmation tells what token stands for without changing anything:
// mail scanners open links, and only the user's click may confirm.
func (s *Service) LookUpConfirmation(ctx context.Context, token string) (Confirmation, error) {
	now := s.clock()
	var conf Confirmation
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
func (s *Service) Confirm(ctx context.Context, token string) (Confirmation, error) {
	var conf Confirmation
	var userID, number string // for the trail, should a limit refuse the SMS
	err := s.inTx(ctx, func(ctx context.Context, tx userphone.Tx, now time.Time) error {
		found, err := tx.ChangeByEmailToken(ctx, s.tokenHash(token))
		if err != nil || found == nil {
			conf = Confirmation{State: LinkUnknown}
			return err
		}
		userID, number = found.UserID, found.PhoneNumber
		// Lock order is user, then change: lock the user, then read the
		// change again, as a PUT may have cancelled it or replaced its link
		// since the first read.
		if _, _, err := tx.LockUser(ctx, found.UserID); err != nil {
			return err
		}
		c, err := tx.ChangeByEmailToken(ctx, s.tokenHash(token))
		if err != nil || c == nil {
			conf = Confirmation{State: LinkUnknown}
			return err
		}
		if conf, err = describe(ctx, tx, c, now); err != nil || conf.State != LinkValid {
			if conf.State == LinkExpired && c.Status.Open() {
				return s.expire(ctx, tx, c, now)
			}
			return err
		}
		c.Status = userphone.StatusAwaitingCode
		c.UpdatedAt = now
		if err := s.record(ctx, tx, userphone.EventEmailConfirmed, c.UserID, c, "", "", now); err != nil {
			return err
		}
		if err := s.issueCode(ctx, tx, c, now); err != nil {
			return err
		}
		conf.State = LinkConfirmed
		return tx.SaveChange(ctx, c)
	})
	if err != nil && userID != "" {
		s.recordRefusal(ctx, userID, number, err)
	}
	return conf, err
}

func describe(ctx context.Context, tx userphone.Tx, c *userphone.PhoneChange, now time.Time) (Confirmation, error) {
	if c == nil {
		return Confirmation{State: LinkUnknown}, nil
	}
	user, _, err := tx.GetUser(ctx, c.UserID)
	if err != nil {
		return Confirmation{}, err
	}
	conf := Confirmation{MaskedNumber: phone.Mask(c.PhoneNumber), ExpiresAt: c.ExpiresAt, Locale: user.Locale}
	switch {
	case c.Status == userphone.StatusExpired || c.ExpiredAt(now):
		conf.State = LinkExpired
	case c.Status == userphone.StatusAwaitingEmailConfirmation:
		conf.State = LinkValid
	case c.Status == userphone.StatusAwaitingCode:
		conf.State = LinkConfirmed
	default:
		conf.State = LinkUsed
	}
	return conf, nil
}
