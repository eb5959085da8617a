package server_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/pace/userphone"
)

// parallel runs fn n times at once and returns the statuses.
func parallel(n int, fn func(i int) int) []int {
	statuses := make([]int, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			statuses[i] = fn(i)
		}()
	}
	start.Done()
	done.Wait()
	return statuses
}

func count(statuses []int) map[int]int {
	m := map[int]int{}
	for _, s := range statuses {
		m[s]++
	}
	return m
}

func TestParallelWrongCodesNeverExceedTheAttemptLimit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("olga", "olga@example.com")
		h.put(tok, numberA)
		wrong := wrongCode(h.code(numberA))
		got := count(parallel(50, func(int) int { return h.verify(tok, wrong).StatusCode() }))
		// 4 wrong codes leave attempts, the 5th cancels, the rest find nothing.
		if got[422] != 4 || got[429] != 1 || got[404] != 45 {
			t.Fatalf("statuses %v, want 4×422, 1×429, 45×404", got)
		}
		var attempts int
		if err := h.store.DB().Raw("SELECT attempts FROM phone_changes WHERE user_id = 'olga'").Scan(&attempts).Error; err != nil || attempts != 5 {
			t.Fatalf("%d attempts counted (%v), want exactly 5", attempts, err)
		}
		v := h.verify(tok, h.code(numberA))
		wantError(t, 404, v.StatusCode(), v.Body, userphone.CodeNoPendingVerification)
	})
}

func TestParallelCorrectCodesVerifyOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("paul", "paul@example.com")
		h.put(tok, numberA)
		code := h.code(numberA)
		got := count(parallel(2, func(int) int { return h.verify(tok, code).StatusCode() }))
		if got[200] != 1 || got[404] != 1 {
			t.Fatalf("statuses %v, want one 200 and one 404", got)
		}
	})
}

func TestTwoUsersRacingForOneNumberLeaveOneOwner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		users := []string{h.token("quinn", "quinn@example.com"), h.token("rosa", "rosa@example.com")}
		codes := make([]string, 2)
		for i, tok := range users {
			if r := h.put(tok, numberA); r.StatusCode() != http.StatusCreated {
				t.Fatalf("PUT: %d %s", r.StatusCode(), r.Body)
			}
			codes[i] = h.code(numberA)
		}
		statuses := parallel(2, func(i int) int { return h.verify(users[i], codes[i]).StatusCode() })
		if statuses[0] != 200 || statuses[1] != 200 {
			t.Fatalf("both proved possession; statuses %v", statuses)
		}
		owners, told := 0, 0
		for i, tok := range users {
			c := h.check(tok)
			if c.StatusCode() == http.StatusOK && c.ApplicationvndApiJSON200.Data.Attributes.PhoneNumber == numberA {
				owners++
			}
			told += len(h.messagesTo([]string{"quinn@example.com", "rosa@example.com"}[i]))
		}
		if owners != 1 || told != 1 {
			t.Fatalf("%d owners and %d users told, want exactly one of each", owners, told)
		}
	})
}

func TestParallelRequestsForOneUserKeepOneOpenChange(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("sven", "sven@example.com")
		numbers := []string{"+4915112345601", "+4915112345602", "+4915112345603", "+4915112345604", "+4915112345605", "+4915112345606"}
		got := count(parallel(len(numbers), func(i int) int { return h.put(tok, numbers[i]).StatusCode() }))
		// One wins; the others meet the cool-down of the winner's SMS.
		if got[201] != 1 || got[429] != len(numbers)-1 {
			t.Fatalf("statuses %v, want one 201 and the rest 429", got)
		}
		if n := len(h.messages()); n != 1 {
			t.Fatalf("%d messages sent, want 1", n)
		}
		c := h.check(tok)
		pending := c.ApplicationvndApiJSON201.Data.Attributes.PendingChange.PhoneNumber
		if v := h.verify(tok, h.code(pending)); v.StatusCode() != http.StatusOK {
			t.Fatalf("the surviving change %s: %d %s", pending, v.StatusCode(), v.Body)
		}
	})
}
