package delivery

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pace/userphone"
	"github.com/pace/userphone/templates"
)

// mailServer is a real SMTP server in the test process that records what
// it receives and answers as told.
type mailServer struct {
	addr string
	// Set before the first connection:
	user, pass string                     // require AUTH PLAIN with these
	mailReply  *smtp.SMTPError            // answer to MAIL FROM
	rcptReply  map[string]*smtp.SMTPError // answer to RCPT TO, by address
	dataWait   chan struct{}              // Data blocks until it is closed

	mu        sync.Mutex
	mails     []receivedMail
	mailCalls int
}

type receivedMail struct {
	From     string
	To       []string
	Data     []byte
	AuthUser string
	TLS      bool
}

type serverOpts struct {
	tls         *tls.Config // offer STARTTLS with this
	implicitTLS bool        // speak TLS from the start (smtps)
	network     string      // "tcp4" unless set
	insecure    bool        // AllowInsecureAuth
}

func startMailServer(t *testing.T, ms *mailServer, o serverOpts) *mailServer {
	t.Helper()
	if o.network == "" {
		o.network = "tcp4"
	}
	host := "127.0.0.1:0"
	if o.network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(o.network, host)
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &mailSession{srv: ms, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.AllowInsecureAuth = o.insecure
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if o.implicitTLS {
		ln = tls.NewListener(ln, o.tls)
	} else {
		srv.TLSConfig = o.tls
	}
	ms.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ms
}

func (ms *mailServer) received() []receivedMail {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]receivedMail(nil), ms.mails...)
}

func (ms *mailServer) mailFromCalls() int {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.mailCalls
}

