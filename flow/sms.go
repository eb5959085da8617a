package flow

import (
	"cmp"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/phone"
)

// smsTarget is an SMS asked for: by whom, to which number, its range and
// the client's network.
type smsTarget struct {
	userID, number, prefix string
	// netHash is the keyed hash of the client's network; empty when the
	// call came from no client (a test, a tool).
	netHash string
}

// smsEvents are what the SMS limits count: sent codes and withheld ones
// alike, so that no count tells a withheld code (and so an owned number)
// from a sent one.
var smsEvents = []userphone.EventKind{userphone.EventSMSSent, userphone.EventSMSWithheld}

// quietSMS is the most SMS a network or a range may have had this hour
// and still count as quiet when the budget runs low: one, and its resend
// would be a second.
const quietSMS = 1

// Shares of the hourly budget (Limits.SMSPerHour): past BudgetOpenShare
// only quiet sources and known numbers get SMS, past BudgetQuietShare only
// known numbers.
const (
	BudgetOpenShare  = 0.5
	BudgetQuietShare = 0.9
)

// checkSMS decides whether an SMS for c may go out now. It locks the
// number, and the range and the client's network when their limits are
// on, so that their counts hold across replicas, then applies the user's
// allowance for the number, the network's and the range's limits and the
// budget. withhold is true for an SMS to a number someone else owns, past
// the share that strangers have together: the caller answers as if sent,
// so that no answer tells whether a number is someone's, and sends
// nothing.
func (s *Service) checkSMS(t *txn, c *userphone.PhoneChange) (withhold bool, err error) {
	tg := smsTarget{userID: c.UserID, number: c.PhoneNumber, prefix: phone.Prefix(c.PhoneNumber), netHash: s.networkHash(t)}
	l := s.cfg.Limits
	if err := s.lock(t, "number:"+tg.number, lockKey(l.SMSPerPrefixPerHour+l.SMSPerPrefixPerDay > 0, "prefix:"+tg.prefix),
		lockKey(l.SMSPerNetworkPerHour+l.SMSPerNetworkPerDay > 0 && tg.netHash != "", "net:"+tg.netHash)); err != nil {
		return false, err
	}
	err = checkWindows(t, userphone.EventQuery{Kinds: smsEvents, UserID: tg.userID, PhoneNumber: tg.number},
		hourly(l.SMSPerNumberPerHour, "SMS to this number", LimitNumberSMS), daily(l.SMSPerNumberPerDay, "SMS to this number", LimitNumberSMS))
	if err == nil && tg.netHash != "" {
		err = checkWindows(t, userphone.EventQuery{Kinds: smsEvents, ClientNetHash: tg.netHash},
			hourly(l.SMSPerNetworkPerHour, "SMS from your network", LimitNetworkSMS), daily(l.SMSPerNetworkPerDay, "SMS from your network", LimitNetworkSMS))
	}
	if err == nil {
		err = checkWindows(t, userphone.EventQuery{Kinds: smsEvents, DestPrefix: tg.prefix},
			hourly(l.SMSPerPrefixPerHour, "SMS to numbers of this range", LimitPrefixSMS), daily(l.SMSPerPrefixPerDay, "SMS to numbers of this range", LimitPrefixSMS))
	}
	if err == nil {
		err = s.checkBudget(t, tg)
	}
	if err != nil {
		return false, err
	}
	owner, sent, err := s.countByOthers(t, tg.number, tg.userID, smsEvents)
	share := l.SMSToOwnedNumberPerDay
	return owner != "" && share > 0 && sent >= share, err
}

// countByOthers names the user who has number verified, when that is
// someone other than userID (else ""), and counts the events of kinds for
// number today by everyone but its owner (or but userID, for a number
// nobody else owns). It runs the same statements either way, so that its
// time tells nothing of whose the number is.
func (s *Service) countByOthers(t *txn, number, userID string, kinds []userphone.EventKind) (otherOwner string, n int, err error) {
	owner, err := t.ownerOf(number)
	if err != nil {
		return "", 0, err
	}
	excluded := userID
	if owner != "" && owner != userID {
		otherOwner, excluded = owner, owner
	}
	n, _, err = countSince(t, userphone.EventQuery{Kinds: kinds, PhoneNumber: number, NotUserID: excluded}, 24*time.Hour)
	return otherOwner, n, err
}

