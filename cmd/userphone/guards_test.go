package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// serveOnce runs `userphone serve` with vars until it is ready (then stops
// it) or exits; it returns the exit code (0 when it served) and the log.
func serveOnce(t *testing.T, vars map[string]string) (int, string) {
	t.Helper()
	if vars["USERPHONE_ADDR"] == "" {
		vars["USERPHONE_ADDR"] = testenv.FreeAddr(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testenv.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve"}, env(vars), os.Stdout, &logs) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-done:
			return code, logs.String()
		default:
		}
		if resp, err := http.Get("http://" + vars["USERPHONE_ADDR"] + "/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				<-done
				return 0, logs.String()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the server neither served nor exited:\n%s", logs.String())
	return -1, ""
}

func wantRefused(t *testing.T, code int, log, name string, mentions ...string) {
	t.Helper()
	if code != 2 || !strings.Contains(log, "userphone: "+name+":") {
		t.Fatalf("exit %d; want 2 and a line naming %s:\n%s", code, name, log)
	}
	for _, m := range mentions {
		if !strings.Contains(log, m) {
			t.Fatalf("the refusal does not mention %s:\n%s", m, log)
		}
	}
}

// Dev sign-in runs only on the embedded SQLite database with a loopback
// address, or when USERPHONE_DEV=1 asks for it.
func TestDevSignInRunsOnlyWhereItIsSafe(t *testing.T) {
	pg := storetest.Config(t, store.Postgres)
	for name, vars := range map[string]map[string]string{
		"PostgreSQL":          {"USERPHONE_DATABASE_URL": pg.DatabaseURL, "USERPHONE_SECRET": strings.Repeat("ab", 32)},
		"all interfaces":      {"USERPHONE_ADDR": "0.0.0.0:0"},
		"a non-loopback name": {"USERPHONE_ADDR": "example.com:8080"},
	} {
		t.Run(name, func(t *testing.T) {
			vars["USERPHONE_DATA_DIR"] = t.TempDir()
			code, log := serveOnce(t, vars)
			wantRefused(t, code, log, "USERPHONE_OIDC_ISSUER", "USERPHONE_DEV")
		})
	}
	t.Run("USERPHONE_DEV=1 on PostgreSQL", func(t *testing.T) {
		code, log := serveOnce(t, map[string]string{"USERPHONE_DATABASE_URL": pg.DatabaseURL, "USERPHONE_DATA_DIR": pg.DataDir,
			"USERPHONE_SECRET": strings.Repeat("ab", 32), "USERPHONE_DEV": "1"})
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, log)
		}
	})
}

// Replicas on PostgreSQL must share one secret: without USERPHONE_SECRET
// the service refuses to start, and a replica with another secret than the
// database's refuses too, until the secret is rotated on purpose.
func TestReplicasCannotDisagreeOnTheSecret(t *testing.T) {
	pg := storetest.Config(t, store.Postgres)
	oidc := map[string]string{"USERPHONE_OIDC_ISSUER": "https://id.example.com", "USERPHONE_OIDC_AUDIENCE": "userphone"}
	vars := map[string]string{"USERPHONE_DATABASE_URL": pg.DatabaseURL, "USERPHONE_DATA_DIR": t.TempDir()}
	for k, v := range oidc {
		vars[k] = v
	}
	code, log := serveOnce(t, vars)
	wantRefused(t, code, log, "USERPHONE_SECRET", "openssl rand -hex 32")

	first, second := strings.Repeat("11", 32), strings.Repeat("22", 32)
	replica := func(secret string) map[string]string {
		return map[string]string{"USERPHONE_DATABASE_URL": pg.DatabaseURL, "USERPHONE_DATA_DIR": t.TempDir(), "USERPHONE_DEV": "1", "USERPHONE_SECRET": secret}
	}
	if code, log := serveOnce(t, replica(first)); code != 0 {
		t.Fatalf("the first replica: exit %d:\n%s", code, log)
	}
	code, log = serveOnce(t, replica(second))
	wantRefused(t, code, log, "USERPHONE_SECRET", "differs", "rotate-secret")
	if code, log := serveOnce(t, replica(first)); code != 0 {
		t.Fatalf("the first secret again: exit %d:\n%s", code, log)
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"rotate-secret"}, env(replica(second)), &stdout, &stderr); code != 0 {
		t.Fatalf("rotate-secret: exit %d: %s", code, stderr.String())
	}
	if code, log := serveOnce(t, replica(second)); code != 0 {
		t.Fatalf("the rotated secret: exit %d:\n%s", code, log)
	}
	code, log = serveOnce(t, replica(first))
	wantRefused(t, code, log, "USERPHONE_SECRET", "differs")
}

// A mistyped variable is warned about, with the setting it resembles.
func TestAMistypedVariableIsWarnedAbout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	vars := map[string]string{"USERPHONE_OIDC_ISSUR": "https://id.example.com", "USERPHONE_TEST_STRICT": "1", "USERPHONE_DATA_DIR": t.TempDir()}
	if code := run(context.Background(), []string{"config"}, env(vars), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	log := stderr.String()
	if !strings.Contains(log, "USERPHONE_OIDC_ISSUR is not a setting") || !strings.Contains(log, "did you mean USERPHONE_OIDC_ISSUER?") {
		t.Fatalf("no warning naming the mistyped variable and the closest setting:\n%s", log)
	}
	if strings.Contains(log, "USERPHONE_TEST_STRICT") {
		t.Fatalf("a variable of the tests was warned about:\n%s", log)
	}
}

// `userphone config` prints every setting's effective value and where it
// came from, with secrets and passwords hidden.
func TestConfigPrintsTheEffectiveSettingsWithSecretsMasked(t *testing.T) {
	var stdout, stderr bytes.Buffer
	vars := map[string]string{
		"USERPHONE_SECRET":       strings.Repeat("ab", 32),
		"USERPHONE_DATABASE_URL": "postgres://app:hunter2@db.example.com/userphone",
		"USERPHONE_SMTP_URL":     "smtp://mail:s3cret@smtp.example.com:587",
		"USERPHONE_CODE_TTL":     "5m",
		"USERPHONE_DATA_DIR":     t.TempDir(),
	}
	if code := run(context.Background(), []string{"config"}, env(vars), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, secret := range []string{"abab", "hunter2", "s3cret"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the output shows %q:\n%s", secret, out)
		}
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			lines[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for name, want := range map[string]string{
		"USERPHONE_CODE_TTL":           "5m0s environment",
		"USERPHONE_PROCESS_TTL":        "24h0m0s default",
		"USERPHONE_SECRET":             "(set, hidden) environment",
		"USERPHONE_DATABASE_URL":       "postgres://app:xxxxx@db.example.com/userphone environment",
		"USERPHONE_SMTP_URL":           "smtp://mail:xxxxx@smtp.example.com:587 environment",
		"USERPHONE_LIMITS":             "on default",
		"USERPHONE_SMS_WEBHOOK_SECRET": "(empty) default",
	} {
		if lines[name] != want {
			t.Errorf("%s: %q, want %q", name, lines[name], want)
		}
	}
}
