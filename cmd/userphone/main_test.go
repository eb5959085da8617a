package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// env is an environment of vars alone, as os.Environ would list it. The
// metrics listener is off unless vars names it: its default port may be
// taken on a developer's machine, and tests run in parallel.
func env(vars map[string]string) []string {
	out := []string{}
	if _, ok := vars["USERPHONE_METRICS_ADDR"]; !ok {
		out = append(out, "USERPHONE_METRICS_ADDR=")
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

func TestABadSettingStopsStartupWithOneLineNamingIt(t *testing.T) {
	for name, value := range map[string]string{
		"USERPHONE_ADDR":                          "8080",
		"USERPHONE_DATABASE_URL":                  "mysql://root@localhost/test",
		"USERPHONE_PUBLIC_URL":                    "ftp://example.com",
		"USERPHONE_PROCESS_TTL":                   "a day",
		"USERPHONE_RESEND_COOLDOWN":               "-1s",
		"USERPHONE_MAX_CODE_ATTEMPTS":             "0",
		"USERPHONE_SECRET":                        "tooshort",
		"USERPHONE_LOG_LEVEL":                     "loud",
		"USERPHONE_LOG_FORMAT":                    "xml",
		"USERPHONE_SHUTDOWN_TIMEOUT":              "forever",
		"USERPHONE_OIDC_AUDIENCE":                 "userphone", // without an issuer
		"USERPHONE_WORKERS":                       "-1",
		"USERPHONE_RETENTION":                     "5m",
		"USERPHONE_SMS_PROVIDER":                  "pigeon",
		"USERPHONE_SMTP_URL":                      "smtp://127.0.0.1:2525", // without USERPHONE_MAIL_FROM
		"USERPHONE_SMTP_TLS":                      "sometimes",
		"USERPHONE_ALLOWED_REGIONS":               "DE,Germany",
		"USERPHONE_TRUSTED_PROXIES":               "10.0.0.0/33",
		"USERPHONE_LIMIT_SMS_PER_HOUR":            "-5",
		"USERPHONE_CODE_TTL":                      "30s",
		"USERPHONE_LIMITS":                        "maybe",
		"USERPHONE_DENY_NONGEOGRAPHIC":            "perhaps",
		"USERPHONE_SMS_ORIGIN_BOUND":              "yes please",
		"USERPHONE_LIMIT_NETWORK_BITS_IPV4":       "33",
		"USERPHONE_LIMIT_SMS_PER_PREFIX_PER_HOUR": "-1",
		"USERPHONE_DEPRECATION_DATE":              "last year",
		"USERPHONE_DATABASE_MAX_CONNS":            "1",
		"USERPHONE_DELIVERY_RESCUE_AFTER":         "5s",         // not above the 20 s job timeout
		"USERPHONE_SUNSET_DATE":                   "2020-01-01", // before the deprecation
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"serve"}, env(map[string]string{name: value, "USERPHONE_DATA_DIR": t.TempDir()}), &stdout, &stderr)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], name) {
				t.Fatalf("exit %d, stderr %q; want 2 and one line naming %s", code, stderr.String(), name)
			}
		})
	}
}

// Every limit is on unless an operator turns it off.
func TestLimitsAreOnByDefault(t *testing.T) {
	cfg, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	l, f, h := cfg.App.Flow.Limits, cfg.App.Flow, cfg.App.HTTP
	if l.ChangesPerHour != 5 || l.ChangesPerDay != 10 || l.SMSPerNumberPerHour != 3 || l.SMSPerNumberPerDay != 10 ||
		l.SMSPerHour != 1000 || h.IPRate != 20 || h.IPBurst != 40 || f.ResendCooldown != time.Minute || f.MaxCodeAttempts != 5 {
		t.Fatalf("defaults: %+v, ip %v/%d", l, h.IPRate, h.IPBurst)
	}
	if l.SMSPerNetworkPerHour != 20 || l.SMSPerNetworkPerDay != 100 || l.SMSPerPrefixPerHour != 10 || l.SMSPerPrefixPerDay != 30 ||
		l.SMSToOwnedNumberPerDay != 3 || l.WrongCodesPerNumberPerDay != 10 || !l.DenyNonGeographic ||
		l.IPv4NetworkBits != 24 || l.IPv6NetworkBits != 48 || f.CodeTTL != 10*time.Minute || !f.OriginBoundCodes {
		t.Fatalf("the limits against pumping and takeover: %+v, code TTL %v, origin-bound %v", l, f.CodeTTL, f.OriginBoundCodes)
	}
	cfg, err = loadConfig(env(map[string]string{"USERPHONE_ALLOWED_REGIONS": "de, AT", "USERPHONE_TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1"}))
	if err != nil || len(cfg.App.Flow.Limits.AllowedRegions) != 2 || cfg.App.Flow.Limits.AllowedRegions[0] != "DE" || len(cfg.App.HTTP.TrustedProxies) != 2 {
		t.Fatalf("lists: %+v %v (%v)", cfg.App.Flow.Limits.AllowedRegions, cfg.App.HTTP.TrustedProxies, err)
	}
}

