package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/internal/logs"
	"github.com/pace/userphone/phone"
)

// DefaultTwilioAPIURL is Twilio's REST API, used when TwilioConfig.APIURL
// is empty.
const DefaultTwilioAPIURL = "https://api.twilio.com"

// DefaultHTTPTimeout bounds a whole request, response included, of the
// HTTP senders' default clients.
const DefaultHTTPTimeout = 10 * time.Second

// maxResponseBytes caps what the HTTP senders read of a response: enough
// for any error document, and no more, whatever the other side sends.
const maxResponseBytes = 64 << 10

// TwilioConfig holds the settings of the Twilio SMS sender.
type TwilioConfig struct {
	// AccountSID ("AC" and 32 hex digits) and AuthToken authenticate the
	// requests (HTTP basic auth).
	AccountSID, AuthToken string
	// From is the sender: an E.164 number, a short code or an alphanumeric
	// sender ID. MessagingServiceSID ("MG" and 32 hex digits) lets a
	// Messaging Service pick the sender instead. Set exactly one.
	From, MessagingServiceSID string
	// APIURL is where the API is; empty means DefaultTwilioAPIURL. It must
	// be https, except on a loopback host (a local stand-in).
	APIURL string
	// HTTPClient sends the requests; nil means a client with a
	// DefaultHTTPTimeout timeout.
	HTTPClient *http.Client
}

// Twilio sends SMS through Twilio's Messages API: one POST to
// {APIURL}/2010-04-01/Accounts/{AccountSID}/Messages.json per message,
// with To, Body and From or MessagingServiceSid as a form. Twilio answers
// 201 with the message resource, whose "sid" we log; delivery to the phone
// happens later and is not tracked here.
//
// Failures: a 4xx answer is permanent, as Twilio refuses the number (21211
// invalid number, 21614 not a mobile number, 21610 the recipient opted
// out, 21408 no permission for the region, …), except where the fault is
// the operator's and retrying after a fix helps: 401 and 403 (bad
// credentials), 404 (a wrong account SID or API URL), 408 and 429
// (timeouts and rate limits), and the errors about our sender (21212,
// 21601, 21606: a From that cannot send SMS). 5xx answers, timeouts and
// connection errors are retried too. Error texts carry Twilio's code and
// the number masked.
type Twilio struct {
	endpoint            string
	accountSID          string
	authToken           string
	from                string
	messagingServiceSID string
	client              *http.Client
	log                 *slog.Logger
}

var _ userphone.Sender = (*Twilio)(nil)

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	// A sender is an E.164 number, a short code, or an alphanumeric sender
	// ID of up to 11 letters, digits and spaces with at least one letter.
	e164Pattern         = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	shortCodePattern    = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphanumericPattern = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	hasLetter           = regexp.MustCompile(`[A-Za-z]`)
)

// NewTwilio checks cfg and returns a sender; it sends nothing. A nil log
// discards. Errors are one sentence each and never include the
// auth token.
func NewTwilio(cfg TwilioConfig, log *slog.Logger) (*Twilio, error) {
	log = logs.OrDiscard(log)
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, fmt.Errorf("Twilio account SID %q is not \"AC\" followed by 32 hex digits, as the Twilio console shows it", cfg.AccountSID)
	}
	if cfg.AuthToken == "" {
		return nil, errors.New("Twilio auth token is empty")
	}
	switch {
	case cfg.From == "" && cfg.MessagingServiceSID == "":
		return nil, errors.New("Twilio needs a From sender or a messaging service SID; set one of them")
	case cfg.From != "" && cfg.MessagingServiceSID != "":
		return nil, errors.New("Twilio takes a From sender or a messaging service SID, not both; unset one of them")
	case cfg.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(cfg.MessagingServiceSID):
		return nil, fmt.Errorf("Twilio messaging service SID %q is not \"MG\" followed by 32 hex digits", cfg.MessagingServiceSID)
	case cfg.From != "" && !e164Pattern.MatchString(cfg.From) && !shortCodePattern.MatchString(cfg.From) &&
		!(alphanumericPattern.MatchString(cfg.From) && hasLetter.MatchString(cfg.From)):
		return nil, fmt.Errorf("Twilio From %q is neither an E.164 number like +4915112345678, a short code, nor an alphanumeric sender ID of at most 11 characters", cfg.From)
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = DefaultTwilioAPIURL
	}
	base, err := httpEndpoint("Twilio API URL", apiURL)
	if err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	return &Twilio{
		endpoint:            strings.TrimRight(base.String(), "/") + "/2010-04-01/Accounts/" + cfg.AccountSID + "/Messages.json",
		accountSID:          cfg.AccountSID,
		authToken:           cfg.AuthToken,
		from:                cfg.From,
		messagingServiceSID: cfg.MessagingServiceSID,
		client:              client,
		log:                 log,
	}, nil
}

