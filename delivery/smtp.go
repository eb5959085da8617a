package delivery

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
)

// SMTP defaults.
const (
	// DefaultSMTPPort is the port of smtp:// URLs without one: 587, the
	// submission port (RFC 6409), where servers offer STARTTLS and AUTH to
	// senders. Port 25 is for relaying between servers, and many networks
	// block it outbound.
	DefaultSMTPPort = 587
	// DefaultSMTPSPort is the port of smtps:// URLs without one: 465,
	// submission over implicit TLS (RFC 8314).
	DefaultSMTPSPort = 465
	// DefaultSMTPTimeout bounds the connection and each command when
	// SMTPConfig.Timeout is zero. It is generous because a server may scan
	// a message before it answers the end of DATA, and a timeout there
	// means a retry that the user may receive twice.
	DefaultSMTPTimeout = 30 * time.Second
)

// TLS policies of SMTPConfig.TLSPolicy.
const (
	TLSMandatory     = "mandatory"
	TLSOpportunistic = "opportunistic"
	TLSNone          = "none"
)

// SMTPConfig says how to reach the submission server.
type SMTPConfig struct {
	// URL is smtp://[user[:password]@]host[:port] for STARTTLS (port 587
	// by default) or smtps://[user[:password]@]host[:port] for implicit TLS
	// (port 465 by default). With a user, the sender authenticates; user
	// and password are percent-decoded, so write "@" as %40.
	URL string
	// From is the sender, "noreply@example.com" or
	// "Example <noreply@example.com>". Its domain also ends the Message-ID.
	From string
	// TLSPolicy says whether an smtp:// connection must be upgraded with
	// STARTTLS: "mandatory" refuses to send without it, "opportunistic"
	// upgrades when the server offers it, "none" never does. Empty means
	// mandatory, except for a loopback host (localhost, 127.0.0.0/8, ::1),
	// where it means opportunistic, so that a local test server works
	// without a certificate. An explicit policy wins. smtps:// is always
	// TLS, which "none" contradicts.
	TLSPolicy string
	// Timeout bounds the connection and each SMTP command; zero means
	// DefaultSMTPTimeout.
	Timeout time.Duration
	// TLSConfig is optional, e.g. for a private CA in RootCAs. ServerName
	// defaults to the URL's host and MinVersion to TLS 1.2.
	TLSConfig *tls.Config
}

// SMTP sends e-mail through a submission server. It dials for every
// message, which costs a handshake but survives server restarts, idle
// timeouts and load balancers without any reconnection logic, and it
// holds nothing open between messages. It is safe for concurrent use.
//
// Each e-mail is multipart/alternative (the text, then the HTML when the
// message has one) with a Message-ID derived from the message's
// IdempotencyKey, so that the retries of one message look like one message
// to mail clients and servers that deduplicate, and Auto-Submitted:
// auto-generated (RFC 3834), so that vacation responders stay quiet.
//
// Failures: a 5xx reply to RCPT TO, which rejects the user's address, is
// permanent. Everything else is retried: connection errors, timeouts,
// 4xx replies, a missing STARTTLS, failed authentication, and 5xx replies
// that blame the sender rather than the recipient (to MAIL FROM, which
// names only our From address, or to RCPT TO when the server refuses to
// relay, wants authentication or rejects the sender), as those are the
// operator's to fix and no reason to give up on the user's change.
type SMTP struct {
	host        string
	port        int
	implicitTLS bool
	policy      gomail.TLSPolicy
	policyName  string
	user, pass  string
	from        string
	fromDomain  string
	timeout     time.Duration
	tlsConfig   *tls.Config
	log         *slog.Logger
}

var _ userphone.Sender = (*SMTP)(nil)

// NewSMTP checks cfg and returns a sender; it does not connect. A nil log
// discards. Errors are one sentence each and never include the
// password.
func NewSMTP(cfg SMTPConfig, log *slog.Logger) (*SMTP, error) {
	s := &SMTP{log: logs.OrDiscard(log), timeout: cmp.Or(cfg.Timeout, DefaultSMTPTimeout)}
	if s.timeout < 0 {
		return nil, fmt.Errorf("SMTP timeout %s is negative", cfg.Timeout)
	}
	if err := s.useServerURL(cfg.URL); err != nil {
		return nil, err
	}
	if err := s.useFrom(cfg.From); err != nil {
		return nil, err
	}
	if err := s.useTLSPolicy(cfg.TLSPolicy); err != nil {
		return nil, err
	}
	s.tlsConfig = tlsConfigFor(s.host, cfg.TLSConfig)
	// Build one client now, so that a setting go-mail refuses fails at
	// start-up rather than at the first message.
	_, release, err := s.client(context.Background())
	release()
	if err != nil {
		return nil, fmt.Errorf("SMTP settings are not usable: %v", err)
	}
	return s, nil
}