// USERPHONE_LIMITS=off turns every counted limit off for a load test, and
// keeps which numbers are accepted; with an OIDC issuer it is refused, and
// a code TTL longer than the process is refused.
func TestLimitsOffAndTheCodeTTLAreChecked(t *testing.T) {
	cfg, err := loadConfig(env(map[string]string{"USERPHONE_LIMITS": "off", "USERPHONE_ALLOWED_REGIONS": "DE"}))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.App.Flow.Limits
	if l.ChangesPerHour != 0 || l.SMSPerNetworkPerHour != 0 || l.SMSPerPrefixPerDay != 0 || l.WrongCodesPerNumberPerDay != 0 ||
		l.SMSPerHour != 0 || cfg.App.HTTP.IPRate != 0 || !l.DenyNonGeographic || len(l.AllowedRegions) != 1 {
		t.Fatalf("limits off: %+v, ip rate %v", l, cfg.App.HTTP.IPRate)
	}
	for name, vars := range map[string]map[string]string{
		"USERPHONE_LIMITS":   {"USERPHONE_LIMITS": "off", "USERPHONE_OIDC_ISSUER": "https://id.example.com", "USERPHONE_OIDC_AUDIENCE": "userphone"},
		"USERPHONE_CODE_TTL": {"USERPHONE_CODE_TTL": "2h", "USERPHONE_PROCESS_TTL": "1h"},
	} {
		if _, err := loadConfig(env(vars)); err == nil || !strings.HasPrefix(err.Error(), name+":") {
			t.Errorf("%v: %v; want a refusal naming %s", vars, err, name)
		}
	}
}

func TestOIDCSettingsAreChecked(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"USERPHONE_OIDC_AUDIENCE": {"USERPHONE_OIDC_ISSUER": "https://id.example.com/realms/pace"},
		"USERPHONE_OIDC_ISSUER":   {"USERPHONE_OIDC_ISSUER": "http://id.example.com/realms/pace", "USERPHONE_OIDC_AUDIENCE": "userphone"},
		"USERPHONE_OIDC_CLIENT_SECRET": {"USERPHONE_OIDC_ISSUER": "https://id.example.com", "USERPHONE_OIDC_AUDIENCE": "userphone",
			"USERPHONE_OIDC_CLIENT_ID": "userphone"},
		"USERPHONE_OIDC_INTROSPECTION_URL": {"USERPHONE_OIDC_ISSUER": "https://id.example.com", "USERPHONE_OIDC_AUDIENCE": "userphone",
			"USERPHONE_OIDC_INTROSPECTION_URL": "http://hydra-admin.example.com/admin/oauth2/introspect"},
	} {
		vars["USERPHONE_DATA_DIR"] = t.TempDir()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"serve"}, env(vars), &stdout, &stderr)
		if code != 2 || !strings.HasPrefix(stderr.String(), "userphone: "+name+":") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, %q; want 2 and one line naming %s", vars, code, stderr.String(), name)
		}
	}
}

func TestTokenPrintsOnlyAVerifiableToken(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"token", "--sub", "alice", "--email", "alice@example.com", "--scope", auth.ScopeCheck},
		env(map[string]string{"USERPHONE_DATA_DIR": dir}), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if strings.Count(out, "\n") != 1 || strings.Count(out, ".") != 2 {
		t.Fatalf("stdout is not one token line: %q", out)
	}
	keys, err := auth.LoadOrCreateDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := keys.Verifier(auth.Policy{}, nil, nil).Verify(context.Background(), strings.TrimSpace(out))
	if err != nil || id.Subject != "alice" || id.Email != "alice@example.com" || len(id.Scopes) != 1 || id.Scopes[0] != auth.ScopeCheck {
		t.Fatalf("token names %+v (%v)", id, err)
	}
	code = run(context.Background(), []string{"token", "--email", "x@example.com"}, env(map[string]string{"USERPHONE_DATA_DIR": dir}), &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--sub") {
		t.Fatalf("without --sub: exit %d, %q", code, stderr.String())
	}
}

func TestMigrateOnBothDatabases(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := storetest.Config(t, d)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"migrate"},
				env(map[string]string{"USERPHONE_DATA_DIR": cfg.DataDir, "USERPHONE_DATABASE_URL": cfg.DatabaseURL}), &stdout, &stderr)
			if code != 0 || !strings.Contains(stderr.String(), "database is migrated") {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			st, err := store.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if applied, latest, err := st.SchemaVersion(context.Background()); err != nil || applied != latest {
				t.Fatalf("schema at %d of %d (%v)", applied, latest, err)
			}
		})
	}
}

func TestServeStopsCleanlyWhenAsked(t *testing.T) {
	addr := testenv.FreeAddr(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testenv.SyncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_DATA_DIR": dir}), os.Stdout, &stderr)
	}()
	waitReady(t, "http://"+addr)
	cancel() // what SIGTERM does through signal.NotifyContext
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, f := range []string{"userphone.db", "secret", "dev-signing-key.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data directory lacks %s: %v", f, err)
		}
	}
}

// Codes and links in flight must survive a restart, so the secret that
// keys their hashes is made once and then reused.
func TestTheSecretIsMadeOnceAndKept(t *testing.T) {
	cfg := defaultConfig()
	cfg.App.Store.DataDir = t.TempDir()
	first, err := loadSecret(cfg)
	if err != nil {
		t.Fatal(err)
	}
	second, err := loadSecret(cfg)
	if err != nil || !bytes.Equal(first, second) || len(first) < flow.MinSecretBytes {
		t.Fatalf("second load gave a different secret (%v)", err)
	}
	info, err := os.Stat(filepath.Join(cfg.App.Store.DataDir, "secret"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v (%v), want 0600", info.Mode(), err)
	}
	cfg.App.Flow.Secret = bytes.Repeat([]byte{9}, flow.MinSecretBytes)
	if got, _ := loadSecret(cfg); !bytes.Equal(got, cfg.App.Flow.Secret) {
		t.Fatal("USERPHONE_SECRET does not win over the file")
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if testenv.AnswersOK(base + "/health/ready") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never became ready", base)
}
