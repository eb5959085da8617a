package auth

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/pace/userphone"
)

// Cache defaults. A signature check costs about 100 µs, half of a whole
// GET /user/phone on SQLite, while a client sends the same token with every
// request until it expires.
const (
	// DefaultCacheTTL caps how long a verified token is trusted without a
	// new check, so that a key the issuer withdraws, or a linked identity
	// the policy starts to require, takes effect within minutes.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheSize bounds the memory: about 300 bytes an entry, so
	// under 10 MB for the tokens of 30,000 active users.
	DefaultCacheSize = 30_000
)

// Cached wraps v so that a token verified once is trusted again until its
// expiry, for at most ttl. Only successes are kept, under the token's
// SHA-256, never the token itself. ttl or size of 0 take the defaults.
func Cached(v Verifier, ttl time.Duration, size int, clock func() time.Time) Verifier {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return newCached(v, ttl, 0, size, clock)
}

// newCached is the cache of both kinds: refusalTTL 0 keeps no refusals.
func newCached(v Verifier, ttl, refusalTTL time.Duration, size int, clock func() time.Time) *cachedVerifier {
	if size <= 0 {
		size = DefaultCacheSize
	}
	if clock == nil {
		clock = time.Now
	}
	return &cachedVerifier{next: v, ttl: ttl, refusalTTL: refusalTTL, size: size, clock: clock, entries: map[[32]byte]cacheEntry{}}
}

// CachedIntrospection wraps an Introspector: an active answer is trusted
// for at most ttl (0: DefaultIntrospectionCache), never past the token's
// exp, and a refusal is kept briefly, so that a client retrying a dead
// token does not ask the issuer each time. An issuer that cannot be asked
// is never cached.
func CachedIntrospection(v Verifier, ttl time.Duration, clock func() time.Time) Verifier {
	return newCached(v, cmp.Or(ttl, DefaultIntrospectionCache), refusalCache, 0, clock)
}

type cachedVerifier struct {
	next  Verifier
	ttl   time.Duration
	size  int
	clock func() time.Time
	// refusalTTL is how long a refused token stays refused; 0 keeps
	// refusals out of the cache.
	refusalTTL time.Duration

	mu      sync.RWMutex
	entries map[[32]byte]cacheEntry
	// expiries orders the entries by when they expire, so that each store
	// removes the expired ones: the cache holds the live tokens, not the
	// most it ever held.
	expiries expiryHeap
}

// expiry is one entry's key and end.
type expiry struct {
	until time.Time
	key   [32]byte
}

// expiryHeap is a min-heap of expiries (container/heap).
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type cacheEntry struct {
	id    userphone.Identity
	err   error // a refusal (unauthorized), when refusals are kept
	until time.Time
}

func (c *cachedVerifier) Verify(ctx context.Context, rawToken string) (userphone.Identity, error) {
	if rawToken == "" {
		return c.next.Verify(ctx, rawToken)
	}
	key := sha256.Sum256([]byte(rawToken))
	now := c.clock()
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if ok && now.Before(e.until) {
		return e.id, e.err
	}
	id, err := c.next.Verify(ctx, rawToken)
	if err != nil {
		if c.refusalTTL > 0 && userphone.ErrorCodeOf(err) == userphone.CodeUnauthorized {
			c.store(key, cacheEntry{err: err, until: now.Add(c.refusalTTL)}, now)
		}
		return id, err
	}
	// Trust it until it expires (without the clock-drift leeway), or ttl.
	until := now.Add(c.ttl)
	if !id.Expiry.IsZero() && id.Expiry.Before(until) {
		until = id.Expiry
	}
	c.store(key, cacheEntry{id: id, until: until}, now)
	return id, nil
}

func (c *cachedVerifier) store(key [32]byte, e cacheEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.expiries) > 0 && !now.Before(c.expiries[0].until) {
		x := heap.Pop(&c.expiries).(expiry)
		if old, ok := c.entries[x.key]; ok && !now.Before(old.until) {
			delete(c.entries, x.key)
		}
	}
	if len(c.entries) >= c.size {
		// Full of live tokens: start over rather than grow; the cost is
		// one signature check per token.
		clear(c.entries)
		c.expiries = c.expiries[:0]
	}
	c.entries[key] = e
	heap.Push(&c.expiries, expiry{until: e.until, key: key})
}

// Len is how many tokens the cache holds, for tests and metrics.
func (c *cachedVerifier) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Ready passes through to the wrapped verifier, where it has one.
func (c *cachedVerifier) Ready() error {
	if r, ok := c.next.(interface{ Ready() error }); ok {
		return r.Ready()
	}
	return nil
}
