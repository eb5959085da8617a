package main

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/store"
)

// config is the whole configuration, read from USERPHONE_* variables.
// Each default is chosen so that `go run ./cmd/userphone` works on a fresh
// machine; the README explains each one.
type config struct {
	Addr        string
	DataDir     string
	DatabaseURL string
	// DatabaseMaxConns caps each replica's PostgreSQL pool.
	DatabaseMaxConns int
	PublicURL        string
	ProcessTTL       time.Duration
	ResendCooldown   time.Duration
	MaxCodeAttempts  int
	Secret           []byte // nil: generated and kept in DataDir
	OIDCIssuer       string
	OIDCAudience     string
	// RequiredLinkedIdentity names an identity provider every token must
	// list in LinkedIdentityClaim; empty turns the check off.
	RequiredLinkedIdentity string
	LinkedIdentityClaim    string
	ShutdownTimeout        time.Duration
	// Delivery.
	Workers             int
	DeliveryMaxAttempts int
	DeliveryFirstRetry  time.Duration
	DeliveryRescueAfter time.Duration
	Retention           time.Duration
	// Providers; empty means the dev outbox.
	SMTPURL, MailFrom, SMTPTLS string
	SMSProvider                string
	TwilioAccountSID           string
	TwilioAuthToken            string
	TwilioFrom                 string
	TwilioMessagingServiceSID  string
	TwilioAPIURL               string
	SMSWebhookURL              string
	SMSWebhookSecret           string
	// Abuse limits; 0 turns one off.
	Limits         flow.Limits
	IPRate         float64
	IPBurst        int
	TrustedProxies []string
	LogLevel       slog.Level
	LogFormat      string
	// The Deprecation (RFC 9745) and Sunset (RFC 8594) headers of the
	// deprecated PACE operations; a zero Sunset sends none.
	Deprecation, Sunset time.Time
	// MetricsAddr is where /metrics and pprof listen; empty turns them off.
	MetricsAddr string
}

// defaultDeprecation is when this service's first contract release
// (CHANGELOG 1.0.0) marked PACE's phone operations deprecated, as PACE's
// spec does; set USERPHONE_DEPRECATION_DATE to PACE's own date if known.
const defaultDeprecation = "2026-11-27"

// settingError names the variable at fault; main prints it on one line and
// exits with status 2.
type settingError struct {
	name, problem string
}

func (e *settingError) Error() string { return e.name + ": " + e.problem }

