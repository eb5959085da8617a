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
	// KindNumberRequested tells the owner of a verified number that another
	// account asked for it.
	KindNumberRequested = "number-requested"
)

// issueEmail gives c a new message number, and so a new e-mail token that
// voids the previous link, and queues the confirmation e-mail.
func (s *Service) issueEmail(t *txn, c *userphone.PhoneChange, user userphone.User) error {
	if t.emailUnverified {
		return userphone.Errorf(userphone.CodeEmailNotVerified,
			"Changing a verified number needs a confirmation e-mail, but the token says its e-mail address is not verified (email_verified is false); verify the address with your identity provider and sign in again.")
	}
	if user.Email == "" {
		return userphone.Errorf(userphone.CodeEmailRequired,
			"Changing a verified number needs a confirmation e-mail, but no e-mail address is known for this user; sign in with a token that carries the email claim.")
	}
	n := s.markSent(c, t.now)
	c.EmailTokenHash = s.tokenHash(s.emailToken(c.ID, n))
	if err := s.record(t, userphone.EventEmailSent, c, ""); err != nil {
		return err
	}
	t.announce(s.outgoing(t.ctx, KindConfirmChange, c, n))
	return nil
}

func (s *Service) outgoing(ctx context.Context, kind string, c *userphone.PhoneChange, n int) userphone.Outgoing {
	return userphone.Outgoing{Kind: kind, ChangeID: c.ID, MessageNo: n, RequestID: userphone.RequestMetaFrom(ctx).ID}
}

// issueCode gives c a new message number, and so a new code that voids the
// previous one, and queues the SMS; or, for a number someone else owns
// past the strangers' share, withholds it (see checkSMS).
func (s *Service) issueCode(t *txn, c *userphone.PhoneChange) error {
	if code, ok := s.testCode(c.PhoneNumber, t.now); ok {
		return s.issueTestCode(t, c, code)
	}
	withhold, err := s.checkSMS(t, c)
	if err != nil {
		return err
	}
	n := s.markSent(c, t.now)
	c.CodeHash = s.codeHash(c.ID, s.smsCode(c.ID, n))
	if withhold {
		return s.record(t, userphone.EventSMSWithheld, c, "")
	}
	if err := s.record(t, userphone.EventSMSSent, c, ""); err != nil {
		return err
	}
	t.announce(s.outgoing(t.ctx, KindCode, c, n))
	return nil
}

// ownerNoticesPerDay bounds the e-mails that tell one owner of requests
// for their number: enough to hear of an attack, too few to be a mail
// bomb. It holds with every limit off.
const ownerNoticesPerDay = 3

// queueOwnerNotice queues, for every new change, the e-mail that tells the
// number's owner, when someone else has it verified, that another account
// asked for it: at once, before anyone can prove possession. The request
// runs the same statements whether or not the number is someone's, so
// that its time tells nothing; a notice for nobody is dropped at send
// time. Under the number's lock, it counts the requests for the number by
// all but its owner today, which makes the bound exact across replicas.
func (s *Service) queueOwnerNotice(t *txn, c *userphone.PhoneChange) error {
	if err := s.lock(t, "number:"+c.PhoneNumber); err != nil {
		return err
	}
	owner, asked, err := s.countByOthers(t, c.PhoneNumber, c.UserID, []userphone.EventKind{userphone.EventRequested})
	if err != nil {
		return err
	}
	notice := userphone.Outgoing{Kind: KindNumberRequested, ChangeID: c.ID, Number: c.PhoneNumber, RequestID: userphone.RequestMetaFrom(t.ctx).ID}
	if owner != "" && asked <= ownerNoticesPerDay {
		notice.UserID = owner
	}
	t.announce(notice)
	return nil
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
		case KindNumberRemoved, KindNumberRequested:
			msg, current, err = composeNotice(ctx, tx, m)
		case KindConfirmChange, KindCode:
			msg, current, err = s.composeStep(ctx, tx, m, now)
		}
		// Any other kind comes from a newer version: nothing to send.
		return err
	})
	if err != nil || !current {
		return userphone.Message{}, false, err
	}
	msg.Kind = m.Kind
	msg.IdempotencyKey = hex.EncodeToString(s.mac("idempotency", m.Kind, m.ChangeID, strconv.Itoa(m.MessageNo), m.UserID)[:16])
	return msg, true, nil
}

