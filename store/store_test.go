package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/pace/userphone"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

func eachDialect(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, storetest.New(t, d))
		})
	}
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 123456000, time.UTC)

func newChange(userID, number string, status userphone.ChangeStatus) *userphone.PhoneChange {
	return &userphone.PhoneChange{
		ID: uuid.NewString(), UserID: userID, PhoneNumber: number, Status: status,
		CreatedAt: t0, UpdatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour),
	}
}

func TestUpsertUserKeepsRememberedEmailAndLocale(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var u userphone.User
		err := s.InTx(ctx, func(tx userphone.Tx) error {
			if _, err := tx.UpsertUser(ctx, userphone.Identity{Subject: "u1", Email: "a@example.com", Locale: "de"}, t0); err != nil {
				return err
			}
			var err error
			u, err = tx.UpsertUser(ctx, userphone.Identity{Subject: "u1"}, t0)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "a@example.com" || u.Locale != "de" {
			t.Fatalf("user = %+v, want the remembered e-mail and locale", u)
		}
	})
}

func TestChangeRoundTripsEveryField(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c := newChange("u1", "+4915112345678", userphone.StatusAwaitingCode)
		c.CodeHash = []byte{1, 2, 3}
		c.EmailTokenHash = []byte{4, 5, 6}
		sent := t0.Add(time.Minute)
		c.LastSentAt, c.Sends, c.Attempts = &sent, 2, 3
		var got *userphone.PhoneChange
		err := s.InTx(ctx, func(tx userphone.Tx) error {
			if _, err := tx.UpsertUser(ctx, userphone.Identity{Subject: "u1"}, t0); err != nil {
				return err
			}
			if err := tx.InsertChange(ctx, c); err != nil {
				return err
			}
			var err error
			got, err = tx.ChangeByEmailToken(ctx, []byte{4, 5, 6})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || got.ID != c.ID || got.Status != c.Status || !bytes.Equal(got.CodeHash, c.CodeHash) ||
			got.Attempts != 3 || got.Sends != 2 || !got.LastSentAt.Equal(sent) || !got.ExpiresAt.Equal(c.ExpiresAt) ||
			!got.CreatedAt.Equal(t0) {
			t.Fatalf("read back %+v, wrote %+v", got, c)
		}
	})
}

func TestOneOpenChangePerUser(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		err := s.InTx(ctx, func(tx userphone.Tx) error {
			if _, err := tx.UpsertUser(ctx, userphone.Identity{Subject: "u1"}, t0); err != nil {
				return err
			}
			if err := tx.InsertChange(ctx, newChange("u1", "+4915112345678", userphone.StatusAwaitingCode)); err != nil {
				return err
			}
			return tx.InsertChange(ctx, newChange("u1", "+4915198765432", userphone.StatusAwaitingEmailConfirmation))
		})
		if !errors.Is(err, userphone.ErrConflict) {
			t.Fatalf("second open change: err = %v, want ErrConflict", err)
		}
	})
}

func TestOneVerifiedOwnerPerNumber(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const number = "+4915112345678"
		err := s.InTx(ctx, func(tx userphone.Tx) error {
			for _, id := range []string{"first", "second"} {
				if _, err := tx.UpsertUser(ctx, userphone.Identity{Subject: id, Email: id + "@example.com"}, t0); err != nil {
					return err
				}
			}
			if prev, err := tx.TakeVerifiedNumber(ctx, "first", number, t0); err != nil || len(prev) != 0 {
				t.Fatalf("first take: previous %v, err %v", prev, err)
			}
			prev, err := tx.TakeVerifiedNumber(ctx, "second", number, t0)
			if err != nil {
				return err
			}
			if len(prev) != 1 || prev[0].ID != "first" || prev[0].Email != "first@example.com" || prev[0].PhoneNumber != number {
				t.Fatalf("second take: previous owners %+v, want first", prev)
			}
			first, _, err := tx.GetUser(ctx, "first")
			if err != nil {
				return err
			}
			second, _, err := tx.GetUser(ctx, "second")
			if first.PhoneNumber != "" || second.PhoneNumber != number || second.PhoneVerifiedAt == nil {
				t.Fatalf("after the move: first %+v, second %+v", first, second)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// The index itself refuses a second owner, whatever the code does.
		err = s.DB().WithContext(ctx).Exec("UPDATE users SET phone_number = ? WHERE id = 'first'", number).Error
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			t.Fatalf("second owner through raw SQL: err = %v, want ErrConflict", err)
		}
	})
}