// loadConfig reads the configuration through lookupEnv, which is
// os.LookupEnv outside tests: a variable set to the empty string differs
// from an unset one for USERPHONE_METRICS_ADDR.
func loadConfig(lookupEnv func(string) (string, bool)) (config, error) {
	r := reader{lookup: lookupEnv}
	c := config{
		Addr:                   r.str("USERPHONE_ADDR", "127.0.0.1:8080"),
		DataDir:                r.str("USERPHONE_DATA_DIR", "./data"),
		DatabaseURL:            r.str("USERPHONE_DATABASE_URL", ""),
		PublicURL:              r.str("USERPHONE_PUBLIC_URL", ""),
		DatabaseMaxConns:       r.integer("USERPHONE_DATABASE_MAX_CONNS", store.DefaultMaxConns, 2, 1000),
		ProcessTTL:             r.duration("USERPHONE_PROCESS_TTL", 24*time.Hour, time.Minute, 30*24*time.Hour),
		ResendCooldown:         r.duration("USERPHONE_RESEND_COOLDOWN", 60*time.Second, 0, time.Hour),
		MaxCodeAttempts:        r.integer("USERPHONE_MAX_CODE_ATTEMPTS", 5, 1, 20),
		OIDCIssuer:             r.str("USERPHONE_OIDC_ISSUER", ""),
		OIDCAudience:           r.str("USERPHONE_OIDC_AUDIENCE", ""),
		RequiredLinkedIdentity: r.str("USERPHONE_REQUIRED_LINKED_IDENTITY", ""),
		LinkedIdentityClaim:    r.str("USERPHONE_LINKED_IDENTITY_CLAIM", "linked_identities"),
		ShutdownTimeout:        r.duration("USERPHONE_SHUTDOWN_TIMEOUT", 15*time.Second, 0, 10*time.Minute),
		LogFormat:              r.oneOf("USERPHONE_LOG_FORMAT", "text", "text", "json"),
		// Sends wait on providers (a few hundred ms each), not the CPU, so
		// a replica on PostgreSQL sends 32 at once: about a hundred SMS a
		// second through a real provider. SQLite's pool is 4 connections,
		// and 4 workers leave it room to answer requests.
		Workers:             r.integer("USERPHONE_WORKERS", defaultWorkers(r.getenv("USERPHONE_DATABASE_URL")), 0, 100),
		DeliveryMaxAttempts: r.integer("USERPHONE_DELIVERY_MAX_ATTEMPTS", jobs.DefaultMaxAttempts, 1, 50),
		DeliveryFirstRetry:  r.duration("USERPHONE_DELIVERY_FIRST_RETRY", jobs.DefaultFirstRetry, time.Second, time.Hour),
		// A killed replica's send is picked up within this + 30 s; it must
		// exceed the job timeout so that a live send is never taken.
		DeliveryRescueAfter:       r.duration("USERPHONE_DELIVERY_RESCUE_AFTER", jobs.DefaultRescueAfter, jobs.JobTimeout+time.Second, 24*time.Hour),
		Retention:                 r.duration("USERPHONE_RETENTION", jobs.DefaultRetention, time.Hour, 10*365*24*time.Hour),
		SMTPURL:                   r.str("USERPHONE_SMTP_URL", ""),
		MailFrom:                  r.str("USERPHONE_MAIL_FROM", ""),
		SMTPTLS:                   r.oneOf("USERPHONE_SMTP_TLS", "", "", "mandatory", "opportunistic", "none"),
		SMSProvider:               r.oneOf("USERPHONE_SMS_PROVIDER", "outbox", "outbox", "twilio", "webhook"),
		TwilioAccountSID:          r.str("USERPHONE_TWILIO_ACCOUNT_SID", ""),
		TwilioAuthToken:           r.str("USERPHONE_TWILIO_AUTH_TOKEN", ""),
		TwilioFrom:                r.str("USERPHONE_TWILIO_FROM", ""),
		TwilioMessagingServiceSID: r.str("USERPHONE_TWILIO_MESSAGING_SERVICE_SID", ""),
		TwilioAPIURL:              r.str("USERPHONE_TWILIO_API_URL", "https://api.twilio.com"),
		SMSWebhookURL:             r.str("USERPHONE_SMS_WEBHOOK_URL", ""),
		SMSWebhookSecret:          r.str("USERPHONE_SMS_WEBHOOK_SECRET", ""),
		// Loopback by default: pprof on the same listener shows the
		// process's internals (heap, goroutines, command line) and can cost
		// CPU, so it is reachable from elsewhere only when an operator
		// says so. Set, but empty, turns the listener off.
		MetricsAddr: r.strOrOff("USERPHONE_METRICS_ADDR", "127.0.0.1:9090"),
	}
	c.Limits = flow.Limits{
		// A person changes their number a few times a year; 5 an hour and
		// 10 a day leave room for typos and resends, and none for a script.
		ChangesPerHour: r.integer("USERPHONE_LIMIT_CHANGES_PER_HOUR", 5, 0, 1000),
		ChangesPerDay:  r.integer("USERPHONE_LIMIT_CHANGES_PER_DAY", 10, 0, 10000),
		// A phone needs one code, maybe a resend or two; more, from any
		// number of accounts, is pumping.
		SMSPerNumberPerHour: r.integer("USERPHONE_LIMIT_SMS_PER_NUMBER_PER_HOUR", 3, 0, 1000),
		SMSPerNumberPerDay:  r.integer("USERPHONE_LIMIT_SMS_PER_NUMBER_PER_DAY", 10, 0, 10000),
		// A ceiling on the SMS bill whatever else fails; raise it with
		// traffic.
		SMSPerHour:     r.integer("USERPHONE_LIMIT_SMS_PER_HOUR", 1000, 0, 10_000_000),
		AllowedRegions: r.regions("USERPHONE_ALLOWED_REGIONS"),
	}
	// A client app makes a handful of calls per screen; 20/s with bursts
	// of 40 never touches a person and slows a script to a crawl.
	c.IPRate = float64(r.integer("USERPHONE_LIMIT_IP_RATE", 20, 0, 100000))
	c.IPBurst = r.integer("USERPHONE_LIMIT_IP_BURST", 40, 1, 100000)
	c.TrustedProxies = r.cidrs("USERPHONE_TRUSTED_PROXIES")
	c.LogLevel = r.level("USERPHONE_LOG_LEVEL")
	c.Secret = r.secret("USERPHONE_SECRET")
	c.Deprecation = r.date("USERPHONE_DEPRECATION_DATE", defaultDeprecation)
	c.Sunset = r.date("USERPHONE_SUNSET_DATE", "")
	if r.err == nil && !c.Sunset.IsZero() && c.Sunset.Before(c.Deprecation) {
		r.fail("USERPHONE_SUNSET_DATE", "%s is before the deprecation date %s (USERPHONE_DEPRECATION_DATE); a sunset comes after it",
			c.Sunset.Format(time.DateOnly), c.Deprecation.Format(time.DateOnly))
	}
	if r.err != nil {
		return c, r.err
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return c, &settingError{"USERPHONE_ADDR", fmt.Sprintf("%q is not host:port; use e.g. 127.0.0.1:8080", c.Addr)}
	}
	if c.MetricsAddr != "" {
		_, port, err := net.SplitHostPort(c.MetricsAddr)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			return c, &settingError{"USERPHONE_METRICS_ADDR", fmt.Sprintf("%q is not host:port; use e.g. 127.0.0.1:9090, or set it empty to turn the metrics off", c.MetricsAddr)}
		}
		if c.MetricsAddr == c.Addr {
			return c, &settingError{"USERPHONE_METRICS_ADDR", fmt.Sprintf("%s is USERPHONE_ADDR too; the metrics and pprof need a listener of their own", c.MetricsAddr)}
		}
	}
	if c.DataDir == "" {
		return c, &settingError{"USERPHONE_DATA_DIR", "must not be empty; use e.g. ./data"}
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return c, &settingError{"USERPHONE_DATABASE_URL", "must be a postgres:// URL, or empty for the SQLite file in USERPHONE_DATA_DIR"}
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + loopbackFor(c.Addr)
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return c, &settingError{"USERPHONE_PUBLIC_URL", fmt.Sprintf("%q is not an http(s) base URL; use e.g. https://api.example.com", c.PublicURL)}
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if err := checkOIDC(c.OIDCIssuer, c.OIDCAudience); err != nil {
		return c, err
	}
	return c, nil
}

