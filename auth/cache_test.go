package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
)

// countingVerifier accepts tokens that start with "ok", for a fixed expiry.
type countingVerifier struct {
	calls  atomic.Int64
	expiry time.Time
}

func (v *countingVerifier) Verify(_ context.Context, raw string) (userphone.Identity, error) {
	v.calls.Add(1)
	if len(raw) < 2 || raw[:2] != "ok" {
		return userphone.Identity{}, errors.New("bad token")
	}
	return userphone.Identity{Subject: raw, Expiry: v.expiry}, nil
}

func TestCachedVerifierTrustsAVerifiedTokenUntilItsExpiryOrTheTTL(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	inner := &countingVerifier{expiry: now.Add(2 * time.Minute)}
	v := auth.Cached(inner, 5*time.Minute, 10, clock)
	ctx := context.Background()

	for range 3 {
		if id, err := v.Verify(ctx, "ok-1"); err != nil || id.Subject != "ok-1" {
			t.Fatalf("Verify = %+v, %v", id, err)
		}
	}
	if inner.calls.Load() != 1 {
		t.Fatalf("%d checks for one token, want 1", inner.calls.Load())
	}
	for range 3 {
		if _, err := v.Verify(ctx, "bad"); err == nil {
			t.Fatal("a bad token passed")
		}
	}
	if inner.calls.Load() != 4 {
		t.Fatalf("failures must not be cached: %d checks", inner.calls.Load())
	}
	// Past the token's expiry the cache asks again (and the inner verifier
	// would refuse an expired token).
	now = now.Add(2 * time.Minute)
	v.Verify(ctx, "ok-1")
	if inner.calls.Load() != 5 {
		t.Fatalf("expired entry was trusted: %d checks", inner.calls.Load())
	}

	// The TTL caps a long-lived token.
	inner.expiry = now.Add(24 * time.Hour)
	v.Verify(ctx, "ok-2")
	now = now.Add(5 * time.Minute)
	v.Verify(ctx, "ok-2")
	if inner.calls.Load() != 7 {
		t.Fatalf("TTL not applied: %d checks", inner.calls.Load())
	}
}

func TestCachedVerifierStaysBounded(t *testing.T) {
	now := time.Now()
	inner := &countingVerifier{expiry: now.Add(time.Hour)}
	v := auth.Cached(inner, time.Minute, 4, func() time.Time { return now })
	for i := range 100 {
		if _, err := v.Verify(context.Background(), "ok-"+string(rune('a'+i%26))+string(rune('a'+i/26))); err != nil {
			t.Fatal(err)
		}
	}
	// Bounded means recent tokens may be checked again, never that a bad
	// one passes: every entry still came from the inner verifier.
	if inner.calls.Load() != 100 {
		t.Fatalf("%d checks", inner.calls.Load())
	}
}

// Expired entries leave as new ones come, so that the cache holds the live
// tokens, not the most it ever held: 20,000 users an hour ago are no
// memory now.
func TestTheCacheDropsExpiredEntriesAsTheyExpire(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	inner := &countingVerifier{expiry: now.Add(time.Hour)}
	v := auth.Cached(inner, time.Minute, 100_000, func() time.Time { return now })
	for i := range 20_000 {
		v.Verify(context.Background(), fmt.Sprint("ok-", i))
	}
	sized := v.(interface{ Len() int })
	if sized.Len() != 20_000 {
		t.Fatalf("%d entries, want 20,000", sized.Len())
	}
	now = now.Add(2 * time.Minute)
	v.Verify(context.Background(), "ok-new")
	if sized.Len() != 1 {
		t.Fatalf("%d entries after all but one expired, want 1", sized.Len())
	}
}