type mailSession struct {
	srv  *mailServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (s *mailSession) AuthMechanisms() []string {
	if s.srv.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.user || pass != s.srv.pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	s.srv.mu.Lock()
	s.srv.mailCalls++
	s.srv.mu.Unlock()
	if s.srv.user != "" && s.user == "" {
		return smtp.ErrAuthRequired
	}
	if s.srv.mailReply != nil {
		return s.srv.mailReply
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if r := s.srv.rcptReply[to]; r != nil {
		return r
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	if s.srv.dataWait != nil {
		<-s.srv.dataWait
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, receivedMail{From: s.from, To: s.to, Data: b, AuthUser: s.user, TLS: isTLS})
	s.srv.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

// selfSigned returns a server certificate for 127.0.0.1, ::1 and
// localhost, and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

const testFrom = "Userphone <noreply@userphone.test>"

func newTestSMTP(t *testing.T, cfg SMTPConfig, log *slog.Logger) *SMTP {
	t.Helper()
	if cfg.From == "" {
		cfg.From = testFrom
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := NewSMTP(cfg, log)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

// confirmEmail is the confirmation e-mail as the service sends it.
func confirmEmail(to, key string) userphone.Message {
	subject, text, html := templates.ConfirmChangeEmail("de", "+49 •••• 678",
		"https://userphone.test/user/2021-2/user/phone/confirm?token=TOKEN-SECRET-0123456789abcdef", time.Now().Add(24*time.Hour))
	return userphone.Message{
		Channel: userphone.ChannelEmail, To: to, Subject: subject, Text: text, HTML: html,
		Kind: "confirm-change", Lang: "de", IdempotencyKey: key,
	}
}

// parsed is a received e-mail taken apart.
type parsed struct {
	header      mail.Header
	subject     string
	text, html  string
	contentType string
}

func parseMail(t *testing.T, raw []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v\n%s", err, raw)
	}
	var p parsed
	p.header = msg.Header
	if p.subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("subject: %v", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	p.contentType = mediaType
	if !strings.HasPrefix(mediaType, "multipart/") {
		b, _ := io.ReadAll(msg.Body)
		p.text = string(b)
		return p
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		ct, ctParams, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if !strings.EqualFold(ctParams["charset"], "utf-8") {
			t.Errorf("part %s has charset %q; want UTF-8", ct, ctParams["charset"])
		}
		body := strings.ReplaceAll(string(b), "\r\n", "\n")
		switch ct {
		case "text/plain":
			p.text = body
		case "text/html":
			p.html = body
		default:
			t.Errorf("unexpected part %s", ct)
		}
	}
	return p
}

func TestSMTPSendsMultipartAlternative(t *testing.T) {
	ms := startMailServer(t, &mailServer{}, serverOpts{})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, nil)
	m := confirmEmail("jane@example.com", "0123456789abcdef0123456789abcdef")
	before := time.Now().Add(-time.Second)
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := ms.received()
	if len(got) != 1 {
		t.Fatalf("server received %d mails; want 1", len(got))
	}
	if got[0].From != "noreply@userphone.test" || len(got[0].To) != 1 || got[0].To[0] != "jane@example.com" {
		t.Errorf("envelope from %q to %q", got[0].From, got[0].To)
	}
	if got[0].TLS || got[0].AuthUser != "" {
		t.Errorf("plain loopback server: TLS %v, AUTH %q", got[0].TLS, got[0].AuthUser)
	}

	p := parseMail(t, got[0].Data)
	if p.contentType != "multipart/alternative" {
		t.Errorf("Content-Type %s; want multipart/alternative", p.contentType)
	}
	if strings.TrimRight(p.text, "\n") != m.Text {
		t.Errorf("text part differs:\n%q\nwant\n%q", p.text, m.Text)
	}
	if strings.TrimRight(p.html, "\n") != m.HTML {
		t.Errorf("HTML part differs:\n%q\nwant\n%q", p.html, m.HTML)
	}
	if p.subject != m.Subject {
		t.Errorf("Subject %q; want %q", p.subject, m.Subject)
	}
	if from, err := p.header.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "noreply@userphone.test" || from[0].Name != "Userphone" {
		t.Errorf("From %q (%v)", p.header.Get("From"), err)
	}
	if to, err := p.header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "jane@example.com" {
		t.Errorf("To %q (%v)", p.header.Get("To"), err)
	}
	if d, err := p.header.Date(); err != nil || d.Before(before) || d.After(time.Now().Add(time.Second)) {
		t.Errorf("Date %q (%v)", p.header.Get("Date"), err)
	}
	want := map[string]string{
		"Message-Id":               "<0123456789abcdef0123456789abcdef@userphone.test>",
		"Auto-Submitted":           "auto-generated",
		"X-Auto-Response-Suppress": "All",
		"Content-Language":         "de",
		"Mime-Version":             "1.0",
	}
	for k, v := range want {
		if got := p.header.Get(k); got != v {
			t.Errorf("%s: %q; want %q", k, got, v)
		}
	}
	if ua := p.header.Get("User-Agent") + p.header.Get("X-Mailer"); ua != "" {
		t.Errorf("the mail names its software: %q", ua)
	}
}

func TestSMTPMessageIDFollowsIdempotencyKey(t *testing.T) {
	ms := startMailServer(t, &mailServer{}, serverOpts{})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, nil)
	for _, key := range []string{"key-1", "key-1", "key-2", "not an atom <@>", ""} {
		if err := s.Send(context.Background(), confirmEmail("jane@example.com", key)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, r := range ms.received() {
		ids = append(ids, parseMail(t, r.Data).header.Get("Message-Id"))
	}
	if len(ids) != 5 {
		t.Fatalf("got %d mails", len(ids))
	}
	if ids[0] != "<key-1@userphone.test>" || ids[1] != ids[0] {
		t.Errorf("retries of one message carry %q and %q; want both <key-1@userphone.test>", ids[0], ids[1])
	}
	if ids[2] != "<key-2@userphone.test>" {
		t.Errorf("second message: %q", ids[2])
	}
	if want := "<" + messageID("not an atom <@>", "userphone.test") + ">"; ids[3] != want || strings.ContainsAny(ids[3][1:len(ids[3])-1], " <>") {
		t.Errorf("odd key gives %q; want the hashed %q", ids[3], want)
	}
	if ids[4] == "" || ids[4] == ids[0] {
		t.Errorf("message without a key has Message-ID %q", ids[4])
	}
	for _, id := range ids {
		if _, err := mail.ParseAddress(strings.Trim(id, "<>")); err != nil {
			t.Errorf("Message-ID %q is not addr-spec shaped: %v", id, err)
		}
	}
}

func TestSMTPTextOnly(t *testing.T) {
	ms := startMailServer(t, &mailServer{}, serverOpts{})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, nil)
	m := userphone.Message{Channel: userphone.ChannelEmail, To: "jane@example.com", Subject: "Hi", Text: "Just text.", IdempotencyKey: "k"}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	p := parseMail(t, ms.received()[0].Data)
	if p.contentType != "text/plain" || !strings.Contains(p.text, "Just text.") {
		t.Errorf("text-only message: %s %q", p.contentType, p.text)
	}
}

func TestSMTPAuthOnLoopbackWithoutTLS(t *testing.T) {
	ms := startMailServer(t, &mailServer{user: "mailer", pass: "p@ss:word"}, serverOpts{insecure: true})
	// The password needs percent-encoding in the URL.
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://mailer:" + url.QueryEscape("p@ss:word") + "@" + ms.addr}, nil)
	if err := s.Send(context.Background(), confirmEmail("jane@example.com", "k")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := ms.received(); len(got) != 1 || got[0].AuthUser != "mailer" {
		t.Fatalf("received %+v; want one mail sent as mailer", got)
	}

	// A wrong password is the operator's to fix: retried, not permanent.
	bad := newTestSMTP(t, SMTPConfig{URL: "smtp://mailer:wrong@" + ms.addr}, nil)
	err := bad.Send(context.Background(), confirmEmail("jane@example.com", "k2"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Errorf("wrong password: %v; want a transient error", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error shows the password: %v", err)
	}
	// No user configured, but the server requires AUTH: 530 to MAIL FROM.
	anon := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, nil)
	if err := anon.Send(context.Background(), confirmEmail("jane@example.com", "k3")); err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Errorf("missing AUTH: %v; want a transient error", err)
	}
	if n := len(ms.received()); n != 1 {
		t.Errorf("server received %d mails; want only the first", n)
	}
}

func TestSMTPSTARTTLS(t *testing.T) {
	serverTLS, pool := selfSigned(t)
	// Without AllowInsecureAuth, go-smtp offers AUTH only after STARTTLS.
	ms := startMailServer(t, &mailServer{user: "mailer", pass: "secret"}, serverOpts{tls: serverTLS})
	for _, policy := range []string{"", TLSMandatory, TLSOpportunistic} {
		s := newTestSMTP(t, SMTPConfig{URL: "smtp://mailer:secret@" + ms.addr, TLSPolicy: policy, TLSConfig: &tls.Config{RootCAs: pool}}, nil)
		if err := s.Send(context.Background(), confirmEmail("jane@example.com", "k")); err != nil {
			t.Fatalf("policy %q: %v", policy, err)
		}
	}
	for _, r := range ms.received() {
		if !r.TLS || r.AuthUser != "mailer" {
			t.Errorf("mail went with TLS %v as %q; want STARTTLS and AUTH", r.TLS, r.AuthUser)
		}
	}
	if n := len(ms.received()); n != 3 {
		t.Errorf("received %d mails; want 3", n)
	}

	// A certificate the sender does not trust stops the send.
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://mailer:secret@" + ms.addr, TLSPolicy: TLSMandatory}, nil)
	err := s.Send(context.Background(), confirmEmail("jane@example.com", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Errorf("untrusted certificate: %v; want a transient error", err)
	}
	if n := len(ms.received()); n != 3 {
		t.Errorf("an untrusted server received the mail")
	}
}

func TestSMTPMandatorySTARTTLSMissing(t *testing.T) {
	ms := startMailServer(t, &mailServer{}, serverOpts{})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr, TLSPolicy: "Mandatory"}, nil)
	err := s.Send(context.Background(), confirmEmail("jane@example.com", "k"))
	if err == nil {
		t.Fatal("sent without STARTTLS under the mandatory policy")
	}
	if errors.Is(err, userphone.ErrPermanent) {
		t.Errorf("a missing STARTTLS is the operator's to fix, yet the error is permanent: %v", err)
	}
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error does not name STARTTLS: %v", err)
	}
	if n, calls := len(ms.received()), ms.mailFromCalls(); n != 0 || calls != 0 {
		t.Errorf("server got %d mails and %d MAIL FROM; want none", n, calls)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	serverTLS, pool := selfSigned(t)
	ms := startMailServer(t, &mailServer{user: "mailer", pass: "secret"}, serverOpts{tls: serverTLS, implicitTLS: true})
	s := newTestSMTP(t, SMTPConfig{URL: "smtps://mailer:secret@" + ms.addr, TLSConfig: &tls.Config{RootCAs: pool}}, nil)
	if err := s.Send(context.Background(), confirmEmail("jane@example.com", "k")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := ms.received(); len(got) != 1 || !got[0].TLS || got[0].AuthUser != "mailer" {
		t.Fatalf("received %+v; want one mail over TLS as mailer", got)
	}
}

func TestSMTPIPv6Loopback(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	ms := startMailServer(t, &mailServer{}, serverOpts{network: "tcp6"})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, nil)
	if err := s.Send(context.Background(), confirmEmail("jane@example.com", "k")); err != nil {
		t.Fatalf("Send to %s: %v", ms.addr, err)
	}
	if len(ms.received()) != 1 {
		t.Fatal("nothing received")
	}
}

func TestSMTPClassifiesReplies(t *testing.T) {
	ms := startMailServer(t, &mailServer{rcptReply: map[string]*smtp.SMTPError{
		"unknown@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<unknown@example.com>: Recipient address rejected: User unknown"},
		"bad@example.com":     {Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"},
		"full@example.com":    {Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"},
		"later@example.com":   {Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Greylisted, try again later"},
		"far@elsewhere.test":  {Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "<far@elsewhere.test>: Relay access denied"},
	}}, serverOpts{})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, nil)
	tests := []struct {
		to        string
		permanent bool
	}{
		{"unknown@example.com", true},
		{"bad@example.com", true},
		{"full@example.com", false},
		{"later@example.com", false},
		{"far@elsewhere.test", false},
	}
	for _, tt := range tests {
		err := s.Send(context.Background(), confirmEmail(tt.to, "k"))
		if err == nil {
			t.Errorf("%s: sent", tt.to)
			continue
		}
		if got := errors.Is(err, userphone.ErrPermanent); got != tt.permanent {
			t.Errorf("%s: permanent %v; want %v (%v)", tt.to, got, tt.permanent, err)
		}
		if strings.Contains(err.Error(), tt.to) {
			t.Errorf("%s: error shows the address unmasked: %v", tt.to, err)
		}
	}
	if n := len(ms.received()); n != 0 {
		t.Errorf("server received %d mails", n)
	}

	// A 5xx to MAIL FROM rejects our sender address, not the user's.
	ms2 := startMailServer(t, &mailServer{mailReply: &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address rejected: not owned by user"}}, serverOpts{})
	s2 := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms2.addr}, nil)
	if err := s2.Send(context.Background(), confirmEmail("jane@example.com", "k")); err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Errorf("MAIL FROM rejected: %v; want a transient error", err)
	}
}

func TestRecipientRejected(t *testing.T) {
	tests := []struct {
		code     int
		enhanced string
		text     string
		want     bool
	}{
		{550, "5.1.1", "<recipient>: Recipient address rejected: User unknown", true},
		{550, "", "5.1.1 No such user", true},
		{553, "5.1.3", "Bad recipient address syntax", true},
		{550, "5.2.1", "Mailbox disabled", true},
		{551, "", "User not local", true},
		{554, "5.7.1", "<recipient>: Relay access denied", false},
		{550, "", "relaying denied", false},
		{553, "5.7.1", "<noreply@x>: Sender address rejected: not owned by user", false},
		{550, "5.1.8", "Sender domain does not exist", false},
		{530, "5.7.0", "Authentication required", false},
		{554, "5.7.1", "Client host rejected: Access denied", false},
		{450, "4.1.1", "Recipient unknown, try later", false},
		{421, "", "Service not available", false},
		{0, "", "connection reset", false},
	}
	for _, tt := range tests {
		if got := recipientRejected(tt.code, tt.enhanced, tt.text); got != tt.want {
			t.Errorf("recipientRejected(%d, %q, %q) = %v; want %v", tt.code, tt.enhanced, tt.text, got, tt.want)
		}
	}
}

func TestSMTPServerDown(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + addr}, nil)
	err = s.Send(context.Background(), confirmEmail("jane@example.com", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Fatalf("server down: %v; want a transient error", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("the cause is lost: %v", err)
	}
}

func TestSMTPTimeout(t *testing.T) {
	// A server that accepts the connection and never greets.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ln.Addr().String(), Timeout: 200 * time.Millisecond}, nil)
	start := time.Now()
	err = s.Send(context.Background(), confirmEmail("jane@example.com", "k"))
	if err == nil || errors.Is(err, userphone.ErrPermanent) {
		t.Fatalf("silent server: %v; want a transient error", err)
	}
	if FailureClass(err) != FailureTimeout {
		t.Errorf("silent server: class %q; want %q (%v)", FailureClass(err), FailureTimeout, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the timeout did not hold: %s", d)
	}
}

func TestSMTPContextEndsTheSession(t *testing.T) {
	wait := make(chan struct{})
	ms := startMailServer(t, &mailServer{dataWait: wait}, serverOpts{})
	t.Cleanup(func() { close(wait) }) // runs before the server's Close
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr, Timeout: time.Minute}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Send(ctx, confirmEmail("jane@example.com", "k"))
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, userphone.ErrPermanent) {
		t.Fatalf("Send = %v; want the context's deadline, transient", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Send waited %s for a server that hangs in DATA", d)
	}
}

func TestSMTPRefusesBadMessages(t *testing.T) {
	ms := startMailServer(t, &mailServer{}, serverOpts{})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, nil)
	for _, m := range []userphone.Message{
		{Channel: userphone.ChannelSMS, To: "+4915112345678", Text: "123456"},
		{Channel: userphone.ChannelEmail, Text: "t"},
		{Channel: userphone.ChannelEmail, To: "not an address", Text: "t"},
	} {
		err := s.Send(context.Background(), m)
		if !errors.Is(err, userphone.ErrPermanent) {
			t.Errorf("Send(%+v) = %v; want a permanent error", m, err)
		}
	}
	if ms.mailFromCalls() != 0 {
		t.Error("a bad message reached the server")
	}
}

func TestNewSMTPValidates(t *testing.T) {
	tests := []struct {
		cfg  SMTPConfig
		want string
	}{
		{SMTPConfig{URL: "", From: testFrom}, "SMTP URL is empty"},
		{SMTPConfig{URL: "http://mail.example.com", From: testFrom}, `SMTP URL scheme "http" is not supported`},
		{SMTPConfig{URL: "mail.example.com:587", From: testFrom}, "SMTP URL scheme"},
		{SMTPConfig{URL: "smtp://", From: testFrom}, "SMTP URL has no host"},
		{SMTPConfig{URL: "smtp://user:hunter2@:587", From: testFrom}, "SMTP URL has no host"},
		{SMTPConfig{URL: "smtp://user:hunter2 x@mail.example.com", From: testFrom}, "SMTP URL is not a valid URL"},
		{SMTPConfig{URL: "smtp://mail.example.com:0", From: testFrom}, "SMTP URL port"},
		{SMTPConfig{URL: "smtp://mail.example.com:70000", From: testFrom}, "SMTP URL port"},
		{SMTPConfig{URL: "smtp://mail.example.com/inbox", From: testFrom}, "path"},
		{SMTPConfig{URL: "smtp://user@mail.example.com", From: testFrom}, "no password"},
		{SMTPConfig{URL: "smtp://:hunter2@mail.example.com", From: testFrom}, "no user name"},
		{SMTPConfig{URL: "smtp://mail.example.com", From: ""}, "SMTP From"},
		{SMTPConfig{URL: "smtp://mail.example.com", From: "noreply"}, `SMTP From "noreply" is not an e-mail address`},
		{SMTPConfig{URL: "smtp://mail.example.com", From: testFrom, TLSPolicy: "always"}, `SMTP TLS policy "always" is unknown`},
		{SMTPConfig{URL: "smtps://mail.example.com", From: testFrom, TLSPolicy: "none"}, "contradicts smtps://"},
		{SMTPConfig{URL: "smtp://mail.example.com", From: testFrom, Timeout: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		_, err := NewSMTP(tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewSMTP(%+v) = %v; want an error with %q", tt.cfg, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
		if strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("error is not one line: %q", err)
		}
	}
}

func TestSMTPDefaults(t *testing.T) {
	tests := []struct{ url, policy, want string }{
		{"smtp://mail.example.com", "", "smtp://mail.example.com:587 (STARTTLS mandatory)"},
		{"SMTP://mailer:pw@mail.example.com:25", "", "smtp://mailer@mail.example.com:25 (STARTTLS mandatory)"},
		{"smtp://mail.example.com", "opportunistic", "smtp://mail.example.com:587 (STARTTLS opportunistic)"},
		{"smtp://localhost:1025", "", "smtp://localhost:1025 (STARTTLS opportunistic)"},
		{"smtp://127.0.0.1:1025", "", "smtp://127.0.0.1:1025 (STARTTLS opportunistic)"},
		{"smtp://[::1]:1025", "", "smtp://[::1]:1025 (STARTTLS opportunistic)"},
		{"smtp://localhost:1025", "mandatory", "smtp://localhost:1025 (STARTTLS mandatory)"},
		{"smtp://localhost:1025", "none", "smtp://localhost:1025 (no TLS)"},
		{"smtp://mail.example.com", "none", "smtp://mail.example.com:587 (no TLS)"},
		{"smtps://mailer:pw@mail.example.com", "", "smtps://mailer@mail.example.com:465 (implicit TLS)"},
		{"smtps://localhost", "", "smtps://localhost:465 (implicit TLS)"},
	}
	for _, tt := range tests {
		s := newTestSMTP(t, SMTPConfig{URL: tt.url, TLSPolicy: tt.policy}, nil)
		if got := s.String(); got != tt.want {
			t.Errorf("%s with policy %q: %s; want %s", tt.url, tt.policy, got, tt.want)
		}
	}
	if s := newTestSMTP(t, SMTPConfig{URL: "smtp://mail.example.com"}, nil); s.timeout != DefaultSMTPTimeout {
		t.Errorf("default timeout %s", s.timeout)
	}
}

func TestSMTPLogsNoContent(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ms := startMailServer(t, &mailServer{rcptReply: map[string]*smtp.SMTPError{
		"gone.user@example.com": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone.user@example.com>: User unknown"},
	}}, serverOpts{})
	s := newTestSMTP(t, SMTPConfig{URL: "smtp://" + ms.addr}, log)
	ok := confirmEmail("jane.doe@example.com", "k1")
	if err := s.Send(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), confirmEmail("gone.user@example.com", "k2")); !errors.Is(err, userphone.ErrPermanent) {
		t.Fatalf("want a permanent error, got %v", err)
	}
	out := logs.String()
	for _, secret := range []string{"TOKEN-SECRET", ok.Subject, "Hallo", "jane.doe", "gone.user", "<html", "+49"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"e-mail sent", "e-mail not sent", "kind=confirm-change", "to=j***@example.com", "to=g***@example.com", "permanent=true", "message_id=<k1@userphone.test>"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestMessageIDIsAlwaysValid(t *testing.T) {
	valid := func(id string) bool {
		left, right, ok := strings.Cut(id, "@")
		return ok && atom.MatchString(left) && atom.MatchString(right)
	}
	if got := messageID("abc-123", "example.com"); got != "abc-123@example.com" {
		t.Errorf("plain key: %q", got)
	}
	if a, b := messageID("ä key", "example.com"), messageID("ä key", "example.com"); a != b || !valid(a) {
		t.Errorf("odd key: %q, %q; want one valid ID", a, b)
	}
	if got := messageID(".starts.with.dot", "example.com"); !valid(got) {
		t.Errorf("dotted key: %q", got)
	}
	if got := messageID(strings.Repeat("k", 200), "example.com"); !valid(got) || len(got) > 100 {
		t.Errorf("long key: %q", got)
	}
	if got := messageID("k", "[127.0.0.1]"); got != "k@userphone.invalid" {
		t.Errorf("odd domain: %q", got)
	}
	// Without a key the ID is random, and must still be valid every time;
	// go-mail's own random IDs are not.
	seen := map[string]bool{}
	for range 2000 {
		id := messageID("", "example.com")
		if !valid(id) || seen[id] {
			t.Fatalf("random Message-ID %q: valid %v, repeated %v", id, valid(id), seen[id])
		}
		seen[id] = true
	}
}
