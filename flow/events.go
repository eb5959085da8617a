package flow

import (
	"context"
	"encoding/hex"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// record appends a step of change c to the trail: c's user, number and id,
// with the request's id and the client's IP as a keyed hash.
func (s *Service) record(t *txn, kind userphone.EventKind, c *userphone.PhoneChange, detail string) error {
	return s.recordEvent(t, userphone.Event{Kind: kind, UserID: c.UserID, ChangeID: c.ID, PhoneNumber: c.PhoneNumber, Detail: detail})
}

// recordEvent appends e to the trail at the transaction's time, with the
// request's id and the client's IP as a keyed hash, and keeps its kind for
// the observer.
func (s *Service) recordEvent(t *txn, e userphone.Event) error {
	meta := userphone.RequestMetaFrom(t.ctx)
	e.At, e.RequestID, e.ClientNetHash = t.now, meta.ID, s.networkHash(t)
	if meta.ClientIP != "" {
		e.ClientIPHash = hex.EncodeToString(s.mac("client-ip", meta.ClientIP)[:16])
	}
	if e.PhoneNumber != "" {
		e.DestPrefix = phone.Prefix(e.PhoneNumber)
	}
	if err := t.tx.AddEvent(t.ctx, e); err != nil {
		return err
	}
	t.steps = append(t.steps, e.Kind)
	return nil
}

// recordRefusal keeps a refused request in the trail. The request's own
// transaction rolled back, as a refusal changes nothing, so this is a
// transaction of its own; failing to write it must not change the answer.
func (s *Service) recordRefusal(ctx context.Context, userID, number string, refusal error) {
	e := userphone.AsError(refusal)
	if e == nil || limitOf(refusal) == "" {
		return
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.ObserveRefusal(limitOf(refusal))
	}
	err := s.inTxOnce(ctx, func(t *txn) error {
		return s.recordEvent(t, userphone.Event{Kind: userphone.EventRateLimited, UserID: userID, PhoneNumber: number, Detail: e.Detail})
	})
	if err != nil {
		s.log.Warn("could not record a refused request in the audit trail", "err", err)
	}
}
