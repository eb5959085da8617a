package flow_test

import (
	"fmt"
	"testing"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
)

// Requests at the same moment: the rules hold as if they had come one by
// one.

// outcomes counts the errors by code, "ok" for none.
func outcomes(errs []error) map[string]int {
	m := map[string]int{}
	for _, err := range errs {
		switch {
		case err == nil:
			m["ok"]++
		case userphone.AsError(err) != nil:
			m[string(userphone.ErrorCodeOf(err))]++
		default:
			m[fmt.Sprint("unexpected: ", err)]++
		}
	}
	return m
}

func TestParallelWrongCodesNeverExceedTheAttemptLimit(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		olga := user("olga", "olga@example.com")
		r.request(olga, numberA)
		wrong := testservers.WrongCode(r.code(numberA))
		got := outcomes(testenv.Parallel(50, func(int) error { _, err := r.svc.Verify(ctx, olga, wrong); return err }))
		// 4 wrong codes leave attempts, the 5th cancels, the rest find nothing.
		want := map[string]int{string(userphone.CodeInvalidCode): 4, string(userphone.CodeTooManyAttempts): 1, string(userphone.CodeNoPendingVerification): 45}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("outcomes %v, want %v", got, want)
		}
		var attempts int
		if err := r.store.DB().Raw("SELECT attempts FROM phone_changes WHERE user_id = 'olga'").Scan(&attempts).Error; err != nil || attempts != 5 {
			t.Fatalf("%d attempts counted (%v), want exactly 5", attempts, err)
		}
		_, err := r.svc.Verify(ctx, olga, r.code(numberA))
		wantRefusal(t, err, userphone.CodeNoPendingVerification)
	})
}

func TestParallelCorrectCodesVerifyOnce(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		paul := user("paul", "paul@example.com")
		r.request(paul, numberA)
		code := r.code(numberA)
		got := outcomes(testenv.Parallel(2, func(int) error { _, err := r.svc.Verify(ctx, paul, code); return err }))
		if got["ok"] != 1 || got[string(userphone.CodeNoPendingVerification)] != 1 {
			t.Fatalf("outcomes %v, want one verified and one with nothing pending", got)
		}
	})
}

func TestTwoUsersRacingForOneNumberLeaveOneOwner(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		users := []userphone.Identity{user("quinn", "quinn@example.com"), user("rosa", "rosa@example.com")}
		codes := make([]string, 2)
		for i, u := range users {
			r.request(u, numberA)
			codes[i] = r.code(numberA)
		}
		errs := testenv.Parallel(2, func(i int) error { _, err := r.svc.Verify(ctx, users[i], codes[i]); return err })
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("both proved possession; outcomes %v", errs)
		}
		owners, told := 0, 0
		for _, u := range users {
			if p, found := r.check(u); found && p.Number == numberA && p.Verified {
				owners++
			}
			told += len(r.messagesTo(u.Email))
		}
		if owners != 1 || told != 1 {
			t.Fatalf("%d owners and %d users told, want exactly one of each", owners, told)
		}
	})
}

func TestParallelRequestsForOneUserKeepOneOpenChange(t *testing.T) {
	forEachDialect(t, rigOptions{}, func(t *testing.T, r *rig) {
		sven := user("sven", "sven@example.com")
		numbers := []string{"+4915112345601", "+4915112345602", "+4915112345603", "+4915112345604", "+4915112345605", "+4915112345606"}
		got := outcomes(testenv.Parallel(len(numbers), func(i int) error { _, _, err := r.svc.RequestChange(ctx, sven, numbers[i]); return err }))
		// One wins; the others meet the cool-down of the winner's SMS.
		if got["ok"] != 1 || got[string(userphone.CodeRateLimited)] != len(numbers)-1 {
			t.Fatalf("outcomes %v, want one started and the rest rate-limited", got)
		}
		if n := len(r.messages()); n != 1 {
			t.Fatalf("%d messages sent, want 1", n)
		}
		p, _ := r.check(sven)
		if _, err := r.svc.Verify(ctx, sven, r.code(p.Pending.PhoneNumber)); err != nil {
			t.Fatalf("the surviving change %s: %v", p.Pending.PhoneNumber, err)
		}
	})
}
