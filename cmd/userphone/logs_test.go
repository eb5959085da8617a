package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/internal/contract"
	"github.com/pace/userphone/internal/testenv"
	"github.com/pace/userphone/internal/testservers"
)

// A whole flow through the real command with JSON logs at debug level:
// every line is JSON; every request has one access line with its request
// id (the caller's, when valid), method, route, operationId, status,
// duration and the user's sub; error answers carry the same id; and no
// line holds a code, a link token, an e-mail link or a bearer token.
func TestJSONLogsTraceEachRequestAndHoldNoSecret(t *testing.T) {
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	base := "http://" + addr + "/user/2021-2"
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, nil, env(map[string]string{"USERPHONE_ADDR": addr, "USERPHONE_DATA_DIR": dir,
			"USERPHONE_LOG_FORMAT": "json", "USERPHONE_LOG_LEVEL": "debug"}), os.Stdout, &logs)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitReady(t, "http://"+addr)

	tok := devToken(t, dir, "logs")
	client := contract.Client(t)
	call := func(method, path, contentType, body, requestID string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if requestID != "" {
			req.Header.Set("X-Request-Id", requestID)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			var doc struct{ Errors []struct{ Id string } }
			if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Id != resp.Header.Get("X-Request-Id") {
				t.Errorf("%s %s → %d: the error's id is not the X-Request-Id %q (%v)", method, path, resp.StatusCode, resp.Header.Get("X-Request-Id"), err)
			}
		}
		return resp
	}
	put := func(number string) {
		t.Helper()
		if s := call("PUT", "/user/phone", "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"`+number+`"}}}`, "").StatusCode; s != 201 {
			t.Fatalf("PUT %s: %d", number, s)
		}
	}
	verify := func(code string, want int) {
		t.Helper()
		if s := call("PUT", "/user/phone/verify", "application/json", `{"code":"`+code+`"}`, "").StatusCode; s != want {
			t.Fatalf("verify: %d, want %d", s, want)
		}
	}

	put("+4915112345678")
	firstCode := outboxCode(t, dir, "+4915112345678")
	verify(wrong(firstCode), 422)
	verify(firstCode, 200)
	put("+4915798765432")
	link := outboxLink(t, dir, "logs@example.com")
	linkToken := link.Query().Get("token")
	if resp, err := client.Get(link.String()); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the link's page: %v %v", resp, err)
	}
	confirm := *link
	confirm.RawQuery = ""
	if resp, err := client.PostForm(confirm.String(), url.Values{"token": {linkToken}}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("confirm: %v %v", resp, err)
	}
	secondCode := outboxCode(t, dir, "+4915798765432")
	verify(secondCode, 200)
	traced := call("GET", "/user/phone", "", "", "trace-4711")
	if traced.Header.Get("X-Request-Id") != "trace-4711" {
		t.Errorf("X-Request-Id %q, want the caller's trace-4711", traced.Header.Get("X-Request-Id"))
	}
	call("GET", "/nowhere", "", "", "trace-4712") // an error answer with the caller's id

	cancel()
	<-done
	done <- 0 // for the deferred cleanup

	secrets := map[string]string{"the first code": firstCode, "the second code": secondCode,
		"the link token": linkToken, "the e-mail link": link.String(), "the bearer token": tok}
	access := map[string]map[string]any{} // request id → access line
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		for what, secret := range secrets {
			if strings.Contains(line, secret) {
				t.Errorf("%s appears in the log line %s", what, line)
			}
		}
		if rec["msg"] == "request" {
			id, _ := rec["request_id"].(string)
			access[id] = rec
		}
	}
	if lines < 20 {
		t.Fatalf("only %d log lines at debug level", lines)
	}
	got := access["trace-4711"]
	if got == nil {
		t.Fatalf("no access line with the caller's request id trace-4711")
	}
	for field, want := range map[string]any{"method": "GET", "route": "/user/2021-2/user/phone", "operation_id": "CheckUserPhone",
		"status": float64(200), "sub": "logs"} {
		if got[field] != want {
			t.Errorf("access line %s = %v, want %v (%v)", field, got[field], want, got)
		}
	}
	if _, ok := got["duration"]; !ok {
		t.Errorf("the access line has no duration: %v", got)
	}
	if access["trace-4712"] == nil || access["trace-4712"]["status"] != float64(404) {
		t.Errorf("no 404 access line with the caller's id trace-4712: %v", access["trace-4712"])
	}
}

func wrong(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

// outboxCode waits for the newest SMS to number and returns its code.
func outboxCode(t *testing.T, dataDir, number string) string {
	t.Helper()
	m := waitOutbox(t, dataDir, "sms", number)
	code, ok := testservers.SMSCode(m.Text)
	if !ok {
		t.Fatalf("no code in the SMS %q", m.Text)
	}
	return code
}

// outboxLink waits for the newest e-mail to addr and returns its link.
func outboxLink(t *testing.T, dataDir, addr string) *url.URL {
	t.Helper()
	m := waitOutbox(t, dataDir, "email", addr)
	u, err := url.Parse(regexp.MustCompile(`https?://\S+[?&]token=[A-Za-z0-9_-]+`).FindString(m.Text))
	if err != nil || u.Host == "" {
		t.Fatalf("no link in the e-mail %q", m.Text)
	}
	return u
}

var outboxSeen = map[string]int{}

func waitOutbox(t *testing.T, dataDir string, channel userphone.Channel, to string) delivery.OutboxLine {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found []delivery.OutboxLine
		all, err := delivery.ReadOutbox(filepath.Join(dataDir, delivery.OutboxFile))
		if err != nil {
			t.Logf("outbox: %v", err)
		}
		for _, m := range all {
			if m.Channel == channel && m.To == to {
				found = append(found, m)
			}
		}
		key := dataDir + string(channel) + to
		if len(found) > outboxSeen[key] {
			outboxSeen[key] = len(found)
			return found[len(found)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new %s to %s in the outbox within 10 s", channel, to)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
