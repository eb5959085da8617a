package jobs

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/pace/userphone"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// recordingFlow composes a message whose key and text follow from its
// identity, as the real flow's do, and records what was sent.
type recordingFlow struct {
	mu   sync.Mutex
	sent []userphone.Message
}

func (f *recordingFlow) Compose(_ context.Context, m userphone.Outgoing) (userphone.Message, bool, error) {
	id := m.ChangeID + "/" + strconv.Itoa(m.MessageNo)
	return userphone.Message{Channel: userphone.ChannelSMS, To: m.Number, Text: "code for " + id, IdempotencyKey: id}, true, nil
}
func (f *recordingFlow) DeliveryFailed(context.Context, userphone.Outgoing, string) error { return nil }
func (f *recordingFlow) SweepExpired(context.Context) (int64, error)                      { return 0, nil }
func (f *recordingFlow) Purge(context.Context, time.Duration) (int64, error)              { return 0, nil }
func (f *recordingFlow) Send(_ context.Context, m userphone.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	return nil
}

func (f *recordingFlow) messages() []userphone.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]userphone.Message(nil), f.sent...)
}

// A replica killed while sending leaves its job "running" for good. Once it
// has been running longer than RescueAfter, the leader hands it to a live
// replica, which sends it at once (no backoff: it did not fail), with the
// same message: the same key and text.
func TestAnOrphanedSendIsPickedUpAtOnceByAnotherReplica(t *testing.T) {
	st := storetest.New(t, store.Postgres)
	ctx := context.Background()
	dead, err := New(st, Config{}) // the killed replica: it inserted, never finished
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	m := userphone.Outgoing{Kind: "code", ChangeID: "orphan", MessageNo: 1, Number: "+4915112345678"}
	if err := st.InTx(ctx, func(tx userphone.Tx) error { return dead.Enqueue(ctx, tx, m) }); err != nil {
		t.Fatal(err)
	}
	// What SIGKILL leaves behind: the job taken, attempted, never finished.
	res := st.DB().Exec(`UPDATE river_job SET state = 'running', attempt = 1,
  attempted_at = now() - interval '26 seconds', attempted_by = ARRAY['killed-replica']`)
	if res.Error != nil || res.RowsAffected != 1 {
		t.Fatalf("orphaning the job: %v (%d rows)", res.Error, res.RowsAffected)
	}

	// A first retry an hour away: only the rescue's at-once retry can
	// send the orphan within the wait below, however slow the machine.
	live, err := New(st, Config{Workers: 2, RescueAfter: DefaultRescueAfter, FirstRetry: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &recordingFlow{}
	start := time.Now()
	if err := live.Start(ctx, f, f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Stop(context.Background()) })
	for len(f.messages()) == 0 {
		// The leader's rescuer runs at its start; the retry must not wait
		// for the backoff.
		if time.Since(start) > time.Minute {
			t.Fatal("the orphaned job was not sent within a minute of a live replica's start: it waited for the backoff")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the orphan was sent %v after the live replica started", time.Since(start).Round(time.Millisecond))
	sent := f.messages()
	want, _, _ := f.Compose(ctx, m)
	if len(sent) != 1 || sent[0].IdempotencyKey != want.IdempotencyKey || sent[0].Text != want.Text {
		t.Fatalf("sent %+v, want once %+v", sent, want)
	}
}

// A live send is never taken for an orphan: the rescue delay must exceed
// the job timeout.
func TestTheRescueDelayMustExceedTheJobTimeout(t *testing.T) {
	st := storetest.New(t, store.SQLite)
	if _, err := New(st, Config{RescueAfter: JobTimeout}); err == nil {
		t.Fatal("a rescue delay equal to the job timeout was accepted")
	}
}

// A failed send backs off; only a job running longer than the rescue delay
// runs again at once.
func TestBackoffRetriesARescuedJobAtOnce(t *testing.T) {
	b := backoff{first: 10 * time.Second, rescueAfter: DefaultRescueAfter}
	attempted := time.Now().Add(-JobTimeout)
	if next := b.NextRetry(&rivertype.JobRow{AttemptedAt: &attempted}); time.Until(next) < 5*time.Second {
		t.Fatalf("a failed send retries in %v, want the backoff", time.Until(next))
	}
	attempted = time.Now().Add(-DefaultRescueAfter - time.Second)
	if next := b.NextRetry(&rivertype.JobRow{AttemptedAt: &attempted}); time.Until(next) > time.Second {
		t.Fatalf("a rescued send retries in %v, want at once", time.Until(next))
	}
}
