package flow

import (
	"context"
	"encoding/hex"
	"net/url"
	"strconv"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
	"github.com/pace/userphone/templates"
)

// Message kinds, for logs and delivery records that must not hold content.
const (
	KindConfirmChange = "confirm-change"
	KindCode          = "code"
	KindNumberRemoved = "number-removed"
)

// issueEmail gives c a new message number, and so a new e-mail token that
// voids the previous link, and queues the confirmation e-mail.
func (s *Service) issueEmail(t *txn, c *userphone.PhoneChange, user userphone.User) error {
	if user.Email == "" {
		return userphone.Errorf(userphone.CodeEmailRequired,
			"Changing a verified number needs a confirmation e-mail, but no e-mail address is known for this user; sign in with a token that carries the email claim.")
	}
	n := s.markSent(c, t.now)
	c.EmailTokenHash = s.tokenHash(s.emailToken(c.ID, n))
	if err := s.record(t, userphone.EventEmailSent, c, ""); err != nil {
		return err
	}
	return s.queue.Enqueue(t.ctx, t.tx, s.outgoing(t.ctx, KindConfirmChange, c, n))
}

func (s *Service) outgoing(ctx context.Context, kind string, c *userphone.PhoneChange, n int) userphone.Outgoing {
	return userphone.Outgoing{Kind: kind, ChangeID: c.ID, MessageNo: n, RequestID: userphone.RequestMetaFrom(ctx).ID}
}

// issueCode gives c a new message number, and so a new code that voids the
// previous one, and queues the SMS.
func (s *Service) issueCode(t *txn, c *userphone.PhoneChange) error {
	if err := s.checkSMSLimits(t, c.PhoneNumber); err != nil {
		return err
	}
	n := s.markSent(c, t.now)
	c.CodeHash = s.codeHash(c.ID, s.smsCode(c.ID, n))
	if err := s.record(t, userphone.EventSMSSent, c, ""); err != nil {
		return err
	}
	return s.queue.Enqueue(t.ctx, t.tx, s.outgoing(t.ctx, KindCode, c, n))
}

func (s *Service) markSent(c *userphone.PhoneChange, now time.Time) int {
	c.Sends++
	c.LastSentAt = &now
	return c.Sends
}

// Compose builds the message m names, at send time. It is current only
// while its change still waits for exactly this message: a resend, the next
// step, the change's end or its expiry make it stale, and a stale code must
// never reach a phone.
func (s *Service) Compose(ctx context.Context, m userphone.Outgoing) (msg userphone.Message, current bool, err error) {
	now := s.clock()
	err = s.store.Read(ctx, func(tx userphone.Tx) error {
		switch m.Kind {
		case KindNumberRemoved:
			u, found, err := tx.GetUser(ctx, m.UserID)
			if err != nil || !found || u.Email == "" {
				return err
			}
			lang := templates.Lang(u.Locale, "")
			subject, text, htmlBody := templates.NumberRemovedEmail(lang, phone.Mask(m.Number))
			msg = userphone.Message{Channel: userphone.ChannelEmail, To: u.Email, Subject: subject, Text: text, HTML: htmlBody, Lang: lang}
			current = true
			return nil
		case KindConfirmChange, KindCode:
		default:
			return nil // an unknown kind from a newer version: nothing to send
		}
		c, err := tx.ChangeByID(ctx, m.ChangeID)
		if err != nil || c == nil || c.Sends != m.MessageNo || c.ExpiredAt(now) {
			return err
		}
		u, _, err := tx.GetUser(ctx, c.UserID)
		if err != nil {
			return err
		}
		lang := templates.Lang(u.Locale, "")
		switch {
		case m.Kind == KindCode && c.Status == userphone.StatusAwaitingCode:
			text := templates.CodeSMS(lang, s.smsCode(c.ID, m.MessageNo))
			msg = userphone.Message{Channel: userphone.ChannelSMS, To: c.PhoneNumber, Text: text, Lang: lang}
		case m.Kind == KindConfirmChange && c.Status == userphone.StatusAwaitingEmailConfirmation && u.Email != "":
			link := s.cfg.ConfirmURL + "?token=" + url.QueryEscape(s.emailToken(c.ID, m.MessageNo))
			subject, text, htmlBody := templates.ConfirmChangeEmail(lang, phone.Mask(c.PhoneNumber), link, c.ExpiresAt)
			msg = userphone.Message{Channel: userphone.ChannelEmail, To: u.Email, Subject: subject, Text: text, HTML: htmlBody, Lang: lang}
		default:
			return nil
		}
		current = true
		return nil
	})
	if err != nil || !current {
		return userphone.Message{}, false, err
	}
	msg.Kind = m.Kind
	msg.IdempotencyKey = hex.EncodeToString(s.mac("idempotency", m.Kind, m.ChangeID, strconv.Itoa(m.MessageNo), m.UserID)[:16])
	return msg, true, nil
}

// DeliveryFailed cancels the change that m belongs to, when m is still its
// current message, so that the user can start over with a new PUT.
func (s *Service) DeliveryFailed(ctx context.Context, m userphone.Outgoing, reason string) error {
	if m.Kind == KindNumberRemoved {
		return nil // a notice about the past; no change waits for it
	}
	var userID string
	err := s.store.Read(ctx, func(tx userphone.Tx) error {
		c, err := tx.ChangeByID(ctx, m.ChangeID)
		if c != nil {
			userID = c.UserID
		}
		return err
	})
	if err != nil || userID == "" {
		return err
	}
	// The trail ties the failure to the request that asked for the message.
	ctx = userphone.WithRequestMeta(ctx, userphone.RequestMeta{ID: m.RequestID})
	return s.inTx(ctx, func(t *txn) error {
		if _, _, err := t.tx.LockUser(t.ctx, userID); err != nil {
			return err
		}
		c, err := t.tx.ChangeByID(t.ctx, m.ChangeID)
		if err != nil || c == nil || !c.Status.Open() || c.Sends != m.MessageNo {
			return err
		}
		s.log.Warn("phone change cancelled: its message could not be delivered", "change", c.ID, "kind", m.Kind, "reason", reason)
		if err := s.record(t, userphone.EventDeliveryFailed, c, reason); err != nil {
			return err
		}
		return s.cancel(t, c, userphone.CancelDeliveryFailed+": "+reason)
	})
}
