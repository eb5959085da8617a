// Package flow owns the phone number change flow: who may change what,
// when an e-mail or an SMS goes out, how codes are checked, when a change
// expires and who owns a number. It knows nothing of HTTP; the server
// package adapts it to the generated strict-server interface.
package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pace/userphone"
)

// Config holds the flow's rules. Every field has a default in the
// configuration, with its reason given there.
type Config struct {
	// ProcessTTL is how long a change may take from request to verification.
	ProcessTTL time.Duration
	// ResendCooldown is the least time between two messages for one change.
	ResendCooldown time.Duration
	// MaxCodeAttempts is how many wrong codes end a change.
	MaxCodeAttempts int
	// Secret keys the hashes of codes and e-mail tokens; at least 32 bytes.
	Secret []byte
	// ConfirmURL is the absolute URL of the confirmation page; the e-mail
	// link is ConfirmURL?token=….
	ConfirmURL string
	Limits     Limits
	// Observer is told of the flow's steps, for metrics; nil tells no one.
	Observer Observer
}

// Observer is told of the flow's steps, for metrics. It hears of a step
// only once the transaction that recorded it has committed: never of one
// that rolled back, and once for a transaction that ran again after
// losing a race. Its methods must be quick and must not block.
type Observer interface {
	// ObserveStep is told of each step the audit trail kept.
	ObserveStep(kind userphone.EventKind)
	// ObserveRefusal is told which limit refused a request (LimitCooldown,
	// LimitUserChanges, LimitNumberSMS, LimitSMSBudget), whether or not
	// the refusal reached the audit trail.
	ObserveRefusal(limit string)
}

// Queue takes messages to send in the transaction of the state change that
// announces them, so a committed change never loses its message and a
// rolled-back one never sends it.
type Queue interface {
	Enqueue(ctx context.Context, tx userphone.Tx, m userphone.Outgoing) error
}

// Service runs the flow on a store, and queues its messages.
type Service struct {
	store userphone.Store
	queue Queue
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Service. now may be nil for the wall clock.
func New(store userphone.Store, queue Queue, cfg Config, log *slog.Logger, now func() time.Time) (*Service, error) {
	if len(cfg.Secret) < 32 {
		return nil, errors.New("flow: the secret must be at least 32 bytes")
	}
	if cfg.ProcessTTL <= 0 || cfg.MaxCodeAttempts <= 0 || cfg.ResendCooldown < 0 || cfg.ConfirmURL == "" {
		return nil, fmt.Errorf("flow: incomplete configuration %+v", cfg)
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, queue: queue, cfg: cfg, log: log, now: now}, nil
}

// conflictRetries bounds how often a transaction that lost a race is run
// again; a second run sees the winner's commit, so more than a few means
// something else is wrong.
const conflictRetries = 4

// inTx runs fn in a transaction, again when it lost a race. fn records
// its steps with the ctx it is given, so that the observer hears of them
// once the transaction commits.
func (s *Service) inTx(ctx context.Context, fn func(ctx context.Context, tx userphone.Tx, now time.Time) error) error {
	var err error
	for range conflictRetries {
		err = s.inTxOnce(ctx, func(ctx context.Context, tx userphone.Tx) error {
			return fn(ctx, tx, s.clock())
		})
		if !errors.Is(err, userphone.ErrConflict) {
			break
		}
		// No error text in the log: a driver may quote the conflicting value.
		s.log.Debug("transaction lost a race; running it again")
	}
	return err
}

// inTxOnce runs fn in one transaction and, once it has committed, tells the
// observer of the steps fn recorded.
func (s *Service) inTxOnce(ctx context.Context, fn func(ctx context.Context, tx userphone.Tx) error) error {
	if s.cfg.Observer == nil {
		return s.store.InTx(ctx, func(tx userphone.Tx) error { return fn(ctx, tx) })
	}
	var steps journal
	err := s.store.InTx(ctx, func(tx userphone.Tx) error {
		steps = steps[:0] // a store that runs fn again starts the list over
		return fn(context.WithValue(ctx, journalKey{}, &steps), tx)
	})
	if err == nil {
		for _, kind := range steps {
			s.cfg.Observer.ObserveStep(kind)
		}
	}
	return err
}

// journal lists the steps a transaction recorded, until it commits.
type journal []userphone.EventKind

type journalKey struct{}

// clock returns the time at the precision the store keeps.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// SweepExpired closes every change that has passed its time limit. Reads
// treat such changes as expired anyway; the sweep keeps the table honest
// for operators and frees the one-open-change slot.
func (s *Service) SweepExpired(ctx context.Context) (int64, error) {
	var n int64
	err := s.inTxOnce(ctx, func(ctx context.Context, tx userphone.Tx) error {
		now := s.clock()
		expired, err := tx.ExpireDue(ctx, now)
		for i := range expired {
			c := &expired[i]
			if err == nil {
				err = s.record(ctx, tx, userphone.EventExpired, c.UserID, c, "", "sweep", now)
			}
		}
		n = int64(len(expired))
		return err
	})
	return n, err
}

// Purge deletes changes that ended more than olderThan ago.
func (s *Service) Purge(ctx context.Context, olderThan time.Duration) (int64, error) {
	var n int64
	err := s.store.InTx(ctx, func(tx userphone.Tx) error {
		var err error
		n, err = tx.PurgeClosedBefore(ctx, s.clock().Add(-olderThan))
		return err
	})
	return n, err
}

// view builds the API's picture of a user's phone.
func view(u userphone.User, open *userphone.PhoneChange) userphone.Phone {
	p := userphone.Phone{UserID: u.ID, Pending: open}
	switch {
	case u.PhoneNumber != "":
		p.Number, p.Verified = u.PhoneNumber, true
	case open != nil:
		p.Number = open.PhoneNumber
	}
	return p
}

// openChange returns the user's open change, closing it first if its time
// limit has passed.
func (s *Service) openChange(ctx context.Context, tx userphone.Tx, userID string, now time.Time) (*userphone.PhoneChange, error) {
	c, err := tx.OpenChange(ctx, userID)
	if err != nil || c == nil {
		return nil, err
	}
	if c.ExpiredAt(now) {
		return nil, s.expire(ctx, tx, c, now)
	}
	return c, nil
}

// expire closes c as expired and records it.
func (s *Service) expire(ctx context.Context, tx userphone.Tx, c *userphone.PhoneChange, now time.Time) error {
	c.Close(userphone.StatusExpired, "", now)
	c.UpdatedAt = now
	if err := tx.SaveChange(ctx, c); err != nil {
		return err
	}
	return s.record(ctx, tx, userphone.EventExpired, c.UserID, c, "", "", now)
}

// cancel closes c as cancelled for reason and records it.
func (s *Service) cancel(ctx context.Context, tx userphone.Tx, c *userphone.PhoneChange, reason string, now time.Time) error {
	c.Close(userphone.StatusCancelled, reason, now)
	c.UpdatedAt = now
	if err := tx.SaveChange(ctx, c); err != nil {
		return err
	}
	return s.record(ctx, tx, userphone.EventCancelled, c.UserID, c, "", reason, now)
}
