// Package flow owns the phone number change flow: who may change what,
// when an e-mail or an SMS goes out, how codes are checked, which abuse
// limits refuse a request, when a change expires and who owns a number. It knows nothing of HTTP; the server
// package adapts it to the generated strict-server interface.
package flow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/phone"
)

// Config holds the flow's rules. DefaultConfig gives each its default,
// with the reason next to it.
type Config struct {
	// ProcessTTL is how long a change may take from request to verification.
	ProcessTTL time.Duration
	// ResendCooldown is the least time between two messages for one change.
	ResendCooldown time.Duration
	// MaxCodeAttempts is how many wrong codes end a change.
	MaxCodeAttempts int
	// CodeTTL is how long an SMS code stays valid; asking again sends a
	// new one. See MinCodeTTL.
	CodeTTL time.Duration
	// OriginBoundCodes ends each SMS with the origin-bound code line
	// ("@host #123456") for ConfirmURL's host, so that browsers (WebOTP)
	// and phone keyboards offer the code to that site only.
	OriginBoundCodes bool
	// Secret keys the hashes of codes and e-mail tokens; see CheckSecret.
	Secret []byte
	// ConfirmURL is the absolute URL of the confirmation page; the e-mail
	// link is ConfirmURL?token=….
	ConfirmURL string
	Limits     Limits
	// TestNumbers are numbers whose changes send no SMS: each one's fixed
	// code verifies it (see testnumbers.go). None by default.
	TestNumbers phone.TestNumbers
	// TestNumbersUntil ends the test numbers; zero is never.
	TestNumbersUntil time.Time
	// Observer is told of the flow's steps, for metrics; nil tells no one.
	Observer Observer
}

// DefaultConfig is the flow's rules unless an operator says otherwise. The
// secret and the confirmation page's URL are the deployment's own, so
// they have no default.
func DefaultConfig() Config {
	return Config{
		// PACE's documented time limit for a whole change.
		ProcessTTL: 24 * time.Hour,
		// One message a minute per change stops a user's retries from
		// flooding a phone or a mailbox.
		ResendCooldown: time.Minute,
		// Five guesses at a 6-digit code succeed with odds of 1 in 200,000.
		MaxCodeAttempts: 5,
		// Time to switch apps and type six digits, with room for a slow
		// SMS; a code phished or read off a lock screen is dead soon after.
		CodeTTL: 10 * time.Minute,
		// Autofill for the right site only; a phishing page gets none.
		OriginBoundCodes: true,
		Limits:           DefaultLimits(),
	}
}

// MinCodeTTL is the least CodeTTL: an SMS may take a while to arrive,
// and a code that dies on the way helps no one.
const MinCodeTTL = time.Minute

// MinSecretBytes is the least length of Config.Secret: the size of
// SHA-256's output, so that the key is never the weak part of the HMACs.
const MinSecretBytes = 32

// CheckSecret accepts a secret that is long enough to key the flow's HMACs.
func CheckSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("the secret has %d bytes; it needs at least %d", len(secret), MinSecretBytes)
	}
	return nil
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
	Enqueue(ctx context.Context, tx userphone.Tx, ms ...userphone.Outgoing) error
}

// Service runs the flow on a store, and queues its messages.
type Service struct {
	store userphone.Store
	queue Queue
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	// originHost is the host of the SMS's origin-bound code line; empty
	// for none.
	originHost string
	// endOfTestNumbers logs, once, that the test numbers have ended.
	endOfTestNumbers sync.Once
}

// New returns a Service. now may be nil for the wall clock, log nil to
// discard.
func New(store userphone.Store, queue Queue, cfg Config, log *slog.Logger, now func() time.Time) (*Service, error) {
	if err := CheckSecret(cfg.Secret); err != nil {
		return nil, fmt.Errorf("flow: %w", err)
	}
	if cfg.ProcessTTL <= 0 || cfg.MaxCodeAttempts <= 0 || cfg.ResendCooldown < 0 || cfg.ConfirmURL == "" {
		return nil, fmt.Errorf("flow: incomplete configuration %+v", cfg)
	}
	if cfg.CodeTTL < MinCodeTTL || cfg.CodeTTL > cfg.ProcessTTL {
		return nil, fmt.Errorf("flow: the code TTL %v must be at least %v and at most the process TTL %v", cfg.CodeTTL, MinCodeTTL, cfg.ProcessTTL)
	}
	u, err := url.Parse(cfg.ConfirmURL)
	if err != nil || u.Hostname() == "" {
		return nil, fmt.Errorf("flow: the confirmation URL %q has no host", cfg.ConfirmURL)
	}
	if now == nil {
		now = time.Now
	}
	s := &Service{store: store, queue: queue, cfg: cfg, log: logs.OrDiscard(log), now: now}
	if cfg.OriginBoundCodes {
		s.originHost = u.Hostname()
	}
	if err := checkTestNumbers(s); err != nil {
		return nil, err
	}
	return s, nil
}

