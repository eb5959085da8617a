package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/internal/testservers"
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

// smsReceiver is the SMS gateway of USERPHONE_SMS_WEBHOOK_URL as the
// server's README describes one (testservers.Webhook: the signature over
// the raw body checked in constant time, stale timestamps refused, each
// Idempotency-Key taken once), which hands the code in each SMS to the
// worker waiting for that number.
type smsReceiver struct {
	*testservers.Webhook
	// noCode counts SMS taken whose text does not start with a code; the
	// report shows them as malformed, beside the requests the receiver
	// refused as such.
	noCode atomic.Int64
}

func newSMSReceiver(secret string, codes *mailbox) *smsReceiver {
	r := &smsReceiver{}
	r.Webhook = testservers.NewWebhook(secret, testservers.OnWebhookSMS(func(sms testservers.WebhookSMS) {
		if code, ok := testservers.SMSCode(sms.Text); ok {
			codes.deliver(sms.To, code)
		} else {
			r.noCode.Add(1)
		}
	}))
	return r
}

// malformed counts what the report calls malformed: requests that are
// not an SMS, and SMS without a code.
func (r *smsReceiver) malformed() int64 {
	return int64(r.Counts().Malformed) + r.noCode.Load()
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
	var m delivery.OutboxLine
	if json.Unmarshal(b, &m) != nil || m.Channel != userphone.ChannelEmail || m.Kind != flow.KindConfirmChange {
		return
	}
	if link := confirmLink.FindString(m.Text); link != "" {
		t.links.deliver(m.To, link)
	}
}
