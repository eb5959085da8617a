package server_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// The findings of the SMS-pumping and takeover review (docs/SECURITY.md),
// each tried again against the real HTTP server with the default limits,
// as an attacker would: many accounts, many source networks (the whole of
// 127.0.0.0/8 reaches the server), races.

func defaults() options { return options{limits: flow.DefaultLimits()} }

func wantWholeMinutes(t *testing.T, header http.Header) {
	t.Helper()
	if s, err := strconv.Atoi(header.Get("Retry-After")); err != nil || s <= 0 || s%60 != 0 {
		t.Fatalf("Retry-After %q is not whole minutes", header.Get("Retry-After"))
	}
}

// Finding 1: 1,000 fresh accounts on one network each asked for a first
// number. Now the network gets its cap of SMS, the rest get 429, and a
// user of another network still gets theirs.
func TestAThousandAccountsOnOneNetworkGetTheNetworksCap(t *testing.T) {
	forEachDialectWith(t, defaults(), func(t *testing.T, h *harness) {
		const accounts, workers = 1000, 8
		var created, limited atomic.Int64
		testenv.Parallel(workers, func(w int) int {
			for i := w; i < accounts; i += workers {
				ip := fmt.Sprintf("127.0.5.%d", 1+i%250)
				r := h.putFrom(ip, h.token(fmt.Sprint("bot", i), ""), testenv.MobileNumber(i))
				switch r.StatusCode() {
				case http.StatusCreated:
					created.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					t.Errorf("bot %d: %d %s", i, r.StatusCode(), r.Body)
				}
			}
			return 0
		})
		netCap := int64(flow.DefaultLimits().SMSPerNetworkPerHour)
		if created.Load() != netCap || limited.Load() != accounts-netCap {
			t.Fatalf("%d created and %d refused; want the network's cap of %d, and 429 for the rest", created.Load(), limited.Load(), netCap)
		}
		if n := len(h.messages()); n != int(netCap) {
			t.Fatalf("%d SMS went out, want %d", n, netCap)
		}
		r := h.putFrom("127.0.6.9", h.token("alice", ""), numberA)
		if r.StatusCode() != http.StatusCreated {
			t.Fatalf("a user of another network: %d %s", r.StatusCode(), r.Body)
		}
		h.code(numberA)
	})
}

// Many networks aiming at one range of numbers are capped.
func TestManyNetworksAimingAtOneRangeAreCapped(t *testing.T) {
	forEachDialectWith(t, defaults(), func(t *testing.T, h *harness) {
		prefixCap := flow.DefaultLimits().SMSPerPrefixPerHour
		for i := range prefixCap + 5 {
			r := h.putFrom(fmt.Sprintf("127.%d.1.1", 10+i), h.token(fmt.Sprint("p", i), ""), fmt.Sprintf("+491511234%04d", i))
			want := http.StatusCreated
			if i >= prefixCap {
				want = http.StatusTooManyRequests
			}
			if r.StatusCode() != want {
				t.Fatalf("request %d from its own network: %d %s; want %d", i, r.StatusCode(), r.Body, want)
			}
			if want == http.StatusTooManyRequests {
				wantError(t, 429, r.StatusCode(), r.Body, api.ErrorCodeRateLimited)
				wantWholeMinutes(t, r.HTTPResponse.Header)
			}
		}
	})
}

// Finding 2: three throwaway accounts asking for a number kept its owner
// from getting a code for an hour, and the exact Retry-After told when
// the owner had last asked. Now the owner's allowance is their own, and
// Retry-After is whole minutes.
func TestStrangersCannotLockTheOwnerOutNorLearnWhenTheyAsked(t *testing.T) {
	forEachDialectWith(t, defaults(), func(t *testing.T, h *harness) {
		owner := h.token("owner", "")
		if r := h.put(owner, numberA); r.StatusCode() != http.StatusCreated {
			t.Fatalf("owner: %d %s", r.StatusCode(), r.Body)
		}
		for i := range 3 {
			if r := h.putFrom(fmt.Sprintf("127.0.%d.2", 20+i), h.token(fmt.Sprint("stranger", i), ""), numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("stranger %d: %d %s", i, r.StatusCode(), r.Body)
			}
		}
		h.messages() // the strangers' codes are out: the owner's next is the newest
		h.clock.Advance(time.Minute)
		if r := h.put(owner, numberA); r.StatusCode() != http.StatusCreated {
			t.Fatalf("the owner's resend after three strangers: %d %s", r.StatusCode(), r.Body)
		}
		if v := h.verify(owner, h.code(numberA)); v.StatusCode() != http.StatusOK {
			t.Fatalf("the owner's code: %d %s", v.StatusCode(), v.Body)
		}
		// The owner's own allowance runs out for the owner alone, and its
		// Retry-After hides the second it frees up.
		me := h.token("me", "")
		for range flow.DefaultLimits().SMSPerNumberPerHour {
			h.put(me, numberB)
			h.clock.Advance(61*time.Second + 377*time.Millisecond)
		}
		r := h.put(me, numberB)
		wantError(t, 429, r.StatusCode(), r.Body, api.ErrorCodeRateLimited)
		wantWholeMinutes(t, r.HTTPResponse.Header)
	})
}

