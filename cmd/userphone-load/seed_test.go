package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// TestSeed seeds a fresh database of each dialect twice, and reads the
// rows back through the store, as the server's queries do.
func TestSeed(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			cfg := storetest.Config(t, d)
			args := []string{"seed", "-data-dir", cfg.DataDir, "-users", "300", "-changes", "1000", "-batch", "128"}
			if cfg.DatabaseURL != "" {
				args = append(args, "-database-url", cfg.DatabaseURL)
			}
			for round := range 2 {
				var out bytes.Buffer
				if code := run(context.Background(), args, noEnv, &out, &out); code != 0 {
					t.Fatalf("round %d: exit %d\n%s", round, code, out.String())
				}
				if !strings.Contains(out.String(), "rows/s") {
					t.Errorf("no throughput in the output:\n%s", out.String())
				}
			}
			st, err := store.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			checkSeeded(t, st)
		})
	}
}

func checkSeeded(t *testing.T, st *store.Store) {
	ctx := context.Background()
	db := st.DB()
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := db.Raw(q, args...).Scan(&n).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count("SELECT count(*) FROM users"); n != 600 {
		t.Errorf("%d users, want 600 from two rounds", n)
	}
	if n := count("SELECT count(*) FROM users WHERE phone_number IS NULL OR phone_verified_at IS NULL"); n != 0 {
		t.Errorf("%d users without a verified number", n)
	}
	if n := count("SELECT count(*) FROM phone_changes"); n != 2000 {
		t.Errorf("%d changes, want 2000", n)
	}
	if n := count("SELECT count(DISTINCT phone_number) FROM phone_changes"); n != 2000 {
		t.Errorf("%d distinct numbers in 2000 changes", n)
	}
	for _, s := range []userphone.ChangeStatus{userphone.StatusAwaitingEmailConfirmation, userphone.StatusAwaitingCode,
		userphone.StatusVerified, userphone.StatusCancelled, userphone.StatusExpired} {
		if n := count("SELECT count(*) FROM phone_changes WHERE status = ?", string(s)); n == 0 {
			t.Errorf("no change is %s", s)
		}
	}
	if n := count("SELECT count(*) FROM phone_events"); n < 4000 {
		t.Errorf("only %d events for 2000 changes", n)
	}
	// What the flow reads: the open change, the latest one, the user, the
	// limits' counts, the e-mail link.
	var open struct {
		UserID string
		Status string
	}
	if err := db.Raw("SELECT user_id, status FROM phone_changes WHERE status = ? LIMIT 1", "awaiting-email-confirmation").Scan(&open).Error; err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err := st.Read(ctx, func(tx userphone.Tx) error {
		u, found, err := tx.GetUser(ctx, open.UserID)
		if err != nil || !found || u.PhoneNumber == "" || u.Email == "" {
			t.Errorf("user %s: %+v %v %v", open.UserID, u, found, err)
		}
		c, err := tx.OpenChange(ctx, open.UserID)
		if err != nil || c == nil || c.ExpiredAt(now) || c.EmailTokenHash == nil || c.CreatedAt.After(now) {
			t.Errorf("open change of %s: %+v %v", open.UserID, c, err)
		}
		latest, err := tx.LatestChange(ctx, open.UserID)
		if err != nil || latest == nil || latest.ID != c.ID {
			t.Errorf("the open change is not the latest: %+v, %v", latest, err)
		}
		if byToken, err := tx.ChangeByEmailToken(ctx, c.EmailTokenHash); err != nil || byToken == nil || byToken.ID != c.ID {
			t.Errorf("by e-mail token: %+v, %v", byToken, err)
		}
		n, _, err := tx.CountEvents(ctx, userphone.EventQuery{Kinds: []userphone.EventKind{userphone.EventRequested}, UserID: open.UserID, Since: now.Add(-30 * 24 * time.Hour)})
		if err != nil || n == 0 {
			t.Errorf("requested events of %s: %d, %v", open.UserID, n, err)
		}
		events, err := tx.Events(ctx, open.UserID)
		if err != nil || len(events) == 0 || events[0].Kind != userphone.EventRequested {
			t.Errorf("trail of %s: %+v %v", open.UserID, events, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A user's number is their latest verified change's.
	var mismatched int64
	if err := db.Raw(`SELECT count(*) FROM users u WHERE EXISTS (SELECT 1 FROM phone_changes c WHERE c.user_id = u.id AND c.status = 'verified')
AND u.phone_number <> (SELECT c.phone_number FROM phone_changes c WHERE c.user_id = u.id AND c.status = 'verified' ORDER BY c.closed_at DESC LIMIT 1)`).
		Scan(&mismatched).Error; err != nil {
		t.Fatal(err)
	}
	if mismatched != 0 {
		t.Errorf("%d users whose number is not their latest verified change's", mismatched)
	}
}
