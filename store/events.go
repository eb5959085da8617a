package store

import (
	"context"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/pace/userphone"
)

// insertEvent is the INSERT of one event, its columns the model's (as the
// bulk loader's): GORM's Create costs reflection on every call, and events
// are the most frequent write, two or three a PUT.
var insertEvent = sync.OnceValue(func() string {
	t := BulkEvents()
	return "INSERT INTO " + t.Name + " (" + strings.Join(t.Columns, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(t.Columns)-1) + ")"
})

func (t *tx) AddEvent(ctx context.Context, e userphone.Event) error {
	return t.db.WithContext(ctx).Exec(insertEvent(), EventValues(e)...).Error
}

func (t *tx) CountEvents(ctx context.Context, q userphone.EventQuery) (int, time.Time, error) {
	kinds := make([]string, len(q.Kinds))
	for i, k := range q.Kinds {
		kinds[i] = string(k)
	}
	// Raw SQL read with Rows: the builder and Scan cost more than the
	// indexed count itself, and the limits count several times a PUT.
	sqlText := "SELECT COUNT(*), MIN(at) FROM phone_events WHERE kind IN ? AND at > ?"
	args := []any{kinds, dbTime(q.Since)}
	for _, f := range []struct{ cond, value string }{
		{"user_id = ?", q.UserID}, {"phone_number = ?", q.PhoneNumber}, {"user_id <> ?", q.NotUserID},
		{"client_net_hash = ?", q.ClientNetHash}, {"dest_prefix = ?", q.DestPrefix},
	} {
		if f.value != "" {
			sqlText += " AND " + f.cond
			args = append(args, f.value)
		}
	}
	rows, err := t.db.WithContext(ctx).Raw(sqlText, args...).Rows()
	if err != nil {
		return 0, time.Time{}, err
	}
	defer rows.Close()
	var n int
	var oldest *time.Time
	if rows.Next() {
		if err := rows.Scan(&n, &oldest); err != nil {
			return 0, time.Time{}, err
		}
	}
	if err := rows.Err(); err != nil || oldest == nil {
		return n, time.Time{}, err
	}
	return n, oldest.UTC(), nil
}

func (t *tx) Events(ctx context.Context, userID string) ([]userphone.Event, error) {
	var rows []eventRow
	if err := t.db.WithContext(ctx).Where("user_id = ?", userID).Order("at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]userphone.Event, len(rows))
	for i, r := range rows {
		out[i] = r.domain()
	}
	return out, nil
}

// Lock takes a transaction-scoped advisory lock on PostgreSQL. On SQLite
// the transaction already holds the database's only write lock.
func (t *tx) Lock(ctx context.Context, key string) error {
	if t.dialect != Postgres || !t.locking {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("userphone:" + key))
	return t.db.WithContext(ctx).Exec("SELECT pg_advisory_xact_lock(?)", int64(h.Sum64())).Error
}

func (t *tx) OwnerOf(ctx context.Context, number string) (string, bool, error) {
	var ids []string
	if err := t.db.WithContext(ctx).Model(&userRow{}).Where("phone_number = ?", number).Limit(1).Pluck("id", &ids).Error; err != nil {
		return "", false, err
	}
	if len(ids) == 0 {
		return "", false, nil
	}
	return ids[0], true, nil
}
