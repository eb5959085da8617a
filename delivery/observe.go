package delivery

import (
	"context"
	"errors"
	"net"

	"github.com/pace/userphone"
)

// Observer is told the outcome of every attempt to send a message, for
// metrics. Its method must be quick and must not block.
type Observer interface {
	// ObserveDelivery is told of one attempt through provider; err is nil
	// when the provider took the message.
	ObserveDelivery(channel userphone.Channel, provider string, err error)
}

// Observed returns s, telling o of each of its sends as provider's
// ("smtp", "twilio", "webhook", "outbox"). With a nil o it returns s.
func Observed(s userphone.Sender, provider string, o Observer) userphone.Sender {
	if o == nil {
		return s
	}
	return observed{s: s, provider: provider, o: o}
}

type observed struct {
	s        userphone.Sender
	provider string
	o        Observer
}

func (d observed) Send(ctx context.Context, m userphone.Message) error {
	err := d.s.Send(ctx, m)
	d.o.ObserveDelivery(m.Channel, d.provider, err)
	return err
}

// The classes of failed sends.
const (
	// FailurePermanent: no retry can help (userphone.ErrPermanent); the
	// change is cancelled.
	FailurePermanent = "permanent"
	// FailureTimeout: the provider did not answer in time; retried.
	FailureTimeout = "timeout"
	// FailureTransient: any other failure (refused connections, 5xx, 429,
	// bad credentials); retried.
	FailureTransient = "transient"
)

// FailureClass tells how a send failed: FailurePermanent, FailureTimeout
// or FailureTransient. It is empty for nil.
func FailureClass(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, userphone.ErrPermanent):
		return FailurePermanent
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return FailureTimeout
	}
	return FailureTransient
}
