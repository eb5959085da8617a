package server

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone"
)

// The per-client-IP limit is a token bucket per address, kept in this
// process only: it takes the edge off floods and scanners before a request
// costs a token check or a database round trip. The limits that must hold
// across replicas (changes per user, SMS per number) live in the flow and
// count the audit trail in the database.

const (
	// ipSweepEvery is how often the limiter drops the buckets that have
	// refilled. A full bucket is the same as no bucket, so dropping it loses
	// nothing; with the default rate (20/s) and burst (40) a bucket is full
	// 2 s after its last request, so after a sweep only the addresses seen
	// in the last seconds remain. Once a minute keeps the sweep, a walk of
	// the map under the lock, rare (a few ms at the cap, once a minute).
	ipSweepEvery = time.Minute
	// ipMaxBuckets bounds the memory: about 60 bytes a bucket, so about
	// 6 MB at the cap. 100,000 addresses that each sent a request within
	// the refill time (2 s by default) is far more than one replica serves;
	// past it, per-address limits no longer tell a flood from its sources
	// anyway.
	ipMaxBuckets = 100_000
	// ipShedTo is what the map shrinks to when it reaches the cap and the
	// sweep could not free enough: arbitrary buckets are dropped (their
	// addresses get a fresh burst). Shrinking by a tenth makes the O(n)
	// walk happen at most once per 10,000 new addresses.
	ipShedTo = ipMaxBuckets * 9 / 10
	// ipv6PrefixBits: an IPv6 client is counted by its /64, the block a
	// single subscriber gets; counting single addresses would let one host
	// rotate through 2^64 of them, past the limit and into the map's cap.
	ipv6PrefixBits = 64
	// ipMaxWait caps the wait that a very low rate would compute.
	ipMaxWait = 24 * time.Hour
)

// ipLimiter holds a token bucket per client address. Buckets refill
// lazily, when their address comes again, so an idle address costs nothing
// but its map entry until the next sweep.
type ipLimiter struct {
	rate    float64 // tokens per second
	burst   float64 // the bucket's size
	maxKeys int
	shedTo  int
	now     func() time.Time
	epoch   time.Time // times are kept as nanoseconds since it (monotonic)

	mu        sync.Mutex
	buckets   map[netip.Addr]bucket
	lastSweep int64
}

type bucket struct {
	tokens float64
	at     int64 // when tokens was right, in ns since the limiter's epoch
}

// newIPLimiter returns a limiter that grants rate requests per second to an
// address, with bursts up to burst. now may be nil for the wall clock.
func newIPLimiter(rate float64, burst int, now func() time.Time) *ipLimiter {
	if now == nil {
		now = time.Now
	}
	return &ipLimiter{
		rate: rate, burst: float64(max(burst, 1)),
		maxKeys: ipMaxBuckets, shedTo: ipShedTo,
		now: now, epoch: now(),
		buckets: make(map[netip.Addr]bucket),
	}
}

// allow takes a token from key's bucket. Without one it takes nothing and
// says how long until one is there.
func (l *ipLimiter) allow(key netip.Addr) (ok bool, wait time.Duration) {
	now := int64(l.now().Sub(l.epoch))
	l.mu.Lock()
	defer l.mu.Unlock()
	if now-l.lastSweep >= int64(ipSweepEvery) {
		l.sweep(now)
	}
	b, found := l.buckets[key]
	if found {
		b = l.refill(b, now)
	} else {
		if len(l.buckets) >= l.maxKeys {
			l.shed(now)
		}
		b = bucket{tokens: l.burst, at: now}
	}
	if b.tokens >= 1 {
		b.tokens--
		l.buckets[key] = b
		return true, 0
	}
	l.buckets[key] = b
	return false, time.Duration(min((1-b.tokens)/l.rate, ipMaxWait.Seconds()) * float64(time.Second))
}

// refill adds what accrued since b was last right. A clock read before
// another goroutine's may arrive later; it adds nothing then.
func (l *ipLimiter) refill(b bucket, now int64) bucket {
	if elapsed := now - b.at; elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+float64(elapsed)/float64(time.Second)*l.rate)
		b.at = now
	}
	return b
}

// sweep drops the buckets that are full by now: they hold no information.
func (l *ipLimiter) sweep(now int64) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if l.refill(b, now).tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// shed makes room at the cap: first the lossless sweep, then, when that
// freed too little, arbitrary buckets go until the map is at shedTo.
func (l *ipLimiter) shed(now int64) {
	l.sweep(now)
	for k := range l.buckets {
		if len(l.buckets) <= l.shedTo {
			break
		}
		delete(l.buckets, k)
	}
}

// size reports how many buckets are kept.
func (l *ipLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// clientKey names the bucket of a client address as gin's ClientIP returns
// it: IPv4 (also when mapped into IPv6) by its address, IPv6 by its /64.
// What does not parse (no address at all, as on a Unix socket) shares the
// zero key.
func clientKey(ip string) netip.Addr {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(ipv6PrefixBits); err == nil {
			return p.Addr()
		}
	}
	return a
}

// limitClients answers 429 rate-limited to a client address past its
// budget, before anything else (authentication, validation, the database)
// runs for the request. Probes (/health/*) are never limited: a flood must
// not get a replica restarted or taken out of its load balancer.
func (l *ipLimiter) limitClients(c *gin.Context) {
	if strings.HasPrefix(c.FullPath(), "/health/") {
		c.Next()
		return
	}
	ok, wait := l.allow(clientKey(c.ClientIP()))
	if !ok {
		secs := max(int64(math.Ceil(wait.Seconds())), 1)
		unit := "seconds"
		if secs == 1 {
			unit = "second"
		}
		writeError(c, &userphone.Error{
			Code:       userphone.CodeRateLimited,
			Detail:     fmt.Sprintf("Too many requests from your address; try again in %d %s.", secs, unit),
			RetryAfter: time.Duration(secs) * time.Second,
		})
		return
	}
	c.Next()
}
