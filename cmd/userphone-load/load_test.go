//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/store/storetest"
)

// TestScenariosAgainstTheRealServer builds the real server, seeds its
// SQLite file, starts it with the webhook SMS provider pointed at the load
// generator's receiver and the limits off, and runs every scenario briefly.
// It checks that the load generator works, not how fast anything is.
func TestScenariosAgainstTheRealServer(t *testing.T) {
	bin := testenv.BuildUserphone(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	// A seeded database first, as for a real measurement.
	var seedOut bytes.Buffer
	if code := run(context.Background(), []string{"seed", "-data-dir", dataDir, "-users", "200", "-changes", "600"}, noEnv, &seedOut, &seedOut); code != 0 {
		t.Fatalf("seed: exit %d\n%s", code, seedOut.String())
	}
	hook := testenv.FreeAddr(t)
	secret := randomHex(32)
	vars := map[string]string{"USERPHONE_DATA_DIR": dataDir, "USERPHONE_LOG_LEVEL": "warn"}
	for _, kv := range serverSettings(webhookURL(hook), secret) {
		vars[kv[0]] = kv[1]
	}
	base := testenv.StartUserphone(t, bin, vars) + "/user/2021-2"

	for _, tc := range []struct {
		name     string
		scenario string
		args     []string
		ops      []string
	}{
		{"check", "check", []string{"-users", "8", "-baseline", "after"}, []string{opCheck, opBaseline}},
		// Open loop, slow enough that the server's delivery queue keeps up
		// and the next scenarios' SMS are not stuck behind these.
		{"request-open-loop", "request", []string{"-rate", "20"}, []string{opPut}},
		{"verify", "verify", nil, []string{opPut, opSMSWait, opVerify}},
		// Users from a token file: asked once, each must keep its answer
		// (these never had a number: 404).
		{"check-token-file", "check", []string{"-tokens", writeTokenFile(t, dataDir, 3), "-users", "3"}, []string{opCheck}},
		// Three messages an iteration: a little longer.
		{"flow", "flow", []string{"-d", "3s"}, []string{opPutFirst, opSMSWait, opVerifyFirst, opPutSecond, opEmailWait, opConfirmPage, opConfirmPost, opVerifySecond}},
		// The floors: net/http + pgx alone, on PostgreSQL.
		{"floor-select", floorSelect, []string{"-database-url", storetest.PostgresURL()}, []string{"select"}},
		{"floor-tx", floorTx, []string{"-database-url", storetest.PostgresURL()}, []string{"tx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "result.json")
			args := append([]string{"-url", base, "-scenario", tc.scenario, "-c", "3", "-d", "2s", "-warmup", "200ms",
				"-data-dir", dataDir, "-webhook-listen", hook, "-webhook-secret", secret, "-baseline", "off",
				"-drain", "5s", "-json", out}, tc.args...)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, noEnv, &stdout, &stderr)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			table := stdout.String()
			if !strings.Contains(table, "operation") || !strings.Contains(table, "p99") || !strings.Contains(table, "errors: 0") {
				t.Fatalf("no result table in the output")
			}
			var rep report
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatalf("the JSON does not parse: %v\n%s", err, raw)
			}
			if rep.Scenario != tc.scenario || rep.Errors != 0 || rep.Iterations == 0 {
				t.Fatalf("scenario %q, %d errors, %d iterations", rep.Scenario, rep.Errors, rep.Iterations)
			}
			got := map[string]opResult{}
			for _, o := range append(rep.Operations, baselineOps(&rep)...) {
				got[o.Name] = o
			}
			for _, name := range tc.ops {
				o, ok := got[name]
				if !ok || o.Requests == 0 || o.Errors != 0 || o.PerSecond <= 0 || o.Latency.P50 <= 0 || o.Latency.Max < o.Latency.P99 {
					t.Errorf("operation %s: %+v", name, o)
				}
				if !strings.Contains(table, name) {
					t.Errorf("the table has no line for %s", name)
				}
			}
			if rep.Baseline != nil && got[opCheck].VsBaseline <= 0 {
				t.Errorf("no ratio to the baseline: %+v", got[opCheck])
			}
		})
	}
}

var noEnv = func(string) string { return "" }

// writeTokenFile writes n dev tokens signed with the server's key, with a
// comment and a blank line, as an operator might.
func writeTokenFile(t *testing.T, dataDir string, n int) string {
	keys, err := auth.LoadOrCreateDevKeys(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	lines := []string{"# tokens for the load test", ""}
	for i := range n {
		sub := "file-user-" + strconv.Itoa(i) + "-" + randomHex(4)
		tok, err := keys.Mint(userphone.Identity{Subject: sub, Email: sub + "@example.com", Scopes: auth.AllScopes}, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, tok)
	}
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokensFromAFileAreReadAndUsedOnce(t *testing.T) {
	dir := t.TempDir()
	tf, err := readTokenFile(writeTokenFile(t, dir, 2))
	if err != nil {
		t.Fatal(err)
	}
	a, okA := tf.next()
	b, okB := tf.next()
	_, okC := tf.next()
	if !okA || !okB || okC || a.Sub == b.Sub || !strings.HasPrefix(a.Sub, "file-user-0-") || a.Email != a.Sub+"@example.com" {
		t.Fatalf("%+v %+v %v", a, b, okC)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not-a-jwt\n"), 0o600)
	if _, err := readTokenFile(bad); err == nil || !strings.Contains(err.Error(), "bad:1") {
		t.Fatalf("a bad line: %v", err)
	}
}

// TestBaselineAlone runs the bare server by itself for an exact number of
// iterations: -n, and a warm-up that is not counted.
func TestBaselineAlone(t *testing.T) {
	out := filepath.Join(t.TempDir(), "result.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-scenario", "baseline", "-c", "4", "-n", "500", "-warmup", "100ms", "-json", out}, noEnv, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var rep report
	raw, _ := os.ReadFile(out)
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Iterations != 500 || len(rep.Operations) != 1 || rep.Operations[0].Requests != 500 || rep.Operations[0].Statuses["200"] != 500 {
		t.Fatalf("want exactly 500 requests: %+v", rep)
	}
}

func TestBadCommandLinesExitWith2(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "nope"},
		{"-c", "0"},
		{"-d", "1s", "-n", "5"},
		{"-baseline", "sometimes"},
		{"-url", "ftp://x"},
		{"extra"},
		{"seed", "-users", "0"},
		{"seed", "-prefix", "a%b"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), args, noEnv, &out, &out); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out.String())
		}
	}
}

// A scenario says what it lacks instead of waiting for codes that cannot
// come: the server's dev key, the webhook's secret.
func TestMissingPartsAreNamed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	withKey := t.TempDir()
	if _, err := auth.LoadOrCreateDevKeys(withKey); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{t.TempDir(): "no dev signing key", withKey: "-webhook-secret"} {
		var out bytes.Buffer
		code := run(context.Background(), []string{"-url", srv.URL + "/user/2021-2", "-scenario", "verify", "-data-dir", dir}, noEnv, &out, &out)
		if code == 0 || !strings.Contains(out.String(), want) {
			t.Errorf("exit %d: %s; want it to name %s", code, out.String(), want)
		}
	}
}
