package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// mailbox hands messages to the workers waiting for them, by recipient (a
// phone number for SMS, an address for e-mail). A worker says what it
// expects before the request that makes the server send it, since the
// message may arrive before the answer does.
type mailbox struct {
	mu      sync.Mutex
	waiting map[string]chan string
	// delivered counts messages handed to a waiting worker; stray those no
	// one waited for (the request scenario's SMS, a resend, a late one).
	delivered, stray atomic.Int64
}

func newMailbox() *mailbox { return &mailbox{waiting: map[string]chan string{}} }

// expect registers interest in the next message to key.
func (m *mailbox) expect(key string) <-chan string {
	ch := make(chan string, 1)
	m.mu.Lock()
	m.waiting[key] = ch
	m.mu.Unlock()
	return ch
}

// forget drops the interest in key, e.g. when the request failed.
func (m *mailbox) forget(key string) {
	m.mu.Lock()
	delete(m.waiting, key)
	m.mu.Unlock()
}

// deliver hands value to whoever expects key.
func (m *mailbox) deliver(key, value string) {
	m.mu.Lock()
	ch, ok := m.waiting[key]
	delete(m.waiting, key)
	m.mu.Unlock()
	if !ok {
		m.stray.Add(1)
		return
	}
	m.delivered.Add(1)
	ch <- value // buffered, and the key was removed: never blocks
}

var errMessageTimeout = errors.New("the message did not arrive in time")

// wait returns the message on ch, or errMessageTimeout after timeout.
func (m *mailbox) wait(ctx context.Context, key string, ch <-chan string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-t.C:
		m.forget(key)
		return "", errMessageTimeout
	case <-ctx.Done():
		m.forget(key)
		return "", ctx.Err()
	}
}

// webhookPath is where the receiver takes the server's SMS.
const webhookPath = "/sms"

// webhookMaxAge is how far a request's timestamp may be from the clock, as
// the server's README asks of receivers.
const webhookMaxAge = 5 * time.Minute

// receiver is an SMS gateway as the server's README describes one for
// USERPHONE_SMS_PROVIDER=webhook: it checks the signature over the raw body
// in constant time, refuses stale timestamps, deduplicates by
// Idempotency-Key, and hands the code in the text to the worker waiting
// for that number.
type receiver struct {
	secret []byte
	codes  *mailbox
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]struct{}

	received, duplicates, rejected, malformed atomic.Int64
	last                                      atomic.Int64 // unix nanoseconds of the last SMS taken
}

func newReceiver(secret string, codes *mailbox) *receiver {
	return &receiver{secret: []byte(secret), codes: codes, now: time.Now, seen: map[string]struct{}{}}
}

// The server sends the code first in the SMS text.
var leadingCode = regexp.MustCompile(`^\s*(\d{6})\b`)

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != webhookPath {
		http.Error(w, "POST "+webhookPath, http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<10))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	ts, sig := req.Header.Get("X-Userphone-Timestamp"), req.Header.Get("X-Userphone-Signature")
	if err := checkWebhookSignature(r.secret, ts, sig, body, r.now()); err != nil {
		// 401 makes the server retry: the operator's secret or clock is off.
		r.rejected.Add(1)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var sms struct {
		ID, To, Text, Locale string
	}
	if err := json.Unmarshal(body, &sms); err != nil || sms.To == "" {
		r.malformed.Add(1)
		http.Error(w, "not an SMS", http.StatusUnprocessableEntity)
		return
	}
	key := req.Header.Get("Idempotency-Key")
	if key == "" {
		key = sms.ID
	}
	r.mu.Lock()
	_, dup := r.seen[key]
	if key != "" {
		r.seen[key] = struct{}{}
	}
	r.mu.Unlock()
	if dup {
		// The same message again (a retry after a lost answer): taken once.
		r.duplicates.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	r.received.Add(1)
	r.last.Store(time.Now().UnixNano())
	if m := leadingCode.FindStringSubmatch(sms.Text); m != nil {
		r.codes.deliver(sms.To, m[1])
	} else {
		r.malformed.Add(1)
	}
	w.WriteHeader(http.StatusOK)
}

// checkWebhookSignature is the receiver's check, written from the wire
// format in the server's README rather than shared with its sender: the
// hex HMAC-SHA256 under the secret of timestamp + "." + body, compared in
// constant time, and a timestamp within 5 minutes of the clock.
func checkWebhookSignature(secret []byte, timestamp, signature string, body []byte, now time.Time) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("X-Userphone-Timestamp is not Unix seconds")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > webhookMaxAge || d < -webhookMaxAge {
		return fmt.Errorf("X-Userphone-Timestamp is %s off the clock", d.Round(time.Second))
	}
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return errors.New("X-Userphone-Signature is not sha256=<hex>")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte("."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return errors.New("X-Userphone-Signature does not match")
	}
	return nil
}

// outboxTail follows the server's dev outbox (USERPHONE_DATA_DIR/
// outbox.jsonl) from where it ended when the run started, and hands the
// confirmation link of each e-mail to the worker waiting for that address.
// It reads only what was appended since its last look, and starts over
// when the file is truncated or replaced.
type outboxTail struct {
	path  string
	links *mailbox
	poll  time.Duration

	f       *os.File
	off     int64
	pending []byte
	lines   atomic.Int64
}

// openOutboxTail positions the tail at the current end of path (or at its
// start, once it appears, when it does not exist yet).
func openOutboxTail(path string, links *mailbox) (*outboxTail, error) {
	t := &outboxTail{path: path, links: links, poll: 5 * time.Millisecond}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	t.f, t.off = f, off
	return t, nil
}

// run follows the file until ctx ends.
func (t *outboxTail) run(ctx context.Context) {
	defer func() {
		if t.f != nil {
			t.f.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n := t.readSome(buf)
		if n > 0 {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.poll):
		}
	}
}

// readSome reads what was appended, or reopens the file when it was
// truncated, replaced or created; it returns the bytes read.
func (t *outboxTail) readSome(buf []byte) int {
	if t.f == nil {
		f, err := os.Open(t.path)
		if err != nil {
			return 0
		}
		t.f, t.off, t.pending = f, 0, t.pending[:0]
	}
	n, _ := t.f.ReadAt(buf, t.off)
	if n > 0 {
		t.off += int64(n)
		t.consume(buf[:n])
		return n
	}
	// Nothing new: has the file been truncated or replaced?
	fi, err := t.f.Stat()
	if err == nil && fi.Size() < t.off {
		t.off, t.pending = 0, t.pending[:0]
		return 0
	}
	if pi, err := os.Stat(t.path); err != nil || !os.SameFile(fi, pi) {
		t.f.Close()
		t.f = nil
	}
	return 0
}

var confirmLink = regexp.MustCompile(`https?://[^\s"<>]+[?&]token=[A-Za-z0-9_-]+`)

func (t *outboxTail) consume(b []byte) {
	t.pending = append(t.pending, b...)
	for {
		i := bytes.IndexByte(t.pending, '\n')
		if i < 0 {
			break
		}
		t.line(t.pending[:i])
		t.pending = t.pending[i+1:]
	}
	// Keep the partial line at the start of the buffer.
	t.pending = append(t.pending[:0:0], t.pending...)
}

func (t *outboxTail) line(b []byte) {
	t.lines.Add(1)
	var m struct {
		Channel, To, Kind, Text string
	}
	if json.Unmarshal(b, &m) != nil || m.Channel != "email" || m.Kind != "confirm-change" {
		return
	}
	if link := confirmLink.FindString(m.Text); link != "" {
		t.links.deliver(m.To, link)
	}
}
