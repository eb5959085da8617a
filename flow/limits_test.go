package flow_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/flow"
)

// The abuse limits: each refusal says when to come back, sends nothing and
// changes nothing.

func TestChangeRequestsPerUserAreLimitedPerHourAndDay(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{ChangesPerHour: 2, ChangesPerDay: 3}}, func(t *testing.T, r *rig) {
		lim := user("lim1", "lim1@example.com")
		numbers := []string{"+4915112345601", "+4915112345602", "+4915112345603", "+4915112345604"}
		for _, n := range numbers[:2] {
			r.request(lim, n)
			r.clock.Advance(61 * time.Second) // past the resend cool-down
		}
		_, _, err := r.svc.RequestChange(ctx, lim, numbers[2])
		r.wantLimited(err, userphone.CodeRateLimited, len(r.messages()))
		if p, _ := r.check(lim); p.Pending.PhoneNumber != numbers[1] {
			t.Fatalf("the refused request changed the pending change: %+v", p.Pending)
		}
		// The hour rolls on: one more, then the day's limit.
		r.clock.Advance(time.Hour)
		r.request(lim, numbers[2])
		r.clock.Advance(time.Hour)
		_, _, err = r.svc.RequestChange(ctx, lim, numbers[3])
		r.wantLimited(err, userphone.CodeRateLimited, len(r.messages()))
		r.clock.Advance(24 * time.Hour)
		r.request(lim, numbers[3])
		if !r.trailHas("lim1", userphone.EventRateLimited) {
			t.Fatal("the refusal is not in the audit trail")
		}
	})
}

// A user's allowance of SMS to a number is their own: it runs out for
// them, per hour and per day, and others asking for the same number
// neither use it up nor meet it.
func TestAUsersSMSAllowanceForANumberIsTheirOwn(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSPerNumberPerHour: 2, SMSPerNumberPerDay: 3}}, func(t *testing.T, r *rig) {
		ann := user("ann", "")
		for range 2 {
			r.request(ann, numberA)
			r.clock.Advance(time.Minute)
		}
		_, _, err := r.svc.RequestChange(ctx, ann, numberA)
		r.wantLimited(err, userphone.CodeRateLimited, len(r.messages()))
		r.request(user("ben", ""), numberA) // someone else: their own allowance
		r.clock.Advance(time.Hour)
		r.request(ann, numberA)
		r.clock.Advance(time.Hour)
		_, _, err = r.svc.RequestChange(ctx, ann, numberA)
		r.wantLimited(err, userphone.CodeRateLimited, len(r.messages()))
		r.clock.Advance(24 * time.Hour)
		r.request(ann, numberA)
	})
}

// The SMS of a confirmation counts too; a refused one leaves the link
// usable once the window rolls on, and is in the trail.
func TestTheConfirmationSMSIsLimitedToo(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSPerPrefixPerHour: 1}}, func(t *testing.T, r *rig) {
		conf := user("conf", "conf@example.com")
		r.verifyNumber(conf, numberA)
		r.request(conf, numberB)
		link := r.linkToken("conf@example.com")
		r.request(user("other", ""), numberB) // the one SMS to numberB's range this hour
		_, err := r.svc.Confirm(ctx, link)
		r.wantLimited(err, userphone.CodeRateLimited, len(r.messages()))
		if !r.trailHas("conf", userphone.EventRateLimited) {
			t.Fatal("the refused confirmation is not in the trail")
		}
		r.clock.Advance(time.Hour)
		if c, err := r.svc.Confirm(ctx, link); err != nil || c.State != userphone.LinkConfirmed {
			t.Fatalf("the link after the hour: %+v, %v", c, err)
		}
	})
}

func TestTheGlobalSMSBudgetStopsSending(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{SMSPerHour: 2}}, func(t *testing.T, r *rig) {
		r.request(user("g0", ""), "+4915112345611")
		r.request(user("g1", ""), "+4915112345612")
		_, _, err := r.svc.RequestChange(ctx, user("g2", ""), "+4915112345613")
		r.wantLimited(err, userphone.CodeServiceUnavailable, len(r.messages()))
		if !strings.Contains(r.logs.String(), "global SMS budget") {
			t.Fatal("the trip was not logged")
		}
		r.clock.Advance(time.Hour)
		r.request(user("g2", ""), "+4915112345613")
	})
}

func TestNumbersOutsideTheAllowedRegionsAreRefused(t *testing.T) {
	forEachDialect(t, rigOptions{limits: flow.Limits{AllowedRegions: []string{"DE", "AT"}}}, func(t *testing.T, r *rig) {
		reg := user("reg", "")
		_, _, err := r.svc.RequestChange(ctx, reg, "+1 415 555 2671")
		if e := wantRefusal(t, err, userphone.CodePhoneNumberNotAllowed); e.Field != userphone.FieldPhoneNumber {
			t.Fatalf("the refusal names the field %q", e.Field)
		}
		if len(r.messages()) != 0 {
			t.Fatal("a refused number got an SMS")
		}
		r.request(reg, numberA)
	})
}
