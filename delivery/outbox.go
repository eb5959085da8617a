// Package delivery owns getting messages to users: it implements
// userphone.Sender for each way out.
//
//   - SMTP sends e-mail through a submission server (go-mail).
//   - Twilio sends SMS through Twilio's Messages API.
//   - Webhook posts SMS to an HTTP endpoint of the operator's choice,
//     signed with a shared secret.
//   - Outbox is the dev stand-in for all of them: a JSON Lines file that
//     developers and end-to-end tests read instead of a mailbox or a phone.
//
// Every sender follows userphone.Sender's contract: it never logs a
// message's subject, text or HTML, and it wraps userphone.ErrPermanent
// only around failures that no retry can fix and that are the recipient's,
// not the operator's (a rejected address, a number that cannot get SMS).
// A wrong password, a missing STARTTLS or a provider outage is retried, and
// shows in the logs until someone fixes it.
package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/phone"
)

// Outbox writes each message as one JSON line to a file instead of sending
// it. It is for development only: the file holds codes and links in clear.
type Outbox struct {
	path string
	log  *slog.Logger
	// mu keeps lines whole when many requests send at once.
	mu sync.Mutex
}

var _ userphone.Sender = (*Outbox)(nil)

// NewOutbox appends to path (creating the file 0600 and its directory if
// needed). A nil log discards.
func NewOutbox(path string, log *slog.Logger) *Outbox {
	log = logs.OrDiscard(log)
	return &Outbox{path: path, log: log}
}

// Path returns the file the outbox appends to.
func (o *Outbox) Path() string { return o.path }

// OutboxFile is the outbox's file name in the data directory.
const OutboxFile = "outbox.jsonl"

// OutboxLine is one message in the outbox file, as developers, tests and
// the load generator read it.
type OutboxLine struct {
	Time    string            `json:"time"`
	Channel userphone.Channel `json:"channel"`
	To      string            `json:"to"`
	Subject string            `json:"subject,omitempty"`
	Text    string            `json:"text"`
	Kind    string            `json:"kind"`
	// HTML is the e-mail's HTML alternative, when it has one.
	HTML string `json:"html,omitempty"`
}

// Send appends m to the outbox file.
func (o *Outbox) Send(ctx context.Context, m userphone.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.Channel != userphone.ChannelEmail && m.Channel != userphone.ChannelSMS {
		return fmt.Errorf("delivery: unknown channel %q", m.Channel)
	}
	if m.To == "" {
		return fmt.Errorf("delivery: %s message %q has no recipient", m.Channel, m.Kind)
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Links stay copyable from the file: "&" instead of "\u0026".
	enc.SetEscapeHTML(false)
	if err := enc.Encode(OutboxLine{
		Time:    time.Now().UTC().Format(time.RFC3339Nano),
		Channel: m.Channel,
		To:      m.To,
		Subject: m.Subject,
		Text:    m.Text,
		Kind:    m.Kind,
		HTML:    m.HTML,
	}); err != nil {
		return fmt.Errorf("delivery: encode message: %w", err)
	}

	if err := o.write(buf.Bytes()); err != nil {
		return err
	}
	o.log.InfoContext(ctx, "message written to dev outbox",
		"channel", m.Channel, "kind", m.Kind, "to", maskRecipient(m), "path", o.path)
	return nil
}

// write opens the file for each line rather than keeping it open, so a
// developer can delete or truncate the outbox while the service runs.
func (o *Outbox) write(b []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(o.path), 0o700); err != nil {
		return fmt.Errorf("delivery: create outbox directory: %w", err)
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("delivery: open outbox: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("delivery: write outbox: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("delivery: close outbox: %w", err)
	}
	return nil
}

// ReadOutbox returns the messages in the outbox file at path, oldest
// first; none when there is no file yet.
func ReadOutbox(path string) ([]OutboxLine, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []OutboxLine
	for l := range bytes.Lines(b) {
		var m OutboxLine
		if err := json.Unmarshal(l, &m); err != nil {
			return out, fmt.Errorf("outbox line %q: %w", l, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// maskRecipient keeps enough of the address for a developer to tell
// messages apart in the log, and not enough to identify the user.
func maskRecipient(m userphone.Message) string {
	if m.Channel == userphone.ChannelSMS {
		return phone.Mask(m.To)
	}
	return maskEmail(m.To)
}

// maskEmail shows the first character of the local part and the domain:
// "jane@example.com" becomes "j***@example.com".
func maskEmail(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "***"
	}
	local, domain := addr[:at], addr[at+1:]
	first := ""
	if r, size := utf8.DecodeRuneInString(local); size > 0 && r != utf8.RuneError {
		first = string(r)
	}
	return first + "***@" + domain
}