// txn is one run of one of the flow's transactions: what every rule in it
// needs, so that a rule's parameters name only what varies.
type txn struct {
	ctx context.Context
	tx  userphone.Tx
	// now is the time of this run, at the store's precision.
	now time.Time
	// steps lists the steps recorded, for the observer once the
	// transaction has committed.
	steps []userphone.EventKind
	// emailUnverified is set when the caller's token says its e-mail
	// address is not verified: it may not receive a confirmation link.
	emailUnverified bool
	// outgoing holds the messages this run announces; they are queued in
	// one insert just before the commit (a round trip per job would cost
	// more than the rest of the request).
	outgoing []userphone.Outgoing
	// locked holds the keys this run has locked: a lock lasts until the
	// transaction ends, so taking it again would only cost a round trip.
	locked map[string]bool
	// owners memoizes the verified owner of a number, which cannot change
	// within a run: the number's lock is held before it is asked.
	owners map[string]string
}

// announce queues m with the transaction's other messages.
func (t *txn) announce(m userphone.Outgoing) { t.outgoing = append(t.outgoing, m) }

// upsertUser remembers the identity (but not an e-mail address the token
// calls unverified) and locks the user's row, then reads the clock again:
// a cool-down or a window must not count the wait for a racing request's
// lock against the user.
func (s *Service) upsertUser(t *txn, id userphone.Identity) (userphone.User, error) {
	if id.EmailUnverified {
		id.Email = ""
		t.emailUnverified = true
	}
	user, err := t.tx.UpsertUser(t.ctx, id, t.now)
	t.now = s.clock()
	return user, err
}

// lockUser locks the user's row, then reads the clock again (see
// upsertUser).
func (s *Service) lockUser(t *txn, userID string) (userphone.User, bool, error) {
	user, found, err := t.tx.LockUser(t.ctx, userID)
	t.now = s.clock()
	return user, found, err
}

// conflictRetries bounds how often a transaction that lost a race is run
// again; a second run sees the winner's commit, so more than a few means
// something else is wrong.
const conflictRetries = 4

// inTx runs fn in a transaction, again when it lost a race, and tells the
// observer of the steps fn recorded once they have committed.
func (s *Service) inTx(ctx context.Context, fn func(t *txn) error) error {
	var err error
	for range conflictRetries {
		err = s.inTxOnce(ctx, fn)
		if !errors.Is(err, userphone.ErrConflict) {
			break
		}
		// No error text in the log: a driver may quote the conflicting value.
		s.log.Debug("transaction lost a race; running it again")
	}
	return err
}

// inTxOnce runs fn in one transaction and, once it has committed, tells
// the observer of the steps fn recorded.
func (s *Service) inTxOnce(ctx context.Context, fn func(t *txn) error) error {
	var t *txn
	err := s.store.InTx(ctx, func(tx userphone.Tx) error {
		// A store that runs fn again starts with a fresh txn.
		t = &txn{ctx: ctx, tx: tx, now: s.clock()}
		if err := fn(t); err != nil || len(t.outgoing) == 0 {
			return err
		}
		return s.queue.Enqueue(ctx, tx, t.outgoing...)
	})
	if err == nil && s.cfg.Observer != nil && t != nil {
		for _, kind := range t.steps {
			s.cfg.Observer.ObserveStep(kind)
		}
	}
	return err
}

// clock returns the time at the precision the store keeps.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// SweepExpired closes every change that has passed its time limit. Reads
// treat such changes as expired anyway; the sweep keeps the table honest
// for operators and frees the one-open-change slot.
func (s *Service) SweepExpired(ctx context.Context) (int64, error) {
	var n int64
	err := s.inTxOnce(ctx, func(t *txn) error {
		expired, err := t.tx.ExpireDue(t.ctx, t.now)
		for i := range expired {
			if err == nil {
				err = s.record(t, userphone.EventExpired, &expired[i], "sweep")
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
func (s *Service) openChange(t *txn, userID string) (*userphone.PhoneChange, error) {
	c, err := t.tx.OpenChange(t.ctx, userID)
	if err != nil || c == nil {
		return nil, err
	}
	if c.ExpiredAt(t.now) {
		return nil, s.expire(t, c)
	}
	return c, nil
}

// expire closes c as expired and records it.
func (s *Service) expire(t *txn, c *userphone.PhoneChange) error {
	return s.close(t, c, userphone.StatusExpired, "", userphone.EventExpired)
}

// cancel closes c as cancelled for reason and records it.
func (s *Service) cancel(t *txn, c *userphone.PhoneChange, reason string) error {
	return s.close(t, c, userphone.StatusCancelled, reason, userphone.EventCancelled)
}

func (s *Service) close(t *txn, c *userphone.PhoneChange, status userphone.ChangeStatus, reason string, kind userphone.EventKind) error {
	c.Close(status, reason, t.now)
	c.UpdatedAt = t.now
	if err := t.tx.SaveChange(t.ctx, c); err != nil {
		return err
	}
	return s.record(t, kind, c, reason)
}
