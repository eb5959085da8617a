package flow

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/pace/userphone"
)

// record appends an event for change c (which may be nil) to the trail,
// with the request's id and the client's IP as a keyed hash.
func (s *Service) record(ctx context.Context, tx userphone.Tx, kind userphone.EventKind, userID string, c *userphone.PhoneChange, number, detail string, now time.Time) error {
	meta := userphone.RequestMetaFrom(ctx)
	e := userphone.Event{At: now, Kind: kind, UserID: userID, PhoneNumber: number, RequestID: meta.ID, Detail: detail}
	if c != nil {
		e.ChangeID = c.ID
		if e.PhoneNumber == "" {
			e.PhoneNumber = c.PhoneNumber
		}
	}
	if meta.ClientIP != "" {
		e.ClientIPHash = hex.EncodeToString(s.mac("client-ip", meta.ClientIP)[:16])
	}
	if err := tx.AddEvent(ctx, e); err != nil {
		return err
	}
	if steps, ok := ctx.Value(journalKey{}).(*journal); ok {
		*steps = append(*steps, kind)
	}
	return nil
}

// recordRefusal keeps a refused request in the trail. The request's own
// transaction rolled back, as a refusal changes nothing, so this is a
// transaction of its own; failing to write it must not change the answer.
func (s *Service) recordRefusal(ctx context.Context, userID, number string, refusal error) {
	e := userphone.AsError(refusal)
	if e == nil || (e.Code != userphone.CodeRateLimited && e.Code != userphone.CodeServiceUnavailable) {
		return
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.ObserveRefusal(limitOf(refusal))
	}
	err := s.inTxOnce(ctx, func(ctx context.Context, tx userphone.Tx) error {
		return s.record(ctx, tx, userphone.EventRateLimited, userID, nil, number, e.Detail, s.clock())
	})
	if err != nil {
		s.log.Warn("could not record a refused request in the audit trail", "err", err)
	}
}
