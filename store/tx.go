package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/pace/userphone"
)

// tx implements userphone.Tx on one GORM transaction (or, for Store.Read,
// on the pool).
type tx struct {
	db      *gorm.DB
	dialect Dialect
	// pgxTx is the PostgreSQL transaction that db's statements run in, for
	// a job queue that inserts with pgx (PgxTxOf); nil on SQLite.
	pgxTx pgx.Tx
	// locking is false for Store.Read, which must not write.
	locking bool
	// versions remembers the version of each change this transaction read
	// or wrote, so SaveChange can refuse to overwrite a newer one.
	versions map[string]int
}

// forUpdate locks the selected rows on PostgreSQL. SQLite needs no row
// locks: its immediate transactions hold the database's write lock.
func (t *tx) forUpdate() *gorm.DB {
	if t.locking && t.dialect == Postgres {
		return t.db.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return t.db
}

func (t *tx) UpsertUser(ctx context.Context, id userphone.Identity, now time.Time) (userphone.User, error) {
	now = dbTime(now)
	// The upsert also takes the row lock (PostgreSQL) that serialises one
	// user's requests, and returns the row: one round trip. An identity
	// without e-mail or locale keeps what was remembered from an earlier
	// token.
	rows, err := t.db.WithContext(ctx).Raw(`INSERT INTO users (id, email, locale, created_at, updated_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
  email = CASE WHEN excluded.email <> '' THEN excluded.email ELSE users.email END,
  locale = CASE WHEN excluded.locale <> '' THEN excluded.locale ELSE users.locale END,
  updated_at = excluded.updated_at
RETURNING id, email, locale, phone_number, phone_verified_at, created_at, updated_at`, id.Subject, id.Email, id.Locale, now, now).Rows()
	if err != nil {
		return userphone.User{}, err
	}
	defer rows.Close()
	if !rows.Next() {
		return userphone.User{}, fmt.Errorf("the upsert of user %q returned no row: %v", id.Subject, rows.Err())
	}
	var u userRow
	if err := rows.Scan(&u.ID, &u.Email, &u.Locale, &u.PhoneNumber, &u.PhoneVerifiedAt, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return userphone.User{}, err
	}
	// Read to the end: the statement is done, and the connection free for
	// the next one, only then.
	for rows.Next() {
	}
	return u.domain(), rows.Err()
}

func (t *tx) LockUser(ctx context.Context, userID string) (userphone.User, bool, error) {
	return t.getUser(t.forUpdate().WithContext(ctx), userID)
}

func (t *tx) GetUser(ctx context.Context, userID string) (userphone.User, bool, error) {
	return t.getUser(t.db.WithContext(ctx), userID)
}

func (t *tx) getUser(db *gorm.DB, userID string) (userphone.User, bool, error) {
	var row userRow
	err := db.Where("id = ?", userID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return userphone.User{}, false, nil
	}
	if err != nil {
		return userphone.User{}, false, err
	}
	return row.domain(), true, nil
}

func (t *tx) OpenChange(ctx context.Context, userID string) (*userphone.PhoneChange, error) {
	return t.findChange(t.forUpdate().WithContext(ctx).
		Where("user_id = ? AND status IN ?", userID, userphone.OpenStatuses))
}

func (t *tx) LatestChange(ctx context.Context, userID string) (*userphone.PhoneChange, error) {
	return t.findChange(t.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at DESC"))
}

func (t *tx) ChangeByID(ctx context.Context, id string) (*userphone.PhoneChange, error) {
	return t.findChange(t.forUpdate().WithContext(ctx).Where("id = ?", id))
}

func (t *tx) ChangeByEmailToken(ctx context.Context, tokenHash []byte) (*userphone.PhoneChange, error) {
	return t.findChange(t.db.WithContext(ctx).Where("email_token_hash = ?", tokenHash))
}

func (t *tx) findChange(q *gorm.DB) (*userphone.PhoneChange, error) {
	var row changeRow
	err := q.Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t.remember(row.ID, row.Version)
	return row.domain(), nil
}

func (t *tx) remember(id string, version int) {
	if t.versions == nil {
		t.versions = map[string]int{}
	}
	t.versions[id] = version
}

func (t *tx) InsertChange(ctx context.Context, c *userphone.PhoneChange) error {
	row := changeRowOf(c)
	if err := t.db.WithContext(ctx).Create(&row).Error; err != nil {
		return err
	}
	t.remember(row.ID, row.Version)
	return nil
}

// SaveChange writes c only if nobody changed it since this transaction read
// it; otherwise it returns userphone.ErrConflict and the caller runs the
// transaction again on fresh data.
func (t *tx) SaveChange(ctx context.Context, c *userphone.PhoneChange) error {
	read, ok := t.versions[c.ID]
	if !ok {
		return errors.New("save phone change " + c.ID + ": it was not read in this transaction")
	}
	row := changeRowOf(c)
	row.Version = read + 1
	// Select("*") writes zero values too, e.g. a cleared code hash.
	res := t.db.WithContext(ctx).Model(&changeRow{}).Where("id = ? AND version = ?", c.ID, read).
		Select("*").Omit("id", "user_id", "created_at").Updates(&row)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("%w: phone change %s changed since it was read", userphone.ErrConflict, c.ID)
	}
	t.remember(c.ID, row.Version)
	return nil
}

func (t *tx) TakeVerifiedNumber(ctx context.Context, userID, number string, now time.Time) ([]userphone.User, error) {
	now = dbTime(now)
	db := t.db.WithContext(ctx)
	var rows []userRow
	if err := t.forUpdate().WithContext(ctx).Where("phone_number = ? AND id <> ?", number, userID).Find(&rows).Error; err != nil {
		return nil, err
	}
	if len(rows) > 0 {
		err := db.Model(&userRow{}).Where("phone_number = ? AND id <> ?", number, userID).
			Updates(map[string]any{"phone_number": nil, "phone_verified_at": nil, "updated_at": now}).Error
		if err != nil {
			return nil, err
		}
	}
	err := db.Model(&userRow{}).Where("id = ?", userID).
		Updates(map[string]any{"phone_number": number, "phone_verified_at": now, "updated_at": now}).Error
	if err != nil {
		return nil, err
	}
	previous := make([]userphone.User, len(rows))
	for i, r := range rows {
		previous[i] = r.domain()
	}
	return previous, nil
}

func (t *tx) ExpireDue(ctx context.Context, now time.Time) ([]userphone.PhoneChange, error) {
	now = dbTime(now)
	var rows []changeRow
	due := t.forUpdate().WithContext(ctx).Where("status IN ? AND expires_at <= ?", userphone.OpenStatuses, now)
	if err := due.Find(&rows).Error; err != nil || len(rows) == 0 {
		return nil, err
	}
	ids := make([]string, len(rows))
	out := make([]userphone.PhoneChange, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
		out[i] = *r.domain()
	}
	err := t.db.WithContext(ctx).Model(&changeRow{}).Where("id IN ?", ids).
		Updates(map[string]any{
			"status": string(userphone.StatusExpired), "closed_at": now, "updated_at": now,
			"code_hash": nil, "version": gorm.Expr("version + 1"),
		}).Error
	return out, err
}

func (t *tx) PurgeClosedBefore(ctx context.Context, before time.Time) (int64, error) {
	res := t.db.WithContext(ctx).Where("status NOT IN ? AND closed_at < ?", userphone.OpenStatuses, dbTime(before)).
		Delete(&changeRow{})
	if res.Error != nil {
		return 0, res.Error
	}
	err := t.db.WithContext(ctx).Where("at < ?", dbTime(before)).Delete(&eventRow{}).Error
	return res.RowsAffected, err
}

// Unwrapper is a userphone.Tx that wraps another one, as tests do to put
// faults between the flow and the store. Unwrap returns the wrapped Tx, so
// that SQLTxOf and PgxTxOf can reach the store's transaction through any
// number of wrappers, as errors.Unwrap reaches through wrapped errors.
type Unwrapper interface {
	Unwrap() userphone.Tx
}

// SQLTxOf returns the database/sql transaction under tx (SQLite), so that
// a job queue keeping its tables in the same database can insert jobs in
// the transaction of the state change that announces them: the job then
// commits or rolls back with the change. tx must come from Store.InTx,
// possibly wrapped (see Unwrapper).
func SQLTxOf(t userphone.Tx) (*sql.Tx, error) {
	st, err := storeTxOf(t)
	if err != nil {
		return nil, err
	}
	sqlTx, ok := st.db.Statement.ConnPool.(*sql.Tx)
	if !ok {
		return nil, errors.New("store: the transaction is no database/sql write transaction from InTx (a read, or PostgreSQL's: see PgxTxOf)")
	}
	return sqlTx, nil
}

// PgxTxOf is SQLTxOf for PostgreSQL, where the store's transactions are
// pgx's, on the pool the job queue shares.
func PgxTxOf(t userphone.Tx) (pgx.Tx, error) {
	st, err := storeTxOf(t)
	if err != nil {
		return nil, err
	}
	if st.pgxTx == nil {
		return nil, errors.New("store: the transaction is no PostgreSQL write transaction from InTx")
	}
	return st.pgxTx, nil
}

// storeTxOf finds the store's transaction under any wrappers.
func storeTxOf(t userphone.Tx) (*tx, error) {
	for t != nil {
		if st, ok := t.(*tx); ok {
			return st, nil
		}
		u, ok := t.(Unwrapper)
		if !ok {
			break
		}
		t = u.Unwrap()
	}
	return nil, fmt.Errorf("store: %T is neither the store's transaction nor wraps one (see store.Unwrapper)", t)
}