// useServerURL takes the server, port, implicit TLS and credentials from
// an smtp:// or smtps:// URL.
func (s *SMTP) useServerURL(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return errors.New("SMTP URL is empty; use smtp://[user:password@]host[:port] or smtps://…")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, password and all.
		return errors.New("SMTP URL is not a valid URL; use smtp://[user:password@]host[:port] or smtps://…, with special characters in user and password percent-encoded")
	}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		s.port = DefaultSMTPPort
	case "smtps":
		s.implicitTLS = true
		s.port = DefaultSMTPSPort
	default:
		return fmt.Errorf("SMTP URL scheme %q is not supported; use smtp:// (STARTTLS) or smtps:// (implicit TLS)", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return errors.New("SMTP URL has no host; use smtp://[user:password@]host[:port]")
	}
	s.host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("SMTP URL port %q is not a number from 1 to 65535", p)
		}
		s.port = n
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("SMTP URL has a path, query or fragment, which mean nothing here; use smtp://[user:password@]host[:port]")
	}
	return s.useCredentials(u.User)
}

// useCredentials takes both a user name and a password, or neither.
func (s *SMTP) useCredentials(user *url.Userinfo) error {
	if user == nil {
		return nil
	}
	s.user = user.Username()
	s.pass, _ = user.Password()
	if s.user == "" {
		return errors.New("SMTP URL has a password but no user name")
	}
	if s.pass == "" {
		return errors.New("SMTP URL has a user name but no password")
	}
	return nil
}

// useFrom takes the sender's address, and its domain for Message-IDs.
func (s *SMTP) useFrom(raw string) error {
	from, err := mail.ParseAddress(raw)
	if err != nil {
		return fmt.Errorf("SMTP From %q is not an e-mail address like noreply@example.com or \"Example <noreply@example.com>\"", raw)
	}
	s.from = from.String()
	s.fromDomain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	return nil
}

// useTLSPolicy takes the STARTTLS policy, or picks the default for the
// host (see SMTPConfig.TLSPolicy).
func (s *SMTP) useTLSPolicy(raw string) error {
	s.policyName = strings.ToLower(strings.TrimSpace(raw))
	switch s.policyName {
	case "":
		s.policyName = TLSMandatory
		if isLoopbackHost(s.host) {
			s.policyName = TLSOpportunistic
		}
	case TLSMandatory, TLSOpportunistic:
	case TLSNone:
		if s.implicitTLS {
			return errors.New(`SMTP TLS policy "none" contradicts smtps://, which always uses TLS; use smtp:// for a server without TLS`)
		}
	default:
		return fmt.Errorf(`SMTP TLS policy %q is unknown; use "mandatory", "opportunistic" or "none"`, raw)
	}
	s.policy = map[string]gomail.TLSPolicy{
		TLSMandatory:     gomail.TLSMandatory,
		TLSOpportunistic: gomail.TLSOpportunistic,
		TLSNone:          gomail.NoTLS,
	}[s.policyName]
	return nil
}