// Finding 3: guesses spanned changes. Now the number takes 10 wrong codes
// a day, over all changes and accounts; then even the right code waits.
func TestGuessesPerNumberAreCappedAcrossChangesAndAccounts(t *testing.T) {
	forEachDialectWith(t, defaults(), func(t *testing.T, h *harness) {
		guesses := flow.DefaultLimits().WrongCodesPerNumberPerDay
		for i := 0; guesses > 0; i++ {
			r := h.putFrom(fmt.Sprintf("127.0.%d.3", 30+i), h.token(fmt.Sprint("guesser", i), ""), numberA)
			if r.StatusCode() != http.StatusCreated {
				t.Fatalf("guesser %d: %d %s", i, r.StatusCode(), r.Body)
			}
			for range min(4, guesses) { // under the change's own 5
				v := h.verify(h.token(fmt.Sprint("guesser", i), ""), testservers.WrongCode(h.code(numberA)))
				wantError(t, 422, v.StatusCode(), v.Body, api.ErrorCodeInvalidCode)
				guesses--
			}
		}
		victim := h.token("victim", "")
		h.putFrom("127.0.99.3", victim, numberA)
		v := h.verify(victim, h.code(numberA))
		wantError(t, 429, v.StatusCode(), v.Body, api.ErrorCodeTooManyAttempts)
		wantWholeMinutes(t, v.HTTPResponse.Header)
	})
}

// Finding 3, the other half: a code stayed valid for 24 h. Now it expires
// after 10 minutes with its own code, and the same PUT sends a new one.
func TestAnOldCodeIsRefusedAndTheSamePutSendsANewOne(t *testing.T) {
	forEachDialectWith(t, defaults(), func(t *testing.T, h *harness) {
		tok := h.token("eve", "")
		h.put(tok, numberA)
		old := h.code(numberA)
		h.clock.Advance(10 * time.Minute)
		v := h.verify(tok, old)
		wantError(t, 422, v.StatusCode(), v.Body, api.ErrorCodeCodeExpired)
		if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
			t.Fatalf("asking again: %d %s", r.StatusCode(), r.Body)
		}
		if v := h.verify(tok, h.code(numberA)); v.StatusCode() != http.StatusOK {
			t.Fatalf("the new code: %d %s", v.StatusCode(), v.Body)
		}
	})
}

// Finding 4: satellite and international-network numbers got 201.
func TestNumbersOfNoCountryAreRefused(t *testing.T) {
	forEachDialectWith(t, defaults(), func(t *testing.T, h *harness) {
		for _, n := range []string{"+881612345678", "+870773111632"} {
			r := h.put(h.token("sat", ""), n)
			e := wantError(t, 422, r.StatusCode(), r.Body, api.ErrorCodePhoneNumberNotAllowed)
			if pointerOf(e) != "/data/attributes/phoneNumber" {
				t.Fatalf("%s: pointer %q", n, pointerOf(e))
			}
		}
		if len(h.messages()) != 0 {
			t.Fatal("a refused number got an SMS")
		}
	})
}

// Finding 5: the confirmation e-mail went to an address the token called
// unverified. Now it is refused, with its own code, and nothing is sent.
func TestAnUnverifiedEmailIsRefusedForTheConfirmation(t *testing.T) {
	forEachDialectWith(t, defaults(), func(t *testing.T, h *harness) {
		h.verifyNumber(h.token("kim", "kim@example.com"), numberA)
		unverified := h.tokenFor(userphone.Identity{Subject: "kim", Email: "attacker@example.com", EmailUnverified: true})
		before := len(h.messages())
		r := h.put(unverified, numberB)
		wantError(t, 409, r.StatusCode(), r.Body, api.ErrorCodeEmailNotVerified)
		if n := len(h.messages()); n != before {
			t.Fatalf("%d messages went out", n-before)
		}
	})
}

// Finding 6: with the cool-down at 0, racing PUTs on PostgreSQL were told
// to wait a second. Now each is answered as the resend it is.
func TestRacingPutsWithoutACooldownAreAllAnswered(t *testing.T) {
	h := newHarness(t, options{cfg: storetest.Config(t, store.Postgres), resendCooldown: new(time.Duration)})
	tok := h.token("sven", "")
	h.put(tok, numberA)
	got := count(testenv.Parallel(20, func(int) int { return h.put(tok, numberA).StatusCode() }))
	if got[201] != 20 {
		t.Fatalf("statuses %v, want 20×201", got)
	}
}
