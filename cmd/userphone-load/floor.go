package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The floors: what this machine does at all with PostgreSQL in the loop, a
// bare net/http + pgx server in the load generator's process doing the
// primitive work of the service's requests, on a pool as large as the
// server's default (16). A scenario's share of its floor says how much of
// the time is the service's own.
const (
	floorPoolSize = 16
	floorUsers    = 20_000
	// floorSelect answers GET /select with one primary-key SELECT, as
	// GET /user/phone does at least.
	floorSelect = "floor-select"
	// floorTx answers PUT /tx with one transaction of an upsert and two
	// inserts, as PUT /user/phone does at least.
	floorTx = "floor-tx"
)

// startFloor starts the floor server on databaseURL, with tables of its
// own that stop drops.
func startFloor(ctx context.Context, databaseURL string) (url string, stop func(), err error) {
	if databaseURL == "" {
		return "", nil, fmt.Errorf("%w: the floors need PostgreSQL: give -database-url or USERPHONE_DATABASE_URL", errUsage)
	}
	pc, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return "", nil, fmt.Errorf("%w: -database-url does not parse", errUsage)
	}
	pc.MaxConns = floorPoolSize
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return "", nil, err
	}
	suffix := strconv.Itoa(rand.IntN(1_000_000))
	users, events := "load_floor_users_"+suffix, "load_floor_events_"+suffix
	if _, err := pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE %[1]s (id text PRIMARY KEY, email text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE %[2]s (id bigserial PRIMARY KEY, user_id text NOT NULL, kind text NOT NULL, at timestamptz NOT NULL);
INSERT INTO %[1]s SELECT 'floor-' || n, 'floor-' || n || '@example.com', now() FROM generate_series(0, %[3]d) n`, users, events, floorUsers-1)); err != nil {
		pool.Close()
		return "", nil, fmt.Errorf("set up the floor's tables: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pool.Close()
		return "", nil, err
	}
	srv := &http.Server{Handler: floorHandler(pool, users, events), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		_ = srv.Close()
		_, _ = pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+users+", "+events)
		pool.Close()
	}, nil
}

func floorHandler(pool *pgxpool.Pool, users, events string) http.Handler {
	selectUser := "SELECT id, email FROM " + users + " WHERE id = $1"
	upsert := "INSERT INTO " + users + " (id, email, updated_at) VALUES ($1, $2, now()) ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at"
	insertEvent := "INSERT INTO " + events + " (user_id, kind, at) VALUES ($1, $2, now())"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /select", func(w http.ResponseWriter, r *http.Request) {
		var id, email string
		if err := pool.QueryRow(r.Context(), selectUser, r.URL.Query().Get("u")).Scan(&id, &email); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeFloorJSON(w, id)
	})
	mux.HandleFunc("PUT /tx", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("u")
		tx, err := pool.Begin(r.Context())
		if err == nil {
			_, err = tx.Exec(r.Context(), upsert, id, id+"@example.com")
		}
		for _, kind := range []string{"requested", "sms-sent"} {
			if err == nil {
				_, err = tx.Exec(r.Context(), insertEvent, id, kind)
			}
		}
		if err == nil {
			err = tx.Commit(r.Context())
		}
		if err != nil {
			if tx != nil {
				_ = tx.Rollback(context.WithoutCancel(r.Context()))
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeFloorJSON(w, id)
	})
	return mux
}

func writeFloorJSON(w http.ResponseWriter, id string) {
	w.Header().Set("Content-Type", "application/vnd.api+json")
	fmt.Fprintf(w, `{"data":{"type":"phone","id":%q,"attributes":{"phoneNumber":"+4917600000000","verified":true}}}`, id)
}

// iterateFloor is one request to the floor server: a random one of its
// users, as the scenarios ask about distinct users.
func iterateFloor(method, path string) func(ctx context.Context, w *worker) error {
	return func(ctx context.Context, w *worker) error {
		u := "floor-" + strconv.Itoa(rand.IntN(floorUsers))
		if !w.call(ctx, path[1:], func(ctx context.Context) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, method, w.env.baselineURL+path+"?u="+u, nil)
			if err != nil {
				return nil, err
			}
			return w.env.hc.Do(req)
		}) {
			return errAbort
		}
		return nil
	}
}