// tlsConfigFor is the caller's TLS settings, if any, checking the host's
// certificate and refusing anything older than TLS 1.2.
func tlsConfigFor(host string, given *tls.Config) *tls.Config {
	c := &tls.Config{}
	if given != nil {
		c = given.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// String describes the server for start-up logs, without the password:
// e.g. "smtp://mailer@mail.example.com:587 (STARTTLS mandatory)".
func (s *SMTP) String() string {
	scheme, mode := "smtp", "STARTTLS "+s.policyName
	if s.implicitTLS {
		scheme, mode = "smtps", "implicit TLS"
	} else if s.policy == gomail.NoTLS {
		mode = "no TLS"
	}
	user := ""
	if s.user != "" {
		user = url.User(s.user).String() + "@"
	}
	return fmt.Sprintf("%s://%s%s (%s)", scheme, user, s.addr(), mode)
}

func (s *SMTP) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

// authMechanisms is go-mail's auto-discovery ranking for TLS connections
// without NTLM and CRAM-MD5, which are legacy: the SCRAM family, then
// PLAIN, then LOGIN. go-mail's own auto-discovery drops PLAIN and LOGIN on
// connections without TLS, which would leave a local test server without
// a mechanism; go-mail's PLAIN and LOGIN themselves refuse to send the
// password without TLS to any host but localhost, 127.0.0.1 and ::1, which
// is the guard that matters. A server offering none of these gets
// go-mail's auto-discovery.
var authMechanisms = []gomail.SMTPAuthType{
	gomail.SMTPAuthSCRAMSHA256PLUS, gomail.SMTPAuthSCRAMSHA256,
	gomail.SMTPAuthSCRAMSHA1PLUS, gomail.SMTPAuthSCRAMSHA1,
	gomail.SMTPAuthPlain, gomail.SMTPAuthLogin,
}

// client returns a go-mail client for one send, and release, to call when
// the send is over. It is a new client each time: a client remembers the
// mechanism it negotiated, and concurrent sends sharing one would race.
//
// Dialling is ours rather than go-mail's for two reasons. go-mail joins
// host and port with a bare ":", which breaks IPv6 addresses. And go-mail
// watches ctx only while dialling; we close the connection when ctx ends,
// so a cancelled job does not wait out the timeout of each later command.
func (s *SMTP) client(ctx context.Context) (c *gomail.Client, release func(), err error) {
	var mu sync.Mutex
	var stops []func() bool
	dial := func(dialCtx context.Context, _, _ string) (net.Conn, error) {
		d := &net.Dialer{}
		var conn net.Conn
		var err error
		if s.implicitTLS {
			conn, err = (&tls.Dialer{NetDialer: d, Config: s.tlsConfig.Clone()}).DialContext(dialCtx, "tcp", s.addr())
		} else {
			conn, err = d.DialContext(dialCtx, "tcp", s.addr())
		}
		if err != nil {
			return nil, err
		}
		mu.Lock()
		stops = append(stops, context.AfterFunc(ctx, func() { conn.Close() }))
		mu.Unlock()
		return conn, nil
	}
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tlsConfig.Clone()),
		gomail.WithTLSPolicy(s.policy),
		gomail.WithDialContextFunc(dial),
	}
	if s.implicitTLS {
		// Our dialer does the TLS; this only keeps go-mail from trying
		// STARTTLS inside it.
		opts = append(opts, gomail.WithSSL())
	}
	if s.user != "" {
		opts = append(opts,
			gomail.WithOpportunisticSMTPAuth(authMechanisms...),
			gomail.WithUsername(s.user),
			gomail.WithPassword(s.pass))
	}
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, stop := range stops {
			stop()
		}
		stops = nil
	}
	c, err = gomail.NewClient(s.host, opts...)
	return c, release, err
}

// Send delivers one e-mail. See SMTP for which failures are permanent.
func (s *SMTP) Send(ctx context.Context, m userphone.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.Channel != userphone.ChannelEmail {
		return permanentf("delivery: smtp: cannot send a %q message, only e-mail", m.Channel)
	}
	msg, err := s.message(m)
	if err != nil {
		return err
	}
	client, release, err := s.client(ctx)
	defer release()
	if err != nil {
		return fmt.Errorf("delivery: smtp: %w", err)
	}

	start := time.Now()
	err = client.DialAndSendWithContext(ctx, msg)
	attrs := []any{
		"channel", m.Channel, "kind", m.Kind, "to", maskEmail(m.To),
		"message_id", msg.GetMessageID(), "server", s.addr(),
		"duration", time.Since(start).Round(time.Millisecond),
	}
	if err != nil && msg.IsDelivered() {
		// The server took the message; only RSET or QUIT after it failed.
		// A retry would deliver it twice.
		s.log.WarnContext(ctx, "e-mail sent, but closing the SMTP session failed",
			append(attrs, "error", redact(err.Error(), m.To, maskEmail(m.To)))...)
		return nil
	}
	if err != nil {
		err = s.classify(ctx, m, err)
		s.log.WarnContext(ctx, "e-mail not sent",
			append(attrs, "permanent", errors.Is(err, userphone.ErrPermanent), "error", err.Error())...)
		return err
	}
	s.log.InfoContext(ctx, "e-mail sent", attrs...)
	return nil
}