// checkBudget lets an SMS into the hour's budget. Half of it is open to
// all. Past that only quiet sources (a network and a range with at most
// quietSMS this hour) and numbers the user has verified before get SMS;
// past BudgetQuietShare only the latter; past all of it nobody. A flood
// from new, heavy sources is refused long before the budget is gone, and
// one network alone cannot spend it (its own limit is far below).
//
// The open half is counted without a lock, and may overshoot by the SMS
// in flight at that moment; past it, the budget's lock serialises SMS
// across replicas, so that the shares hold exactly when it matters.
func (s *Service) checkBudget(t *txn, tg smsTarget) error {
	budget := s.cfg.Limits.SMSPerHour
	if budget <= 0 {
		return nil
	}
	n, _, err := countSince(t, userphone.EventQuery{Kinds: []userphone.EventKind{userphone.EventSMSSent}}, time.Hour)
	if err != nil || float64(n) < BudgetOpenShare*float64(budget) {
		return err
	}
	if err := s.lock(t, "budget"); err != nil {
		return err
	}
	n, oldest, err := countSince(t, userphone.EventQuery{Kinds: []userphone.EventKind{userphone.EventSMSSent}}, time.Hour)
	if err != nil {
		return err
	}
	wait := oldest.Add(time.Hour).Sub(t.now)
	if n >= budget {
		s.log.Error("the global SMS budget is used up; no SMS is sent until the hour rolls on", "budget_per_hour", budget)
		return budgetRefusal(wait)
	}
	if known, err := s.knownNumber(t, tg); err != nil || known {
		return err
	}
	if float64(n) < BudgetQuietShare*float64(budget) {
		quiet, err := s.quietSource(t, tg)
		if err != nil || quiet {
			return err
		}
	}
	s.log.Warn("the global SMS budget runs low; SMS from busy sources wait", "budget_per_hour", budget, "sent_this_hour", n)
	return budgetRefusal(wait)
}

func budgetRefusal(wait time.Duration) error {
	return &refusal{LimitSMSBudget, &userphone.Error{
		Code:       userphone.CodeServiceUnavailable,
		Detail:     "SMS cannot be sent right now; try again later.",
		RetryAfter: coarse(wait),
	}}
}

// knownAfter is how long ago a user must have verified a number for it to
// count as theirs when the budget runs low: a pumper who verifies the
// numbers it is paid for, to be let through later, must wait a day and
// still meets the network and range limits.
const knownAfter = 24 * time.Hour

// knownNumber reports whether the user verified the number before, at
// least knownAfter ago.
func (s *Service) knownNumber(t *txn, tg smsTarget) (bool, error) {
	q := userphone.EventQuery{Kinds: []userphone.EventKind{userphone.EventVerified}, UserID: tg.userID, PhoneNumber: tg.number}
	n, oldest, err := countSince(t, q, 10*365*24*time.Hour)
	return n > 0 && !oldest.After(t.now.Add(-knownAfter)), err
}

// quietSource reports whether the client's network and the number's range
// have had at most quietSMS this hour.
func (s *Service) quietSource(t *txn, tg smsTarget) (bool, error) {
	queries := []userphone.EventQuery{{Kinds: smsEvents, DestPrefix: tg.prefix}}
	if tg.netHash != "" {
		queries = append(queries, userphone.EventQuery{Kinds: smsEvents, ClientNetHash: tg.netHash})
	}
	for _, q := range queries {
		n, _, err := countSince(t, q, time.Hour)
		if err != nil || n > quietSMS {
			return false, err
		}
	}
	return true, nil
}

// networkHash is the keyed hash of the request's client network: its
// address cut to IPv4NetworkBits or IPv6NetworkBits. A 6to4 address
// (2002::/16) is its embedded IPv4 address, so that one IPv4 network is
// not many /48s. A request whose client address does not parse is of one
// network, "unknown", rather than of none; a call that came from no
// client (a tool, a test) is of none.
func (s *Service) networkHash(t *txn) string {
	meta := userphone.RequestMetaFrom(t.ctx)
	if meta.ClientIP == "" && meta.ID == "" {
		return ""
	}
	network := "unknown"
	if addr, err := netip.ParseAddr(meta.ClientIP); err == nil {
		network = s.networkOf(addr)
	}
	return hex.EncodeToString(s.mac("client-net", network)[:16])
}

// networkOf is the prefix that names addr's network.
func (s *Service) networkOf(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if b := addr.As16(); addr.Is6() && b[0] == 0x20 && b[1] == 0x02 {
		addr = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}) // 6to4
	}
	l, def := s.cfg.Limits, DefaultLimits()
	bits := cmp.Or(l.IPv6NetworkBits, def.IPv6NetworkBits)
	if addr.Is4() {
		bits = cmp.Or(l.IPv4NetworkBits, def.IPv4NetworkBits)
	}
	network, err := addr.Prefix(bits)
	if err != nil {
		return "unknown"
	}
	return network.String()
}

// lockKey is key when the limit it guards is on, else empty: a lock
// serialises every SMS of its range or network, which only a limit that
// counts them needs.
func lockKey(limitOn bool, key string) string {
	if !limitOn {
		return ""
	}
	return key
}

// lock takes the keys' locks in the order given (empty ones are skipped),
// then reads the clock again, so that a window never counts the wait for a
// racing request's lock against the user.
func (s *Service) lock(t *txn, keys ...string) error {
	for _, k := range keys {
		if k == "" || t.locked[k] {
			continue
		}
		if err := t.tx.Lock(t.ctx, k); err != nil {
			return err
		}
		if t.locked == nil {
			t.locked = map[string]bool{}
		}
		t.locked[k] = true
	}
	t.now = s.clock()
	return nil
}

// ownerOf returns the user who has number verified ("" for nobody), asking
// the store once per run.
func (t *txn) ownerOf(number string) (string, error) {
	if owner, ok := t.owners[number]; ok {
		return owner, nil
	}
	owner, _, err := t.tx.OwnerOf(t.ctx, number)
	if err != nil {
		return "", err
	}
	if t.owners == nil {
		t.owners = map[string]string{}
	}
	t.owners[number] = owner
	return owner, nil
}
