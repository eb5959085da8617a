package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

func TestAuditPrintsAUsersTrailWithoutSecrets(t *testing.T) {
	addr, dir := testenv.FreeAddr(t), t.TempDir()
	vars := map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_DATA_DIR": dir}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, env(vars), os.Stdout, io.Discard) }()
	waitReady(t, "http://"+addr)

	keys, err := auth.LoadOrCreateDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := keys.Mint(userphone.Identity{Subject: "ada", Scopes: auth.AllScopes}, time.Hour, time.Now())
	call := func(method, path, contentType, body string) int {
		req, _ := http.NewRequest(method, "http://"+addr+openapi.BasePath+path, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Request-Id", "audit-req-1")
		resp, err := contract.Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := call("PUT", "/user/phone", "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345678"}}}`); s != 201 {
		t.Fatalf("PUT: %d", s)
	}
	code := outboxCode(t, dir, "+4915112345678")
	if s := call("PUT", "/user/phone/verify", "application/json", `{"code":"`+testservers.WrongCode(code)+`"}`); s != 422 {
		t.Fatalf("verify: %d", s)
	}
	cancel()
	<-done

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"audit", "--sub", "ada"}, env(vars), &stdout, &stderr); code != 0 {
		t.Fatalf("audit: exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"requested", "sms-sent", "verify-failed", "audit-req-1", "+4915112345678"} {
		if !strings.Contains(out, want) {
			t.Errorf("the trail lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1") {
		t.Errorf("the trail shows the client IP in clear:\n%s", out)
	}
	if strings.Contains(out, code) {
		t.Errorf("the trail holds the code %s", code)
	}
}

// audit reads; it never migrates. On a database without userphone's
// schema it says what to do, and leaves the database as it found it.
func TestAuditRefusesAnUnmigratedDatabaseAndLeavesItAlone(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := storetest.Config(t, d)
			vars := map[string]string{"USERPHONE_DATA_DIR": cfg.DataDir, "USERPHONE_DATABASE_URL": cfg.DatabaseURL}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"audit", "--sub", "ada"}, env(vars), &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), "run `userphone migrate`") {
				t.Fatalf("audit on an unmigrated database: exit %d, stderr %q; want a refusal that says to migrate", code, stderr.String())
			}
			st, err := store.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if tables := tablesOf(t, st); len(tables) != 0 {
				t.Fatalf("audit created %v", tables)
			}
		})
	}
}

// tablesOf lists the tables of the store's schema.
func tablesOf(t *testing.T, st *store.Store) []string {
	t.Helper()
	q := "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
	if st.Dialect() == store.SQLite {
		q = "SELECT name FROM sqlite_master WHERE type = 'table'"
	}
	var tables []string
	if err := st.DB().Raw(q).Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	return tables
}
