package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/metrics/metricstest"
	"github.com/pace/userphone/store/storetest"
)

func TestTheMetricsListenerIsOnByDefaultOnLoopback(t *testing.T) {
	cfg, err := loadConfig(nil)
	if err != nil || cfg.MetricsAddr != "127.0.0.1:9090" {
		t.Fatalf("default %q (%v); want 127.0.0.1:9090", cfg.MetricsAddr, err)
	}
	for value, want := range map[string]string{"": "", " ": "", ":9100": ":9100", "0.0.0.0:9100": "0.0.0.0:9100"} {
		cfg, err := loadConfig([]string{"USERPHONE_METRICS_ADDR=" + value})
		if err != nil || cfg.MetricsAddr != want {
			t.Errorf("USERPHONE_METRICS_ADDR=%q: %q (%v); want %q", value, cfg.MetricsAddr, err, want)
		}
	}
}

func TestABadMetricsAddressStopsStartupWithOneLineNamingIt(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	api := testenv.FreeAddr(t)
	for _, value := range []string{"9090", "127.0.0.1:http-alt", "127.0.0.1:70000", api, taken.Addr().String()} {
		t.Run(value, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			vars := map[string]string{"USERPHONE_ADDR": api, "USERPHONE_DATA_DIR": t.TempDir(), "USERPHONE_METRICS_ADDR": value}
			code := run(context.Background(), []string{"serve"}, env(vars), &stdout, &stderr)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if code != 2 || !strings.HasPrefix(last, "userphone: USERPHONE_METRICS_ADDR: ") {
				t.Fatalf("exit %d, stderr %q; want 2 and a line naming USERPHONE_METRICS_ADDR", code, stderr.String())
			}
			if value == taken.Addr().String() && !strings.Contains(last, "cannot listen") {
				t.Fatalf("a port in use: %q", last)
			}
		})
	}
}

// The real command serves the metrics, with the Go runtime's, the
// process's and the database pool's, and pprof, on its own listener only.
func TestServeServesMetricsAndPprofOnTheirOwnListener(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			cfg := storetest.Config(t, d)
			addr, metricsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
			ctx, cancel := context.WithCancel(context.Background())
			var logs testenv.SyncBuffer
			done := make(chan int, 1)
			vars := map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_METRICS_ADDR": metricsAddr,
				"USERPHONE_DATA_DIR": cfg.DataDir, "USERPHONE_DATABASE_URL": cfg.DatabaseURL, "USERPHONE_DEV": "1"}
			go func() { done <- run(ctx, nil, env(vars), os.Stdout, &logs) }()
			defer func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("exit %d:\n%s", code, logs.String())
				}
			}()
			waitReady(t, "http://"+addr)

			keys, err := auth.LoadOrCreateDevKeys(cfg.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := keys.Mint(userphone.Identity{Subject: "mia", Scopes: auth.AllScopes}, time.Hour, time.Now())
			req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/user/2021-2/user/phone",
				strings.NewReader(`{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345678"}}}`))
			req.Header.Set("Content-Type", "application/vnd.api+json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := contract.Client(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT: %d", resp.StatusCode)
			}

			get := func(url string) (int, string) {
				t.Helper()
				resp, err := http.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			status, body := get("http://" + metricsAddr + "/metrics")
			if status != http.StatusOK {
				t.Fatalf("/metrics: %d %s", status, body)
			}
			fams := metricstest.Parse(t, strings.NewReader(body))
			for _, s := range []struct {
				family string
				labels []string
				value  float64 // -1: any
			}{
				{"userphone_http_request_duration_seconds", []string{"operation", "UpdateUserPhone", "status", "201"}, 1},
				{"userphone_flow_events_total", []string{"event", "change_requested"}, 1},
				{"userphone_flow_events_total", []string{"event", "sms_sent"}, 1},
				{"userphone_flow_rate_limited_total", []string{"limit", "sms_budget"}, 0},
				{"userphone_delivery_queue_depth", nil, -1},
				{"userphone_delivery_oldest_job_age_seconds", nil, -1},
				{"go_sql_open_connections", []string{"db_name", "userphone"}, -1},
				{"go_sql_max_open_connections", []string{"db_name", "userphone"}, -1},
				{"go_goroutines", nil, -1},
				{"go_memstats_heap_alloc_bytes", nil, -1},
				{"process_cpu_seconds_total", nil, -1},
				{"process_resident_memory_bytes", nil, -1},
			} {
				v, found := fams.Sum(s.family, s.labels...)
				if !found || (s.value >= 0 && v != s.value) {
					t.Errorf("%s%v = %v (found %v); want %v", s.family, s.labels, v, found, s.value)
				}
			}

			// pprof answers on the metrics listener, and on the API's not at all.
			if status, body := get("http://" + metricsAddr + "/debug/pprof/"); status != http.StatusOK || !strings.Contains(body, "goroutine") {
				t.Errorf("pprof index on the metrics listener: %d", status)
			}
			if status, body := get("http://" + metricsAddr + "/debug/pprof/goroutine?debug=1"); status != http.StatusOK || !strings.Contains(body, "goroutine profile") {
				t.Errorf("goroutine profile on the metrics listener: %d", status)
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/metrics"} {
				if status, _ := get("http://" + addr + path); status != http.StatusNotFound {
					t.Errorf("%s on the API listener: %d; want 404", path, status)
				}
			}
		})
	}
}