// checkOIDC accepts an https issuer, or plain http only on a loopback
// address (a test issuer on this machine): tokens' keys must not travel
// unprotected.
func checkOIDC(issuer, audience string) error {
	switch {
	case issuer == "" && audience == "":
		return nil // dev mode
	case issuer == "":
		return &settingError{"USERPHONE_OIDC_ISSUER", "must be set when USERPHONE_OIDC_AUDIENCE is; unset both for dev mode"}
	case audience == "":
		return &settingError{"USERPHONE_OIDC_AUDIENCE", "must be set when USERPHONE_OIDC_ISSUER is: name the audience (client id) that tokens carry in aud"}
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return &settingError{"USERPHONE_OIDC_ISSUER", fmt.Sprintf("%q is not an issuer URL; use e.g. https://id.example.com/realms/pace", issuer)}
	}
	if u.Scheme == "https" {
		return nil
	}
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && (u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback())) {
		return nil
	}
	return &settingError{"USERPHONE_OIDC_ISSUER", fmt.Sprintf("%q must use https (plain http only on a loopback address)", issuer)}
}

// loopbackFor makes the default public URL reachable from this machine when
// the service listens on all interfaces.
func loopbackFor(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func defaultWorkers(databaseURL string) int {
	if strings.TrimSpace(databaseURL) != "" {
		return 32
	}
	return 4
}

// reader collects the first bad setting.
type reader struct {
	lookup func(string) (string, bool)
	err    error
}

func (r *reader) getenv(name string) string {
	v, _ := r.lookup(name)
	return v
}

func (r *reader) fail(name, format string, args ...any) {
	if r.err == nil {
		r.err = &settingError{name, fmt.Sprintf(format, args...)}
	}
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

// strOrOff is str for a setting that an empty value turns off: def only
// when the variable is unset.
func (r *reader) strOrOff(name, def string) string {
	v, set := r.lookup(name)
	if !set {
		return def
	}
	return strings.TrimSpace(v)
}

func (r *reader) duration(name string, def, lo, hi time.Duration) time.Duration {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(name, "%q is not a duration; use e.g. %s", v, def)
		return def
	}
	if d < lo || d > hi {
		r.fail(name, "%s is out of range; use a duration from %s to %s", d, lo, hi)
	}
	return d
}

func (r *reader) integer(name string, def, lo, hi int) int {
	v := r.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(name, "%q is not a whole number from %d to %d", v, lo, hi)
		return def
	}
	return n
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := r.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	var named []string
	for _, a := range allowed {
		if a != "" {
			named = append(named, a)
		}
	}
	r.fail(name, "%q is not one of %s", v, strings.Join(named, ", "))
	return def
}

