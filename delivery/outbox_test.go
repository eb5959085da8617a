package delivery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/templates"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSendWritesJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "outbox.jsonl")
	o := NewOutbox(path, slog.New(slog.DiscardHandler))
	if o.Path() != path {
		t.Fatalf("Path() = %q; want %q", o.Path(), path)
	}
	ctx := context.Background()
	email := userphone.Message{Channel: userphone.ChannelEmail, To: "jane@example.com", Subject: "Confirm", Text: "Open https://x.test/c?a=1&t=secret", Kind: "confirm-change"}
	sms := userphone.Message{Channel: userphone.ChannelSMS, To: "+4915112345678", Text: "123456 is your code.", Kind: "code"}
	for _, m := range []userphone.Message{email, sms} {
		if err := o.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %o; want 600", perm)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Contains(raw, []byte("a=1&t=secret")) {
		t.Errorf("link is escaped in the file: %s", raw)
	}

	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("got %d lines; want 2", len(lines))
	}
	for i, m := range []userphone.Message{email, sms} {
		l := lines[i]
		ts, _ := l["time"].(string)
		if parsed, err := time.Parse(time.RFC3339Nano, ts); err != nil || parsed.Location() != time.UTC {
			t.Errorf("line %d: time %q is not RFC 3339 in UTC", i, ts)
		}
		want := map[string]string{"channel": string(m.Channel), "to": m.To, "text": m.Text, "kind": m.Kind}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("line %d: %s = %v; want %q", i, k, l[k], v)
			}
		}
	}
	if lines[0]["subject"] != "Confirm" {
		t.Errorf("e-mail subject = %v", lines[0]["subject"])
	}
	if _, ok := lines[1]["subject"]; ok {
		t.Errorf("sms line has a subject: %v", lines[1])
	}
}

func TestSendConcurrentLinesStayWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	o := NewOutbox(path, slog.New(slog.DiscardHandler))
	const n = 50
	// A long text makes interleaving likely if a line were written in parts.
	text := strings.Repeat("x", 64<<10)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- o.Send(context.Background(), userphone.Message{
				Channel: userphone.ChannelSMS, To: "+4915112345678", Text: text, Kind: fmt.Sprint(i),
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	kinds := map[string]bool{}
	for sc.Scan() {
		var l OutboxLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("broken line: %v", err)
		}
		if l.Text != text {
			t.Fatalf("line %s has a mangled text", l.Kind)
		}
		kinds[l.Kind] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != n {
		t.Fatalf("got %d distinct lines; want %d", len(kinds), n)
	}
}

func TestSendLogsNoContent(t *testing.T) {
	var logs bytes.Buffer
	o := NewOutbox(filepath.Join(t.TempDir(), "outbox.jsonl"), slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	msgs := []userphone.Message{
		{Channel: userphone.ChannelEmail, To: "jane.doe@example.com", Subject: "Subject-SECRET", Text: "https://x.test/c?t=TOKEN-SECRET", Kind: "confirm-change"},
		{Channel: userphone.ChannelSMS, To: "+4915112345678", Text: "987654 is your code.", Kind: "code"},
	}
	for _, m := range msgs {
		if err := o.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	for _, secret := range []string{"SECRET", "987654", "jane.doe", "15112345678", "your code"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"message written to dev outbox", "kind=confirm-change", "kind=code", "channel=sms", "channel=email", `to="+49 •••• 678"`, "to=j***@example.com", "path="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if got := strings.Count(out, "\n"); got != 2 {
		t.Errorf("got %d log lines; want 2", got)
	}
}

func TestSendRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	o := NewOutbox(path, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok := userphone.Message{Channel: userphone.ChannelSMS, To: "+4915112345678", Text: "t", Kind: "code"}
	if err := o.Send(ctx, ok); err == nil {
		t.Error("Send with a cancelled context succeeded")
	}
	bad := []userphone.Message{
		{Channel: "fax", To: "+4915112345678", Text: "t"},
		{Channel: userphone.ChannelEmail, Text: "t"},
	}
	for _, m := range bad {
		if err := o.Send(context.Background(), m); err == nil {
			t.Errorf("Send(%+v) succeeded", m)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("refused sends created the outbox: %v", err)
	}
}

func TestMaskEmail(t *testing.T) {
	tests := []struct{ in, want string }{
		{"jane@example.com", "j***@example.com"},
		{"élise@example.fr", "é***@example.fr"},
		{"@example.com", "***@example.com"},
		{"no-at-sign", "***"},
	}
	for _, tt := range tests {
		if got := maskEmail(tt.in); got != tt.want {
			t.Errorf("maskEmail(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestSendWritesHTMLOnlyForEmailsWithIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	o := NewOutbox(path, slog.New(slog.DiscardHandler))
	subject, text, html := templates.ConfirmChangeEmail("en", "+49 •••• 678", "http://127.0.0.1:8080/user/2021-2/user/phone/confirm?token=Abc_12-xyz", time.Now())
	msgs := []userphone.Message{
		{Channel: userphone.ChannelEmail, To: "jane@example.com", Subject: subject, Text: text, HTML: html, Kind: "confirm-change"},
		{Channel: userphone.ChannelEmail, To: "jane@example.com", Subject: "s", Text: "plain", Kind: "other"},
		{Channel: userphone.ChannelSMS, To: "+4915112345678", Text: "123456 is your code.", Kind: "code"},
	}
	for _, m := range msgs {
		if err := o.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	lines := readLines(t, path)
	if lines[0]["html"] != html {
		t.Errorf("html decodes to %q; want %q", lines[0]["html"], html)
	}
	if lines[0]["text"] != text || lines[0]["subject"] != subject {
		t.Errorf("existing fields changed: %v", lines[0])
	}
	for i := 1; i < 3; i++ {
		if _, ok := lines[i]["html"]; ok {
			t.Errorf("line %d has html: %v", i, lines[i])
		}
	}
}
