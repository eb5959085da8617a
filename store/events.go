package store

import (
	"context"
	"hash/fnv"
	"time"

	"github.com/pace/userphone"
)

func (t *tx) AddEvent(ctx context.Context, e userphone.Event) error {
	row := eventRowOf(e)
	return t.db.WithContext(ctx).Create(&row).Error
}

func (t *tx) CountEvents(ctx context.Context, q userphone.EventQuery) (int, time.Time, error) {
	kinds := make([]string, len(q.Kinds))
	for i, k := range q.Kinds {
		kinds[i] = string(k)
	}
	db := t.db.WithContext(ctx).Model(&eventRow{}).Where("kind IN ? AND at > ?", kinds, dbTime(q.Since))
	if q.UserID != "" {
		db = db.Where("user_id = ?", q.UserID)
	}
	if q.PhoneNumber != "" {
		db = db.Where("phone_number = ?", q.PhoneNumber)
	}
	if q.NotUserID != "" {
		db = db.Where("user_id <> ?", q.NotUserID)
	}
	if q.ClientNetHash != "" {
		db = db.Where("client_net_hash = ?", q.ClientNetHash)
	}
	if q.DestPrefix != "" {
		db = db.Where("dest_prefix = ?", q.DestPrefix)
	}
	var res struct {
		N      int
		Oldest *time.Time
	}
	if err := db.Select("COUNT(*) AS n, MIN(at) AS oldest").Scan(&res).Error; err != nil {
		return 0, time.Time{}, err
	}
	if res.Oldest == nil {
		return res.N, time.Time{}, nil
	}
	return res.N, res.Oldest.UTC(), nil
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
