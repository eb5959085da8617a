package jobs

import (
	"context"
	"sync"
	"testing"

	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// Replicas that start at the same time migrate the same fresh database at
// once, ours and the job queue's tables: all must succeed, once.
func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	cfg := storetest.Config(t, store.Postgres)
	const replicas = 4
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		st, err := store.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		q, err := New(st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if errs[i] = st.Migrate(ctx); errs[i] == nil {
				errs[i] = q.Migrate(ctx)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
}
