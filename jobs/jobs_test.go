package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/pace/userphone"
	"github.com/pace/userphone/store/storetest"
)

// A job joins the transaction of the state change: a rollback takes it
// back, a commit keeps it.
func TestJobsCommitAndRollBackWithTheirTransaction(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			st := storetest.New(t, d)
			q, err := New(st, Config{}) // insert-only: nothing works the jobs
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := q.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			m := userphone.Outgoing{Kind: "code", ChangeID: "c1", MessageNo: 1}
			boom := errors.New("boom")
			err = st.InTx(ctx, func(tx userphone.Tx) error {
				if err := q.Enqueue(ctx, tx, m); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatal(err)
			}
			if n := countJobs(t, q); n != 0 {
				t.Fatalf("%d jobs after a rollback, want 0", n)
			}
			if err := st.InTx(ctx, func(tx userphone.Tx) error { return q.Enqueue(ctx, tx, m) }); err != nil {
				t.Fatal(err)
			}
			res, err := q.client.JobList(ctx, river.NewJobListParams())
			if err != nil || len(res.Jobs) != 1 {
				t.Fatalf("jobs after a commit: %v, %v", res, err)
			}
			// The job holds the message's identity and nothing more.
			var args map[string]any
			if err := json.Unmarshal(res.Jobs[0].EncodedArgs, &args); err != nil || len(args) != 3 ||
				args["kind"] != "code" || args["change_id"] != "c1" || args["message_no"] != 1.0 {
				t.Fatalf("job args %s (%v)", res.Jobs[0].EncodedArgs, err)
			}
		})
	}
}

func countJobs(t *testing.T, q *Queue) int {
	res, err := q.client.JobList(context.Background(), river.NewJobListParams())
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Jobs)
}

func TestBackoffDoublesWithJitterUpToACap(t *testing.T) {
	b := backoff{first: 10 * time.Second}
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 4: 80 * time.Second, 30: maxRetryDelay} {
		job := &rivertype.JobRow{Errors: make([]rivertype.AttemptError, n)}
		for range 50 {
			got := time.Until(b.NextRetry(job))
			if got < time.Duration(0.79*float64(want)) || got > time.Duration(1.21*float64(want)) {
				t.Fatalf("after %d failures: wait %v, want %v ± 20%%", n, got, want)
			}
		}
	}
}

// Backlog counts the messages that wait, in any waiting state, and tells
// since when the oldest due one waits; other jobs do not count.
func TestBacklogCountsWaitingMessages(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			st := storetest.New(t, d)
			q, err := New(st, Config{}) // insert-only: the jobs stay
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := q.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if n, oldest, err := q.Backlog(ctx); err != nil || n != 0 || !oldest.IsZero() {
				t.Fatalf("empty queue: %d, %v (%v)", n, oldest, err)
			}
			insert := func(at time.Time) {
				m := sendArgs{userphone.Outgoing{Kind: "code", ChangeID: "c", MessageNo: 1}}
				if _, err := q.client.Insert(ctx, m, &river.InsertOpts{ScheduledAt: at}); err != nil {
					t.Fatal(err)
				}
			}
			insert(time.Now().Add(time.Hour)) // a retry, say: waits, but is not due
			if _, err := q.client.Insert(ctx, sweepArgs{}, nil); err != nil {
				t.Fatal(err)
			}
			if n, oldest, err := q.Backlog(ctx); err != nil || n != 1 || !oldest.IsZero() {
				t.Fatalf("one message due later: %d, %v (%v); want 1 and none due", n, oldest, err)
			}
			due := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
			insert(due.Add(30 * time.Second))
			insert(due)
			n, oldest, err := q.Backlog(ctx)
			if err != nil || n != 3 || !oldest.Equal(due) {
				t.Fatalf("backlog: %d, oldest due %v (%v); want 3, %v", n, oldest, err, due)
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := q.Backlog(cancelled); err == nil {
				t.Fatal("Backlog ignores its context")
			}
		})
	}
}
