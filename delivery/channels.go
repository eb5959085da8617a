package delivery

import (
	"context"

	"github.com/pace/userphone"
)

// Channels sends e-mail and SMS each through its own provider.
type Channels struct {
	Email, SMS userphone.Sender
}

func (c Channels) Send(ctx context.Context, m userphone.Message) error {
	if m.Channel == userphone.ChannelSMS {
		return c.SMS.Send(ctx, m)
	}
	return c.Email.Send(ctx, m)
}
