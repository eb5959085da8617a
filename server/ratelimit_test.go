package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/openapi"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

func wantAllowed(t *testing.T, l *ipLimiter, key netip.Addr, n int) {
	t.Helper()
	for i := range n {
		if ok, wait := l.allow(key); !ok {
			t.Fatalf("request %d of %d from %v refused, wait %v", i+1, n, key, wait)
		}
	}
}

func wantRefused(t *testing.T, l *ipLimiter, key netip.Addr, wantWait time.Duration) {
	t.Helper()
	ok, wait := l.allow(key)
	if ok {
		t.Fatalf("request from %v allowed, want refused", key)
	}
	if (wait - wantWait).Abs() > time.Microsecond {
		t.Fatalf("wait %v, want %v", wait, wantWait)
	}
}

func TestIPLimiterBurstThenRate(t *testing.T) {
	clk := newFakeClock()
	l := newIPLimiter(2, 3, clk.Now) // 2/s, bursts of 3

	wantAllowed(t, l, addrA, 3)
	wantRefused(t, l, addrA, 500*time.Millisecond)
	// A refused request takes nothing: the wait only shrinks with time.
	wantRefused(t, l, addrA, 500*time.Millisecond)
	clk.Advance(250 * time.Millisecond)
	wantRefused(t, l, addrA, 250*time.Millisecond)
	clk.Advance(250 * time.Millisecond)
	wantAllowed(t, l, addrA, 1)
	wantRefused(t, l, addrA, 500*time.Millisecond)

	// A long pause refills to the burst, not beyond.
	clk.Advance(time.Hour)
	wantAllowed(t, l, addrA, 3)
	wantRefused(t, l, addrA, 500*time.Millisecond)

	// Another address has its own bucket.
	wantAllowed(t, l, addrB, 3)
	wantRefused(t, l, addrB, 500*time.Millisecond)
}

func TestIPLimiterSteadyRate(t *testing.T) {
	clk := newFakeClock()
	l := newIPLimiter(20, 40, clk.Now)
	wantAllowed(t, l, addrA, 40)
	// After the burst, 20 a second: one every 50 ms.
	granted := 0
	for range 1000 { // 10 s in 10 ms steps
		clk.Advance(10 * time.Millisecond)
		if ok, _ := l.allow(addrA); ok {
			granted++
		}
	}
	if granted != 200 {
		t.Fatalf("%d requests granted in 10 s at 20/s", granted)
	}
}

