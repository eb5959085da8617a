package main

import (
	"log/slog"
	"path/filepath"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
)

// newSender picks the providers the configuration names; a channel without
// one goes to the dev outbox, with a notice that says so. obs, if not nil,
// hears of every attempt, by provider.
func newSender(cfg config, log *slog.Logger, obs delivery.Observer) (userphone.Sender, error) {
	outbox := delivery.NewOutbox(filepath.Join(cfg.App.Store.DataDir, delivery.OutboxFile), log)
	c := delivery.Channels{Email: delivery.Observed(outbox, "outbox", obs), SMS: delivery.Observed(outbox, "outbox", obs)}

	d := cfg.Delivery
	if d.SMTP.URL == "" {
		log.Warn("no SMTP server configured (USERPHONE_SMTP_URL): e-mails go to the dev outbox", "path", outbox.Path())
	} else {
		if d.SMTP.From == "" {
			return nil, &settingError{"USERPHONE_MAIL_FROM", "must be set with USERPHONE_SMTP_URL: the sender address, e.g. noreply@example.com"}
		}
		smtp, err := delivery.NewSMTP(d.SMTP, log)
		if err != nil {
			return nil, &settingError{"USERPHONE_SMTP_URL", err.Error()}
		}
		c.Email = delivery.Observed(smtp, "smtp", obs)
	}

	switch d.SMSProvider {
	case "twilio":
		tw, err := delivery.NewTwilio(d.Twilio, log)
		if err != nil {
			return nil, &settingError{"USERPHONE_TWILIO_ACCOUNT_SID", err.Error()}
		}
		c.SMS = delivery.Observed(tw, "twilio", obs)
	case "webhook":
		wh, err := delivery.NewWebhook(d.Webhook, log)
		if err != nil {
			return nil, &settingError{"USERPHONE_SMS_WEBHOOK_URL", err.Error()}
		}
		c.SMS = delivery.Observed(wh, "webhook", obs)
	default:
		log.Warn("no SMS provider configured (USERPHONE_SMS_PROVIDER): SMS go to the dev outbox", "path", outbox.Path())
	}
	return c, nil
}
