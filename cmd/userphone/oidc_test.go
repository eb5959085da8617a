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
	"github.com/pace/userphone/auth/authtest"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
)

// The command itself, pointed at a local issuer: its tokens work, dev
// tokens do not, and `userphone token` declines.
func TestServeAgainstALocalOIDCIssuer(t *testing.T) {
	iss := authtest.NewIssuer(t)
	addr := testenv.FreeAddr(t)
	dir := t.TempDir()
	vars := map[string]string{
		"USERPHONE_ADDR": addr, "USERPHONE_DATA_DIR": dir,
		"USERPHONE_OIDC_ISSUER": iss.URL(), "USERPHONE_OIDC_AUDIENCE": authtest.Audience,
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, env(vars), os.Stdout, &logs) }()
	defer func() { cancel(); <-done }()
	waitReady(t, "http://"+addr)

	put := func(token string) int {
		req, _ := http.NewRequest("PUT", "http://"+addr+"/user/2021-2/user/phone",
			strings.NewReader(`{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345678"}}}`))
		req.Header.Set("Content-Type", "application/vnd.api+json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := contract.Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	keys, err := auth.LoadOrCreateDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := keys.Mint(userphone.Identity{Subject: "dev", Scopes: auth.AllScopes}, time.Hour, time.Now())
	if got := put(dev); got != http.StatusUnauthorized {
		t.Fatalf("a dev token with an issuer configured: %d, want 401", got)
	}
	if got := put(iss.Token(t, nil)); got != http.StatusCreated {
		t.Fatalf("the issuer's token: %d, want 201", got)
	}
	if strings.Contains(logs.String(), "dev mode") {
		t.Fatal("the service claims dev mode while an issuer is configured")
	}

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"token", "--sub", "x"}, env(vars), &stdout, &stderr)
	if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "only in dev mode") {
		t.Fatalf("token with an issuer: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