func TestIPLimiterSweepDropsOnlyFullBuckets(t *testing.T) {
	clk := newFakeClock()
	l := newIPLimiter(1, 10, clk.Now) // a bucket refills in 10 s
	for i := range 100 {
		l.allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	if n := l.size(); n != 100 {
		t.Fatalf("%d buckets, want 100", n)
	}
	// The sweep runs with the first request a minute after the last one.
	// addrA drains its bucket 5 s before, so only its bucket is not full
	// by then.
	clk.Advance(ipSweepEvery - 5*time.Second)
	wantAllowed(t, l, addrA, 10)
	if n := l.size(); n != 101 {
		t.Fatalf("%d buckets before the sweep, want 101", n)
	}
	clk.Advance(5 * time.Second)
	l.allow(addrB)
	if n := l.size(); n != 2 {
		t.Fatalf("%d buckets after the sweep, want addrA's and addrB's", n)
	}
	// Dropping a full bucket forgets nothing: the address starts full.
	clk.Advance(ipSweepEvery)
	l.allow(addrA) // the sweep drops both, then addrA gets a new bucket
	if n := l.size(); n != 1 {
		t.Fatalf("%d buckets, want 1", n)
	}
	wantAllowed(t, l, addrA, 9)
	wantRefused(t, l, addrA, time.Second)
}

func TestIPLimiterMemoryIsBounded(t *testing.T) {
	clk := newFakeClock()
	l := newIPLimiter(0.001, 1, clk.Now) // nothing refills during the test
	l.maxKeys, l.shedTo = 1000, 900
	for i := range 20_000 {
		key := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		wantAllowed(t, l, key, 1)
		if n := l.size(); n > l.maxKeys {
			t.Fatalf("%d buckets after %d addresses, cap %d", n, i+1, l.maxKeys)
		}
	}
	// The newest address keeps its bucket, so it stays limited.
	wantRefused(t, l, netip.AddrFrom4([4]byte{10, 0, 78, 31}), 1000*time.Second)

	// At the cap, the lossless sweep comes first: full buckets go, and
	// drained ones stay.
	l = newIPLimiter(1, 1, clk.Now)
	l.maxKeys, l.shedTo = 10, 9
	for i := range 5 {
		l.allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	clk.Advance(time.Second) // the first five are full again
	for i := 5; i < 11; i++ {
		l.allow(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	if n := l.size(); n != 6 {
		t.Fatalf("%d buckets, want the 6 drained ones", n)
	}
}

func TestIPLimiterConcurrentGrantsExactlyTheBurst(t *testing.T) {
	clk := newFakeClock()
	l := newIPLimiter(1, 50, clk.Now)
	keys := []netip.Addr{addrA, addrB, netip.MustParseAddr("2001:db8::1")}
	var granted [3]atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 100 {
				k := (g + i) % len(keys)
				if ok, _ := l.allow(keys[k]); ok {
					granted[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		if n := granted[k].Load(); n != 50 {
			t.Errorf("%v: %d granted, want the burst of 50", keys[k], n)
		}
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":                  "192.0.2.7",
		"::ffff:192.0.2.7":           "192.0.2.7",
		"2001:db8:1:2:aaaa::1":       "2001:db8:1:2::",
		"2001:db8:1:2:ffff:ffff::77": "2001:db8:1:2::",
		"fe80::1%eth0":               "fe80::",
		"":                           "invalid IP",
		"<nil>":                      "invalid IP",
	} {
		if got := clientKey(in).String(); got != want {
			t.Errorf("clientKey(%q) = %s, want %s", in, got, want)
		}
	}
	if clientKey("2001:db8:1:2::1") == clientKey("2001:db8:1:3::1") {
		t.Error("two /64s share a bucket")
	}
}

// HTTP: the limiter in the service's own middleware chain.

func limitedServer(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	keys, err := auth.LoadOrCreateDevKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Verifier = keys.Verifier(auth.Policy{}, nil, nil)
	h, err := New(cfg) // no flow: these requests never reach a handler
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// send makes a request from peer (host:port) with the header pairs.
// The answer is checked against the spec.
func send(t *testing.T, h http.Handler, method, path, peer string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.RemoteAddr = peer
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if err := contract.Check(t, req, nil, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("%s %s → %d breaks the spec: %v\nbody: %s", method, path, rec.Code, err, rec.Body)
	}
	return rec
}

// checkPhone is an API operation: unauthenticated, it answers 401 from the
// validator, so a 429 shows that the limiter answered first.
var checkPhone = openapi.BasePath + "/user/phone"

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
}

// wantRateLimited checks a 429 rate-limited JSON:API answer and returns its
// Retry-After in seconds.
func wantRateLimited(t *testing.T, rec *httptest.ResponseRecorder) int {
	t.Helper()
	wantStatus(t, rec, http.StatusTooManyRequests)
	if ct := rec.Header().Get("Content-Type"); ct != "application/vnd.api+json" {
		t.Fatalf("content type %q", ct)
	}
	var raw any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	doc, _ := openapi.Load()
	if err := doc.Components.Schemas["ErrorDocument"].Value.VisitJSON(raw); err != nil {
		t.Fatalf("not an ErrorDocument: %v\n%s", err, rec.Body)
	}
	var ed api.ErrorDocument
	_ = json.Unmarshal(rec.Body.Bytes(), &ed)
	e := ed.Errors[0]
	if e.Code != api.ErrorCode(userphone.CodeRateLimited) || e.Status != "429" || e.Id == "" ||
		e.Id != rec.Header().Get("X-Request-Id") || e.Detail == nil {
		t.Fatalf("error %+v, X-Request-Id %q", e, rec.Header().Get("X-Request-Id"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("a 429 lacks the security headers: %v", rec.Header())
	}
	secs, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	return secs
}

func TestIPLimitAnswers429BeforeAnythingElse(t *testing.T) {
	h := limitedServer(t, Config{IPRate: 0.1, IPBurst: 3}) // a token every 10 s
	for range 3 {
		wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000"), http.StatusUnauthorized)
	}
	rec := send(t, h, "GET", checkPhone, "198.51.100.1:4001")
	if secs := wantRateLimited(t, rec); secs != 10 {
		t.Fatalf("Retry-After %d, want 10", secs)
	}
	if rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatal("the validator ran for a refused request")
	}
	// The limit is per address; unknown routes and the spec count too.
	wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.2:4000"), http.StatusUnauthorized)
	wantRateLimited(t, send(t, h, "GET", "/nowhere", "198.51.100.1:4002"))
	wantRateLimited(t, send(t, h, "GET", "/openapi.yaml", "198.51.100.1:4002"))
	// An IPv6 client is counted by its /64.
	for i := range 3 {
		wantStatus(t, send(t, h, "GET", checkPhone, fmt.Sprintf("[2001:db8:0:1::%x]:4000", i+1)), http.StatusUnauthorized)
	}
	wantRateLimited(t, send(t, h, "GET", checkPhone, "[2001:db8:0:1:ffff::9]:4000"))
	wantStatus(t, send(t, h, "GET", checkPhone, "[2001:db8:0:2::1]:4000"), http.StatusUnauthorized)
}

func TestIPLimitNeverHoldsUpProbes(t *testing.T) {
	h := limitedServer(t, Config{IPRate: 0.1, IPBurst: 1})
	wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000"), http.StatusUnauthorized)
	wantRateLimited(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000"))
	for range 50 {
		for _, r := range []struct{ method, path string }{
			{"GET", "/health/live"}, {"HEAD", "/health/live"}, {"GET", "/health/ready"},
		} {
			wantStatus(t, send(t, h, r.method, r.path, "198.51.100.1:4000"), http.StatusOK)
		}
	}
}

func TestIPLimitIgnoresForwardedForFromUntrustedPeers(t *testing.T) {
	h := limitedServer(t, Config{IPRate: 0.1, IPBurst: 2})
	for i := range 2 {
		wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000",
			"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i), "X-Real-IP", "203.0.113.99"), http.StatusUnauthorized)
	}
	// A new made-up client in the header does not buy a new bucket.
	wantRateLimited(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000", "X-Forwarded-For", "203.0.113.50"))
	wantRateLimited(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000", "X-Real-IP", "203.0.113.51"))
	// Nor does the loopback address, when loopback is not a trusted proxy.
	wantStatus(t, send(t, h, "GET", checkPhone, "127.0.0.1:4000"), http.StatusUnauthorized)
	wantStatus(t, send(t, h, "GET", checkPhone, "127.0.0.1:4000", "X-Forwarded-For", "203.0.113.60"), http.StatusUnauthorized)
	wantRateLimited(t, send(t, h, "GET", checkPhone, "127.0.0.1:4000", "X-Forwarded-For", "203.0.113.61"))
}

func TestIPLimitBelievesTrustedProxies(t *testing.T) {
	h := limitedServer(t, Config{IPRate: 0.1, IPBurst: 2, TrustedProxies: []string{"127.0.0.1/32", "10.0.0.0/8"}})
	proxy := "127.0.0.1:4000"
	wantStatus(t, send(t, h, "GET", checkPhone, proxy, "X-Forwarded-For", "203.0.113.1"), http.StatusUnauthorized)
	// A chain of trusted proxies: the right-most untrusted address counts.
	wantStatus(t, send(t, h, "GET", checkPhone, proxy, "X-Forwarded-For", "203.0.113.1, 10.1.2.3"), http.StatusUnauthorized)
	wantRateLimited(t, send(t, h, "GET", checkPhone, proxy, "X-Forwarded-For", "203.0.113.1"))
	// What the client wrote to the left of its own address changes nothing.
	wantRateLimited(t, send(t, h, "GET", checkPhone, proxy, "X-Forwarded-For", "192.0.2.77, 203.0.113.1"))
	// Other clients behind the proxy have their own buckets, and the
	// proxy's own requests (no header) count as its own.
	wantStatus(t, send(t, h, "GET", checkPhone, proxy, "X-Forwarded-For", "203.0.113.2"), http.StatusUnauthorized)
	wantStatus(t, send(t, h, "GET", checkPhone, proxy), http.StatusUnauthorized)
	// X-Real-IP is not read, even from a trusted proxy.
	wantRateLimited(t, send(t, h, "GET", checkPhone, proxy, "X-Forwarded-For", "203.0.113.1", "X-Real-IP", "203.0.113.3"))
	// An untrusted peer still cannot speak for others.
	wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000", "X-Forwarded-For", "203.0.113.9"), http.StatusUnauthorized)
	wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000", "X-Forwarded-For", "203.0.113.9"), http.StatusUnauthorized)
	wantRateLimited(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000", "X-Forwarded-For", "203.0.113.10"))
}

func TestIPLimitOffAndBadSettings(t *testing.T) {
	h := limitedServer(t, Config{})
	for range 200 {
		wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000"), http.StatusUnauthorized)
	}
	for _, cfg := range []Config{
		{IPRate: -1},
		{TrustedProxies: []string{"10.0.0.0/33"}},
		{TrustedProxies: []string{"proxy.example"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}

func TestIPLimitBurstDefaultsToOneSecond(t *testing.T) {
	h := limitedServer(t, Config{IPRate: 3})
	for range 3 {
		wantStatus(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000"), http.StatusUnauthorized)
	}
	wantRateLimited(t, send(t, h, "GET", checkPhone, "198.51.100.1:4000"))
}

// BenchmarkIPLimiter measures the limiter's decision: the lock, the map
// and the refill, for one address, for many, and from many goroutines.
func BenchmarkIPLimiter(b *testing.B) {
	keys := make([]netip.Addr, 10_000)
	for i := range keys {
		keys[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	b.Run("one-address", func(b *testing.B) {
		l := newIPLimiter(1e9, 1<<30, nil)
		b.ReportAllocs()
		for b.Loop() {
			l.allow(addrA)
		}
	})
	b.Run("10k-addresses", func(b *testing.B) {
		l := newIPLimiter(20, 40, nil)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l.allow(keys[i%len(keys)])
			i++
		}
	})
	b.Run("10k-addresses-parallel", func(b *testing.B) {
		l := newIPLimiter(20, 40, nil)
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(7919))
			for pb.Next() {
				l.allow(keys[i%len(keys)])
				i++
			}
		})
	})
	b.Run("with-clientKey", func(b *testing.B) {
		l := newIPLimiter(20, 40, nil)
		b.ReportAllocs()
		for b.Loop() {
			l.allow(clientKey("2001:db8:1:2:aaaa::1"))
		}
	})
}
