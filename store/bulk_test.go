package store_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// The bulk tables name the migrated tables' columns, all of them but the
// ones the database fills (phone_events' id), on both dialects.
func TestBulkTablesNameTheMigratedColumns(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			st := storetest.New(t, d)
			for _, tc := range []struct {
				bulk          store.BulkTable
				name          string
				filledByTheDB []string
			}{
				{store.BulkUsers(), "users", nil},
				{store.BulkChanges(), "phone_changes", nil},
				{store.BulkEvents(), "phone_events", []string{"id"}},
			} {
				if tc.bulk.Name != tc.name {
					t.Errorf("table %q, want %q", tc.bulk.Name, tc.name)
				}
				want := slices.DeleteFunc(migratedColumns(t, st, tc.name), func(c string) bool { return slices.Contains(tc.filledByTheDB, c) })
				got := slices.Sorted(slices.Values(tc.bulk.Columns))
				if !slices.Equal(got, want) {
					t.Errorf("%s: bulk columns %v, migrated %v", tc.name, got, want)
				}
			}
		})
	}
}

// migratedColumns lists the table's columns as the database has them,
// sorted.
func migratedColumns(t *testing.T, st *store.Store, table string) []string {
	t.Helper()
	rows, err := st.SQLDB().Query("SELECT * FROM " + table + " WHERE 1 = 0")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(cols)
	return cols
}

// Rows written with the bulk values in the bulk columns' order read back
// through the store as the domain values they came from: values and
// columns line up.
func TestBulkValuesReadBackAsTheDomainValues(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 0, 123456000, time.UTC)
	verifiedAt, lastSent := at.Add(time.Minute), at.Add(2*time.Minute)
	user := userphone.User{ID: "bulk-1", Email: "bulk-1@example.com", Locale: "de", PhoneNumber: "+4915112345678", PhoneVerifiedAt: &verifiedAt}
	change := &userphone.PhoneChange{
		ID: "3f1c0000-0000-4000-8000-000000000001", UserID: user.ID, PhoneNumber: "+4915712345678",
		Status: userphone.StatusAwaitingCode, EmailTokenHash: []byte("token-hash"), CodeHash: []byte("code-hash"),
		Attempts: 1, Sends: 2, LastSentAt: &lastSent, CreatedAt: at, UpdatedAt: lastSent, ExpiresAt: at.Add(24 * time.Hour),
	}
	event := userphone.Event{At: at, Kind: userphone.EventRequested, UserID: user.ID, ChangeID: change.ID,
		PhoneNumber: change.PhoneNumber, RequestID: "req-1", ClientIPHash: "ip-hash", Detail: "detail"}
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			st := storetest.New(t, d)
			insertBulk(t, st, store.BulkUsers(), store.UserValues(user, at, at))
			insertBulk(t, st, store.BulkChanges(), store.ChangeValues(change, 7))
			insertBulk(t, st, store.BulkEvents(), store.EventValues(event))
			checkBulkReadBack(t, st, user, change, event)
			var version int
			if err := st.DB().Raw("SELECT version FROM phone_changes WHERE id = ?", change.ID).Scan(&version).Error; err != nil || version != 7 {
				t.Errorf("version %d (%v), want 7", version, err)
			}
		})
	}
}

func insertBulk(t *testing.T, st *store.Store, table store.BulkTable, values []any) {
	t.Helper()
	if len(values) != len(table.Columns) {
		t.Fatalf("%s: %d values for %d columns", table.Name, len(values), len(table.Columns))
	}
	q := "INSERT INTO " + table.Name + " (" + strings.Join(table.Columns, ", ") + ") VALUES (" +
		strings.TrimSuffix(strings.Repeat("?, ", len(values)), ", ") + ")"
	if err := st.DB().Exec(q, values...).Error; err != nil {
		t.Fatalf("%s: %v", table.Name, err)
	}
}

func checkBulkReadBack(t *testing.T, st *store.Store, user userphone.User, change *userphone.PhoneChange, event userphone.Event) {
	t.Helper()
	ctx := context.Background()
	err := st.Read(ctx, func(tx userphone.Tx) error {
		u, found, err := tx.GetUser(ctx, user.ID)
		if err != nil || !found || u.ID != user.ID || u.Email != user.Email || u.Locale != user.Locale ||
			u.PhoneNumber != user.PhoneNumber || u.PhoneVerifiedAt == nil || !u.PhoneVerifiedAt.Equal(*user.PhoneVerifiedAt) {
			t.Errorf("user %+v (found %v, %v), want %+v", u, found, err, user)
		}
		c, err := tx.ChangeByID(ctx, change.ID)
		if err != nil || c == nil || c.UserID != change.UserID || c.PhoneNumber != change.PhoneNumber || c.Status != change.Status ||
			!bytes.Equal(c.EmailTokenHash, change.EmailTokenHash) || !bytes.Equal(c.CodeHash, change.CodeHash) ||
			c.Attempts != change.Attempts || c.Sends != change.Sends || c.LastSentAt == nil || !c.LastSentAt.Equal(*change.LastSentAt) ||
			!c.CreatedAt.Equal(change.CreatedAt) || !c.UpdatedAt.Equal(change.UpdatedAt) || !c.ExpiresAt.Equal(change.ExpiresAt) || c.ClosedAt != nil {
			t.Errorf("change %+v (%v), want %+v", c, err, change)
		}
		events, err := tx.Events(ctx, user.ID)
		if err != nil || len(events) != 1 {
			t.Fatalf("events %+v (%v), want [%+v]", events, err, event)
		}
		got := events[0]
		if !got.At.Equal(event.At) {
			t.Errorf("event at %v, want %v", got.At, event.At)
		}
		if got.At = event.At; got != event {
			t.Errorf("event %+v, want %+v", got, event)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
