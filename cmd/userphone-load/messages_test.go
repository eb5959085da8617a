package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/internal/testservers"
)

func TestTheReceiverChecksSignaturesLikeARealOne(t *testing.T) {
	secret := randomHex(32)
	codes := newMailbox()
	rcv := newSMSReceiver(secret, codes)
	now := time.Now()
	post := func(body string, key string, ts time.Time, sign string) int {
		tsv := strconv.FormatInt(ts.Unix(), 10)
		req := httptest.NewRequest(http.MethodPost, testservers.WebhookPath, strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set(delivery.HeaderWebhookTimestamp, tsv)
		req.Header.Set(delivery.HeaderWebhookSignature, delivery.SignWebhook([]byte(sign), tsv, []byte(body)))
		rec := httptest.NewRecorder()
		rcv.ServeHTTP(rec, req)
		return rec.Code
	}
	body := `{"id":"k1","to":"+4917600000001","text":"123456 is your code to verify your phone number. Do not share it.","locale":"en"}`
	ch := codes.expect("+4917600000001")
	if c := post(body, "k1", now, secret); c != 200 {
		t.Fatalf("a good request: %d", c)
	}
	if got := <-ch; got != "123456" {
		t.Fatalf("code %q", got)
	}
	// The same message again is taken once.
	ch = codes.expect("+4917600000001")
	if c := post(body, "k1", now, secret); c != 200 || len(ch) != 0 || rcv.Counts().Duplicates != 1 {
		t.Fatalf("a duplicate: %d, delivered %d", c, len(ch))
	}
	// Taken, but without a code first in the text: malformed for the report.
	noCode := `{"id":"k5","to":"+4917600000002","text":"your code is 123456","locale":"en"}`
	if c := post(noCode, "k5", now, secret); c != 200 || rcv.malformed() != 1 {
		t.Fatalf("an SMS without a leading code: %d, %d malformed", c, rcv.malformed())
	}
	for name, c := range map[string]int{
		"wrong secret":    post(body, "k2", now, randomHex(32)),
		"stale":           post(body, "k3", now.Add(-6*time.Minute), secret),
		"from the future": post(body, "k4", now.Add(6*time.Minute), secret),
	} {
		if c != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, c)
		}
	}
	// A body changed after signing.
	tsv := strconv.FormatInt(now.Unix(), 10)
	req := httptest.NewRequest(http.MethodPost, testservers.WebhookPath, strings.NewReader(strings.Replace(body, "123456", "654321", 1)))
	req.Header.Set(delivery.HeaderWebhookTimestamp, tsv)
	req.Header.Set(delivery.HeaderWebhookSignature, delivery.SignWebhook([]byte(secret), tsv, []byte(body)))
	rec := httptest.NewRecorder()
	rcv.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || rcv.Counts().Unauthorized != 4 {
		t.Fatalf("a changed body: %d, %d rejected", rec.Code, rcv.Counts().Unauthorized)
	}
}

func TestTheOutboxTailFollowsAppendsAndTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	old := `{"channel":"email","to":"a@example.com","kind":"confirm-change","text":"http://x/confirm?token=OLD"}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	links := newMailbox()
	tail, err := openOutboxTail(path, links)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tail.run(ctx)
	a, b := links.expect("a@example.com"), links.expect("b@example.com")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := `{"time":"x","channel":"email","to":"a@example.com","kind":"confirm-change","text":"Confirm: http://127.0.0.1:8080/user/2021-2/user/phone/confirm?token=abc_-1 now"}` + "\n"
	// Written in two parts: the tail must wait for the whole line.
	f.WriteString(line[:40])
	time.Sleep(30 * time.Millisecond)
	f.WriteString(line[40:])
	f.WriteString(`{"channel":"sms","to":"+4917600000001","text":"123456"}` + "\n")
	f.Close()
	if got := waitFor(t, a); got != "http://127.0.0.1:8080/user/2021-2/user/phone/confirm?token=abc_-1" {
		t.Fatalf("link %q", got)
	}
	// Truncated, as a developer may do: the tail starts over.
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(line, "a@example.com", "b@example.com")), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, b); !strings.HasSuffix(got, "token=abc_-1") {
		t.Fatalf("after truncation: %q", got)
	}
}

func waitFor(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing within 5 s")
		return ""
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