func TestExpireDueClosesOnlyOverdueOpenChanges(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		due := newChange("u1", "+4915112345678", userphone.StatusAwaitingCode)
		notDue := newChange("u2", "+4915112345679", userphone.StatusAwaitingCode)
		notDue.ExpiresAt = t0.Add(48 * time.Hour)
		var n int
		err := s.InTx(ctx, func(tx userphone.Tx) error {
			for _, id := range []string{"u1", "u2"} {
				if _, err := tx.UpsertUser(ctx, userphone.Identity{Subject: id}, t0); err != nil {
					return err
				}
			}
			if err := tx.InsertChange(ctx, due); err != nil {
				return err
			}
			if err := tx.InsertChange(ctx, notDue); err != nil {
				return err
			}
			expired, err := tx.ExpireDue(ctx, t0.Add(24*time.Hour))
			n = len(expired)
			return err
		})
		if err != nil || n != 1 {
			t.Fatalf("ExpireDue = %d, %v; want 1", n, err)
		}
		_ = s.Read(ctx, func(tx userphone.Tx) error {
			c, _ := tx.LatestChange(ctx, "u1")
			if c.Status != userphone.StatusExpired || c.ClosedAt == nil {
				t.Errorf("overdue change: %+v", c)
			}
			c, _ = tx.OpenChange(ctx, "u2")
			if c == nil {
				t.Errorf("change not yet due was closed")
			}
			return nil
		})
	})
}

func TestMigrateIsIdempotentAndReportsVersion(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		applied, latest, err := s.SchemaVersion(ctx)
		if err != nil || applied != latest || latest < 1 {
			t.Fatalf("SchemaVersion = %d, %d, %v", applied, latest, err)
		}
	})
}

func TestSQLiteIsSetUpForAServer(t *testing.T) {
	s := storetest.New(t, store.SQLite)
	var mode string
	var timeout int
	db := s.DB()
	if err := db.Raw("PRAGMA journal_mode").Scan(&mode).Error; err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q (%v), want wal", mode, err)
	}
	if err := db.Raw("PRAGMA busy_timeout").Scan(&timeout).Error; err != nil || timeout < 1000 {
		t.Fatalf("busy_timeout = %d (%v)", timeout, err)
	}
}

func TestPurgeDeletesOnlyChangesThatEndedBeforeTheCutoff(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		old := newChange("u1", "+4915112345678", userphone.StatusVerified)
		closed := t0
		old.ClosedAt = &closed
		recent := newChange("u1", "+4915112345679", userphone.StatusCancelled)
		later := t0.Add(48 * time.Hour)
		recent.ClosedAt = &later
		open := newChange("u1", "+4915112345670", userphone.StatusAwaitingCode)
		var n int64
		err := s.InTx(ctx, func(tx userphone.Tx) error {
			if _, err := tx.UpsertUser(ctx, userphone.Identity{Subject: "u1"}, t0); err != nil {
				return err
			}
			for _, c := range []*userphone.PhoneChange{old, recent, open} {
				if err := tx.InsertChange(ctx, c); err != nil {
					return err
				}
			}
			var err error
			n, err = tx.PurgeClosedBefore(ctx, t0.Add(24*time.Hour))
			return err
		})
		if err != nil || n != 1 {
			t.Fatalf("purged %d (%v), want 1", n, err)
		}
		_ = s.Read(ctx, func(tx userphone.Tx) error {
			for _, c := range []*userphone.PhoneChange{recent, open} {
				if got, _ := tx.ChangeByID(ctx, c.ID); got == nil {
					t.Errorf("%s (%s) was purged", c.ID, c.Status)
				}
			}
			if got, _ := tx.ChangeByID(ctx, old.ID); got != nil {
				t.Error("the old change survived")
			}
			return nil
		})
	})
}