// composeNotice builds an e-mail to the owner of a verified number about
// it: that it moved to another account, or that one asked for it.
func composeNotice(ctx context.Context, tx userphone.Tx, m userphone.Outgoing) (userphone.Message, bool, error) {
	if m.UserID == "" {
		return userphone.Message{}, false, nil // a request for a number nobody else has
	}
	u, found, err := tx.GetUser(ctx, m.UserID)
	if err != nil || !found || u.Email == "" {
		return userphone.Message{}, false, err
	}
	lang := templates.Lang(u.Locale, "")
	render := templates.NumberRemovedEmail
	if m.Kind == KindNumberRequested {
		render = templates.NumberRequestedEmail
	}
	subject, text, htmlBody := render(lang, phone.Mask(m.Number))
	return userphone.Message{Channel: userphone.ChannelEmail, To: u.Email, Subject: subject, Text: text, HTML: htmlBody, Lang: lang}, true, nil
}

// composeStep builds the message of a change's current step, if m still
// is it: the e-mail with the link, or the SMS with a code that has not
// expired.
func (s *Service) composeStep(ctx context.Context, tx userphone.Tx, m userphone.Outgoing, now time.Time) (userphone.Message, bool, error) {
	c, err := tx.ChangeByID(ctx, m.ChangeID)
	if err != nil || c == nil || c.Sends != m.MessageNo || c.ExpiredAt(now) {
		return userphone.Message{}, false, err
	}
	u, _, err := tx.GetUser(ctx, c.UserID)
	if err != nil {
		return userphone.Message{}, false, err
	}
	lang := templates.Lang(u.Locale, "")
	switch {
	case m.Kind == KindCode && c.Status == userphone.StatusAwaitingCode && !s.codeExpired(c, now):
		text := templates.CodeSMS(lang, s.smsCode(c.ID, m.MessageNo), s.originHost)
		return userphone.Message{Channel: userphone.ChannelSMS, To: c.PhoneNumber, Text: text, Lang: lang}, true, nil
	case m.Kind == KindConfirmChange && c.Status == userphone.StatusAwaitingEmailConfirmation && u.Email != "":
		link := s.cfg.ConfirmURL + "?token=" + url.QueryEscape(s.emailToken(c.ID, m.MessageNo))
		subject, text, htmlBody := templates.ConfirmChangeEmail(lang, phone.Mask(c.PhoneNumber), link, c.ExpiresAt)
		return userphone.Message{Channel: userphone.ChannelEmail, To: u.Email, Subject: subject, Text: text, HTML: htmlBody, Lang: lang}, true, nil
	}
	return userphone.Message{}, false, nil
}

// codeExpired reports whether c's newest code has outlived the code TTL.
func (s *Service) codeExpired(c *userphone.PhoneChange, now time.Time) bool {
	if s.endedTestNumber(c.PhoneNumber, now) {
		return true // a fixed code stops working with the test numbers
	}
	return c.LastSentAt != nil && !now.Before(c.LastSentAt.Add(s.cfg.CodeTTL))
}

// DeliveryFailed cancels the change that m belongs to, when m is still its
// current message, so that the user can start over with a new PUT.
func (s *Service) DeliveryFailed(ctx context.Context, m userphone.Outgoing, reason string) error {
	if m.Kind == KindNumberRemoved || m.Kind == KindNumberRequested {
		return nil // a notice to an owner; no change waits for it
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
		if _, _, err := s.lockUser(t, userID); err != nil {
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
