//go:build unix

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

const phoneBody = `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345678"}}}`

// Readiness follows the database: PostgreSQL taken away (through a proxy
// that cuts every connection) makes /health/ready and the API answer 503
// with Retry-After; given back, both recover without a restart.
func TestReadinessFollowsTheDatabase(t *testing.T) {
	cfg := storetest.Config(t, store.Postgres)
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testservers.NewTCPProxy(t, u.Host)
	u.Host = proxy.Addr

	addr := testenv.FreeAddr(t)
	base := "http://" + addr
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_DATA_DIR": cfg.DataDir,
			"USERPHONE_DATABASE_URL": u.String(), "USERPHONE_DEV": "1"}), os.Stdout, &logs)
	}()
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	waitReady(t, base)
	tok := devToken(t, cfg.DataDir, "ready")
	client := contract.Client(t)
	check := func() *http.Response {
		req, _ := http.NewRequest("GET", base+"/user/2021-2/user/phone", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if s := check().StatusCode; s != http.StatusNotFound {
		t.Fatalf("CheckUserPhone with the database up: %d, want 404 (no number yet)", s)
	}

	proxy.Cut()
	if !testenv.WaitStatus(t, base+"/health/ready", http.StatusServiceUnavailable, 15*time.Second) {
		t.FailNow()
	}
	resp := check()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("CheckUserPhone with the database down: %d, Retry-After %q; want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(logs.String(), "not ready") {
		t.Errorf("the log does not say why the service is not ready")
	}

	proxy.Restore(t)
	if !testenv.WaitStatus(t, base+"/health/ready", http.StatusOK, 30*time.Second) {
		t.FailNow()
	}
	if s := check().StatusCode; s != http.StatusNotFound {
		t.Fatalf("CheckUserPhone after the database came back: %d, want 404", s)
	}
}

// SIGTERM to the real binary while a request is in flight: the service
// stops accepting connections, lets the request finish (its answer is
// whole and on the spec), stops the workers, closes the database and
// exits 0.
func TestARequestInFlightDuringSIGTERMCompletes(t *testing.T) {
	bin := testenv.BuildUserphone(t)
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	base := "http://" + addr
	cmd := exec.Command(bin, "serve")
	// No metrics listener: its default port may be taken by a parallel test.
	cmd.Env = append(testenv.Environ(nil), "USERPHONE_ADDR="+addr, "USERPHONE_DATA_DIR="+dir, "USERPHONE_METRICS_ADDR=")
	var logs testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	waitReady(t, base)
	tok := devToken(t, dir, "sigterm")

	// The request's body arrives in two parts, with SIGTERM between them.
	body, bodyWriter := io.Pipe()
	req, _ := http.NewRequest("PUT", base+"/user/2021-2/user/phone", body)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.ContentLength = int64(len(phoneBody))
	answered := make(chan *http.Response, 1)
	go func() {
		// Not contract.Client: it reads the whole body before sending.
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Errorf("the request in flight failed: %v", err)
			answered <- nil
			return
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		sent, _ := http.NewRequest("PUT", req.URL.String(), nil)
		sent.Header = req.Header
		if err := contract.Check(t, sent, []byte(phoneBody), resp.StatusCode, resp.Header, got); err != nil {
			t.Errorf("the answer breaks the spec: %v\n%s", err, got)
		}
		answered <- resp
	}()
	half := len(phoneBody) / 2
	if _, err := io.WriteString(bodyWriter, phoneBody[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server has the headers and half the body
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Stopped accepting: a new connection is refused while the old one is
	// still being served.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections 5 s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("the server exited (%v) with a request in flight", err)
	default:
	}

	if _, err := io.WriteString(bodyWriter, phoneBody[half:]); err != nil {
		t.Fatal(err)
	}
	bodyWriter.Close()
	resp := <-answered
	if resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("the request in flight got %v, want 201", resp)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not exit within 20 s of SIGTERM")
	}
	for _, want := range []string{"shutting down", "stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

func devToken(t *testing.T, dataDir, sub string) string {
	t.Helper()
	keys, err := auth.LoadOrCreateDevKeys(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := keys.Mint(userphone.Identity{Subject: sub, Email: sub + "@example.com", Scopes: auth.AllScopes}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