// message builds the e-mail for m.
func (s *SMTP) message(m userphone.Message) (*gomail.Msg, error) {
	if m.To == "" {
		return nil, permanentf("delivery: smtp: %s e-mail %q has no recipient", m.Channel, m.Kind)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("delivery: smtp: From: %w", err) // checked in NewSMTP
	}
	if err := msg.To(m.To); err != nil {
		// go-mail's error quotes the address.
		return nil, permanentf("delivery: smtp: recipient %s is not a valid e-mail address", maskEmail(m.To))
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageIDWithValue(messageID(m.IdempotencyKey, s.fromDomain))
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	// Exchange's equivalent: no out-of-office or other automatic replies.
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	if languageTag.MatchString(m.Lang) {
		msg.SetGenHeader(gomail.HeaderContentLang, m.Lang)
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

var (
	languageTag = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)
	// atom is what may stand on either side of a Message-ID's "@" as we
	// write it: RFC 5322's dot-atom-text, restricted to the safe part.
	atom = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

// messageID returns the Message-ID (without angle brackets) for a message
// with this idempotency key: the same for every retry of the message, and
// different for every other message. A key that cannot stand in a
// Message-ID as it is goes in hashed. Without a key, the ID is random:
// not go-mail's own, whose random part may begin or end with a dot, which
// RFC 5322 does not allow.
func messageID(key, domain string) string {
	if key == "" {
		key = rand.Text()
	}
	if !atom.MatchString(key) || len(key) > 64 {
		sum := sha256.Sum256([]byte(key))
		key = hex.EncodeToString(sum[:16])
	}
	if !atom.MatchString(domain) {
		domain = "userphone.invalid"
	}
	return key + "@" + domain
}

// classify turns go-mail's error into one that says whether to retry and
// that can be logged: the recipient masked, no content (go-mail's errors
// hold none).
func (s *SMTP) classify(ctx context.Context, m userphone.Message, err error) error {
	text := "delivery: smtp: " + redact(err.Error(), m.To, maskEmail(m.To))
	if ctxErr := ctx.Err(); ctxErr != nil {
		// Our dialer closed the connection; say why instead of "use of
		// closed network connection".
		return &sendError{msg: fmt.Sprintf("delivery: smtp: %v (%s)", ctxErr, text), cause: errors.Join(ctxErr, err)}
	}
	var se *gomail.SendError
	if errors.As(err, &se) && se.Reason == gomail.ErrSMTPRcptTo && recipientRejected(se.ErrorCode(), se.EnhancedStatusCode(), serverReply(se, m.To)) {
		return &sendError{msg: text, permanent: true, cause: err}
	}
	return &sendError{msg: text, cause: err}
}

// serverReply returns the server's words in a go-mail SendError, which
// wraps them in its reason, the recipients and the Message-ID, with the
// recipient's address replaced, so that only the server's words are
// searched for hints.
func serverReply(se *gomail.SendError, recipient string) string {
	text := strings.TrimPrefix(se.Error(), se.Reason.String()+":")
	text, _, _ = strings.Cut(text, ", affected recipient(s): ")
	text, _, _ = strings.Cut(text, ", affected message ID: ")
	return strings.TrimSpace(redact(text, recipient, "<recipient>"))
}

// enhancedCode finds an RFC 3463 status code such as 5.1.1 in a reply.
var enhancedCode = regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`)

// senderFault matches replies to RCPT TO that blame the sending side, not
// the recipient: Postfix, for one, rejects a sender it does not accept, or
// a client that has not authenticated, only at RCPT TO.
var senderFault = regexp.MustCompile(`(?i)relay|sender|authenticat|client host`)

// recipientRejected reports whether a reply to RCPT TO rejects the
// recipient for good: a 5xx reply, unless it is the sender's fault: 530
// (authentication required), 5.1.7 and 5.1.8 (bad sender address), 5.7.0
// and 5.7.8 (authentication), or a text about relaying, the sender or
// authentication.
func recipientRejected(code int, enhanced, text string) bool {
	if code < 500 || code > 599 || code == 530 {
		return false
	}
	if enhanced == "" {
		enhanced = enhancedCode.FindString(text)
	}
	switch enhanced {
	case "5.1.7", "5.1.8", "5.7.0", "5.7.8":
		return false
	}
	return !senderFault.MatchString(text)
}