// httpEndpoint parses a configured URL that the HTTP senders post to:
// https, or http on a loopback host, with a host and without a query.
// Errors name the setting and show the URL without its password.
func httpEndpoint(setting, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		return nil, fmt.Errorf("%s is not a valid URL", setting)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%s %q has no host", setting, u.Redacted())
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("%s %q must use https; plain http is only for loopback hosts", setting, u.Redacted())
		}
	default:
		return nil, fmt.Errorf("%s %q must start with https://", setting, u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s %q must not have a query or fragment", setting, u.Redacted())
	}
	return u, nil
}

// twilioSenderFault lists Twilio errors about our sender, not the user's
// number: a From that is not ours or cannot send SMS. Retrying after the
// operator fixes it helps.
var twilioSenderFault = map[int]bool{
	21212: true, // invalid From number
	21601: true, // From is not an SMS-capable number of the account
	21606: true, // From is not a message-capable Twilio number for this account
}

// twilioPermanent reports whether Twilio's answer refuses the message for
// good.
func twilioPermanent(status, code int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return status >= 400 && status < 500 && !twilioSenderFault[code]
}

// twilioError is Twilio's error document.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Send posts one SMS to Twilio. See Twilio for which failures are
// permanent.
func (t *Twilio) Send(ctx context.Context, m userphone.Message) error {
	if err := checkSMS(ctx, "twilio", m); err != nil {
		return err
	}
	masked := phone.Mask(m.To)
	req, err := t.newMessageRequest(ctx, m)
	if err != nil {
		return err
	}
	attrs := []any{"channel", m.Channel, "kind", m.Kind, "to", masked, "provider", "twilio"}
	start := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		// url.Error names the endpoint, which holds the account SID but no
		// secret; the form with number and text is not in it.
		err = &sendError{msg: "delivery: twilio: " + redact(err.Error(), m.To, masked), cause: err}
		t.log.WarnContext(ctx, "SMS not sent", append(attrs, "permanent", false, "error", err.Error())...)
		return err
	}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes)) // let the connection be reused
	resp.Body.Close()
	attrs = append(attrs, "http_status", resp.StatusCode, "duration", time.Since(start).Round(time.Millisecond))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		t.logAccepted(ctx, body, readErr, attrs)
		return nil
	}
	var te twilioError
	_ = json.Unmarshal(body, &te) // a proxy's error page is not JSON; the status still counts
	sendErr := &sendError{msg: twilioFailure(resp, te, m.To, masked), permanent: twilioPermanent(resp.StatusCode, te.Code)}
	t.log.WarnContext(ctx, "SMS not sent", append(attrs, "twilio_code", te.Code, "permanent", sendErr.permanent, "error", sendErr.msg)...)
	return sendErr
}

// newMessageRequest is the Messages API's create request for m.
func (t *Twilio) newMessageRequest(ctx context.Context, m userphone.Message) (*http.Request, error) {
	form := url.Values{"To": {m.To}, "Body": {m.Text}}
	if t.messagingServiceSID != "" {
		form.Set("MessagingServiceSid", t.messagingServiceSID)
	} else {
		form.Set("From", t.from)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("delivery: twilio: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "userphone")
	if m.IdempotencyKey != "" {
		// Twilio ignores it; a proxy in between may deduplicate by it.
		req.Header.Set("Idempotency-Key", m.IdempotencyKey)
	}
	req.SetBasicAuth(t.accountSID, t.authToken)
	return req, nil
}

// logAccepted logs a 2xx answer. Twilio has taken the message even if we
// cannot read what it says about it: retrying would send the code twice.
func (t *Twilio) logAccepted(ctx context.Context, body []byte, readErr error, attrs []any) {
	var created struct {
		SID    string `json:"sid"`
		Status string `json:"status"`
	}
	if readErr != nil || json.Unmarshal(body, &created) != nil || created.SID == "" {
		t.log.WarnContext(ctx, "SMS accepted, but Twilio's answer has no message SID", attrs...)
		return
	}
	t.log.InfoContext(ctx, "SMS sent", append(attrs, "sid", created.SID, "status", created.Status)...)
}

// twilioFailure describes a refused request in one line, without the
// number or the text.
func twilioFailure(resp *http.Response, te twilioError, to, masked string) string {
	msg := fmt.Sprintf("delivery: twilio: HTTP %d", resp.StatusCode)
	if te.Code != 0 {
		msg += fmt.Sprintf(", Twilio error %d", te.Code)
	}
	if te.Message != "" {
		msg += ": " + truncate(redact(te.Message, to, masked), 300)
	}
	if te.MoreInfo != "" {
		msg += " (" + truncate(te.MoreInfo, 200) + ")"
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if _, err := strconv.Atoi(ra); err == nil {
			msg += ", retry after " + ra + " s"
		}
	}
	return msg
}

// String describes the sender for start-up logs, without the auth token:
// e.g. "Twilio account AC… at https://api.twilio.com, from +4915112345678".
func (t *Twilio) String() string {
	from := "from " + t.from
	if t.messagingServiceSID != "" {
		from = "via messaging service " + t.messagingServiceSID
	}
	base, _, _ := strings.Cut(t.endpoint, "/2010-04-01/")
	return fmt.Sprintf("Twilio account %s at %s, %s", t.accountSID, base, from)
}
