package flow

import (
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

// issueEmail gives c a new e-mail token, which voids the previous link, and
// queues the confirmation e-mail.
func (s *Service) issueEmail(c *userphone.PhoneChange, user userphone.User, now time.Time, out *outbox) error {
	if user.Email == "" {
		return userphone.Errorf(userphone.CodeEmailRequired,
			"Changing a verified number needs a confirmation e-mail, but no e-mail address is known for this user; sign in with a token that carries the email claim.")
	}
	token, err := newToken()
	if err != nil {
		return err
	}
	c.EmailTokenHash = s.tokenHash(token)
	s.markSent(c, now)
	link := s.cfg.ConfirmURL + "?token=" + url.QueryEscape(token)
	subject, text := templates.ConfirmChangeEmail(templates.Lang(user.Locale, ""), phone.Mask(c.PhoneNumber), link, c.ExpiresAt)
	out.add(userphone.Message{Channel: userphone.ChannelEmail, To: user.Email, Subject: subject, Text: text, Kind: KindConfirmChange})
	return nil
}

// issueCode gives c a new code, which voids the previous one, and queues
// the SMS.
func (s *Service) issueCode(c *userphone.PhoneChange, user userphone.User, now time.Time, out *outbox) error {
	code, err := newCode()
	if err != nil {
		return err
	}
	c.CodeHash = s.codeHash(c.ID, code)
	s.markSent(c, now)
	text := templates.CodeSMS(templates.Lang(user.Locale, ""), code)
	out.add(userphone.Message{Channel: userphone.ChannelSMS, To: c.PhoneNumber, Text: text, Kind: KindCode})
	return nil
}

func (s *Service) markSent(c *userphone.PhoneChange, now time.Time) {
	c.Sends++
	c.LastSentAt = &now
}

func numberRemovedMessage(u userphone.User, number string) (userphone.Message, bool) {
	if u.Email == "" {
		return userphone.Message{}, false
	}
	subject, text := templates.NumberRemovedEmail(templates.Lang(u.Locale, ""), phone.Mask(number))
	return userphone.Message{Channel: userphone.ChannelEmail, To: u.Email, Subject: subject, Text: text, Kind: KindNumberRemoved}, true
}

func itoa(n int) string { return strconv.Itoa(n) }