// Ready needs the schema this binary knows: a database not yet migrated
// is not ready, with a reason that says what to do.
func TestReadyNeedsTheMigratedSchema(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			s, err := store.Open(storetest.Config(t, d)) // not migrated
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			err = s.Ready(ctx)
			if !errors.Is(err, userphone.ErrUnavailable) || !bytes.Contains([]byte(err.Error()), []byte("userphone migrate")) {
				t.Fatalf("Ready before migrating = %v; want unavailable, naming `userphone migrate`", err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Ready(ctx); err != nil {
				t.Fatalf("Ready after migrating: %v", err)
			}
		})
	}
}

// PhoneOf reads what the transactional reads read: the user, and their
// open change with every field, or none when the only change is closed.
func TestPhoneOfReadsTheUserAndTheOpenChange(t *testing.T) {
	eachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if _, found, open, err := s.PhoneOf(ctx, "nobody"); err != nil || found || open != nil {
			t.Fatalf("an unknown user: found %v, open %v, err %v", found, open, err)
		}
		open := newChange("p1", "+4915112345678", userphone.StatusAwaitingCode)
		open.CodeHash, open.EmailTokenHash = []byte{1, 2, 3}, []byte{4, 5, 6}
		sent := t0.Add(time.Minute)
		open.LastSentAt, open.Sends, open.Attempts = &sent, 2, 1
		closed := newChange("p2", "+4915112345679", userphone.StatusCancelled)
		closed.ClosedAt = &sent
		var wantUser userphone.User
		var wantOpen *userphone.PhoneChange
		err := s.InTx(ctx, func(tx userphone.Tx) error {
			for _, c := range []*userphone.PhoneChange{open, closed} {
				if _, err := tx.UpsertUser(ctx, userphone.Identity{Subject: c.UserID, Email: c.UserID + "@example.com", Locale: "de"}, t0); err != nil {
					return err
				}
				if err := tx.InsertChange(ctx, c); err != nil {
					return err
				}
			}
			var err error
			if wantUser, _, err = tx.GetUser(ctx, "p1"); err != nil {
				return err
			}
			wantOpen, err = tx.OpenChange(ctx, "p1")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		u, found, got, err := s.PhoneOf(ctx, "p1")
		if err != nil || !found || got == nil {
			t.Fatalf("PhoneOf(p1) = %v %v %v", found, got, err)
		}
		if u.ID != wantUser.ID || u.Email != wantUser.Email || u.Locale != wantUser.Locale || u.PhoneNumber != wantUser.PhoneNumber {
			t.Errorf("user %+v, want %+v", u, wantUser)
		}
		if got.ID != wantOpen.ID || got.Status != wantOpen.Status || got.PhoneNumber != wantOpen.PhoneNumber ||
			!bytes.Equal(got.CodeHash, wantOpen.CodeHash) || !bytes.Equal(got.EmailTokenHash, wantOpen.EmailTokenHash) ||
			got.Attempts != 1 || got.Sends != 2 || !got.LastSentAt.Equal(sent) || !got.ExpiresAt.Equal(wantOpen.ExpiresAt) ||
			!got.CreatedAt.Equal(wantOpen.CreatedAt) {
			t.Errorf("open change %+v, want %+v", got, wantOpen)
		}
		if _, found, got, err := s.PhoneOf(ctx, "p2"); err != nil || !found || got != nil {
			t.Fatalf("a user with only a closed change: found %v, open %v, err %v", found, got, err)
		}
	})
}

// A data directory whose name holds "#" or "?" (which end a URI's path)
// keeps its database inside it.
func TestTheSQLiteFileStaysInADataDirWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a#b?c%d")
	st, err := store.Open(store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "userphone.db")); err != nil {
		t.Fatalf("the database is not in the data directory: %v", err)
	}
}