func (r *reader) level(name string) slog.Level {
	var l slog.Level
	v := r.str(name, "info")
	if err := l.UnmarshalText([]byte(v)); err != nil {
		r.fail(name, "%q is not a log level; use debug, info, warn or error", v)
	}
	return l
}

// date reads a day (2027-06-30, midnight UTC) or an RFC 3339 time; an
// empty default means none.
func (r *reader) date(name, def string) time.Time {
	v := r.str(name, def)
	if v == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.DateOnly, time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC()
		}
	}
	r.fail(name, "%q is not a date; use e.g. 2027-06-30 or 2027-06-30T00:00:00Z", v)
	return time.Time{}
}

// regions reads a comma-separated list of ISO 3166 regions, e.g. "DE,AT".
func (r *reader) regions(name string) []string {
	var out []string
	for _, f := range strings.Split(r.getenv(name), ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if phonenumbers.GetCountryCodeForRegion(f) == 0 {
			r.fail(name, "%q is not a region libphonenumber knows; use ISO 3166 codes such as DE,AT,CH", f)
			return nil
		}
		out = append(out, f)
	}
	return out
}

// cidrs reads a comma-separated list of CIDRs or addresses.
func (r *reader) cidrs(name string) []string {
	var out []string
	for _, f := range strings.Split(r.getenv(name), ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, _, err := net.ParseCIDR(f); err != nil && net.ParseIP(f) == nil {
			r.fail(name, "%q is not a CIDR or IP address; use e.g. 10.0.0.0/8,127.0.0.1", f)
			return nil
		}
		out = append(out, f)
	}
	return out
}

// secretBytes is the least key length for the HMACs of codes and tokens:
// the size of SHA-256's output, so the key is never the weak part.
const secretBytes = 32

func (r *reader) secret(name string) []byte {
	v := r.getenv(name)
	if v == "" {
		return nil
	}
	b, err := hex.DecodeString(v)
	if err != nil || len(b) < secretBytes {
		r.fail(name, "must be at least %d bytes written as hex; make one with `openssl rand -hex 32`", secretBytes)
		return nil
	}
	return b
}
