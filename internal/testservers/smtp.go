// Package testservers runs, inside a test process, the real peers that the
// service talks to on the outside: an SMTP server, a stand-in for Twilio's
// Messages API that speaks its wire format, and a receiver of the signed
// SMS webhook (the one the fault suite and the load generator use). It
// also reads messages as their recipient would: the code of an SMS, the
// token of a confirmation link (messages.go).
package testservers

import (
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one message an SMTP server accepted.
type Mail struct {
	From       string
	To         []string
	Header     mail.Header
	Text, HTML string
	At         time.Time // when the server accepted it
}

// SMTP is a real SMTP server on loopback that keeps what it receives.
type SMTP struct {
	t    testing.TB
	addr string

	mu     sync.Mutex
	srv    *smtp.Server
	mails  []Mail
	reject map[string]bool // recipients answered with 550
}

// NewSMTP reserves a loopback address; the server listens only after Up,
// so a test can start with a mail server that is down.
func NewSMTP(t testing.TB) *SMTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &SMTP{t: t, addr: addr, reject: map[string]bool{}}
	t.Cleanup(s.Down)
	return s
}

// StartSMTP returns a server that is up.
func StartSMTP(t testing.TB) *SMTP {
	s := NewSMTP(t)
	s.Up()
	return s
}

// URL is the smtp:// URL of the server, for USERPHONE_SMTP_URL.
func (s *SMTP) URL() string { return "smtp://" + s.addr }

// Up starts listening.
func (s *SMTP) Up() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("testservers: listen on %s: %v", s.addr, err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv = srv
	go srv.Serve(ln)
}

// Down stops listening; connections are refused.
func (s *SMTP) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// Reject makes the server refuse rcpt with 550, as for an unknown mailbox.
func (s *SMTP) Reject(rcpt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject[strings.ToLower(rcpt)] = true
}

// Mails returns what the server accepted, oldest first.
func (s *SMTP) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// To returns the mails accepted for rcpt.
func (s *SMTP) To(rcpt string) []Mail {
	var out []Mail
	for _, m := range s.Mails() {
		for _, to := range m.To {
			if strings.EqualFold(to, rcpt) {
				out = append(out, m)
			}
		}
	}
	return out
}

type session struct {
	s    *SMTP
	from string
	to   []string
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	rejected := ss.s.reject[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if rejected {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such mailbox"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	m := Mail{From: ss.from, To: ss.to, Header: msg.Header, At: time.Now()}
	if err := readParts(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, &m); err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, m)
	ss.s.mu.Unlock()
	return nil
}

// readParts collects the text and HTML parts, through multipart nesting.
func readParts(contentType, encoding string, body io.Reader, m *Mail) error {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mediaType = "text/plain"
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := readParts(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m); err != nil {
				return err
			}
		}
	}
	b, err := io.ReadAll(decode(encoding, body))
	if err != nil {
		return err
	}
	switch mediaType {
	case "text/html":
		m.HTML = string(b)
	case "text/plain":
		m.Text = string(b)
	}
	return nil
}
