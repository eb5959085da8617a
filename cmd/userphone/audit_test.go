package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
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
		req, _ := http.NewRequest(method, "http://"+addr+"/user/2021-2"+path, strings.NewReader(body))
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
	if s := call("PUT", "/user/phone/verify", "application/json", `{"code":"000000"}`); s != 422 {
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
	outbox, _ := os.ReadFile(filepath.Join(dir, "outbox.jsonl"))
	if i := bytes.Index(outbox, []byte(`"text":"`)); i > 0 {
		code := string(outbox[i+8 : i+14])
		if strings.Contains(out, code) {
			t.Errorf("the trail holds the code %s", code)
		}
	}
}
