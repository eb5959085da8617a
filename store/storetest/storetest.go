// Package storetest gives tests a migrated store with a fresh schema of
// their own, on SQLite or PostgreSQL, so that tests run in parallel and
// never see each other's rows.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for schema set-up

	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/store"
)

// PostgresURL is the server the tests use; USERPHONE_TEST_DATABASE_URL
// overrides it.
func PostgresURL() string {
	if u := os.Getenv("USERPHONE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Dialects lists the dialects every store-backed test runs on.
var Dialects = []store.Dialect{store.SQLite, store.Postgres}

// Config returns a store.Config for a fresh, empty database of the dialect:
// a new data directory for SQLite, a new schema for PostgreSQL. The schema
// is dropped when the test ends.
func Config(t testing.TB, dialect store.Dialect) store.Config {
	t.Helper()
	dir := t.TempDir()
	if dialect == store.SQLite {
		return store.Config{DataDir: dir}
	}
	return store.Config{DatabaseURL: Schema(t, PostgresURL(), "test_"), DataDir: dir}
}

// Schema creates a schema named prefix and a random suffix in the
// PostgreSQL database at base, drops it when the test ends, and returns
// base with the schema as its search_path: a database of the test's own
// for the service, or for another program such as an OAuth2 server.
func Schema(t testing.TB, base, prefix string) string {
	t.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		testenv.Missing(t, "PostgreSQL at "+base, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := prefix + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop test schema: %v", err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// New opens and migrates a store on a fresh database of the dialect.
func New(t testing.TB, dialect store.Dialect) *store.Store {
	t.Helper()
	s, err := store.Open(Config(t, dialect))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}
