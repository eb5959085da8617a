package main

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/phone"
	"github.com/pace/userphone/store"
)

// A setting binds one USERPHONE_* variable to one field of the
// configuration. The field's default is whatever the config held before.
type setting struct {
	name string
	binding
	// emptyTurnsOff: a variable set to the empty string turns the
	// feature off instead of keeping the default.
	emptyTurnsOff bool
	// mask hides the value when the configuration is printed.
	mask masking
}

// binding is how one field is read and shown. parse sets the field from
// the variable's trimmed value, or says in one sentence what is wrong with
// it; field points at it, for printing.
type binding struct {
	field any
	parse func(value string) error
}

// masking says how much of a value `userphone config` may print.
type masking int

const (
	showValue masking = iota
	// maskValue prints only whether the value is set.
	maskValue
	// maskPassword prints a URL with its password hidden.
	maskPassword
)

// settings lists every variable the command reads, in the README's order.
func (c *config) settings() []setting {
	a := &c.App
	return []setting{
		{name: "USERPHONE_ADDR", binding: listenAddr(&c.Addr, "127.0.0.1:8080")},
		{name: "USERPHONE_DATA_DIR", binding: text(&a.Store.DataDir)},
		{name: "USERPHONE_DATABASE_URL", binding: databaseURL(&a.Store.DatabaseURL), mask: maskPassword},
		{name: "USERPHONE_PUBLIC_URL", binding: publicURL(&a.PublicURL)},
		{name: "USERPHONE_PROCESS_TTL", binding: duration(&a.Flow.ProcessTTL, time.Minute, 30*24*time.Hour)},
		{name: "USERPHONE_RESEND_COOLDOWN", binding: duration(&a.Flow.ResendCooldown, 0, time.Hour)},
		{name: "USERPHONE_MAX_CODE_ATTEMPTS", binding: integer(&a.Flow.MaxCodeAttempts, 1, 20)},
		{name: "USERPHONE_CODE_TTL", binding: duration(&a.Flow.CodeTTL, flow.MinCodeTTL, 24*time.Hour)},
		{name: "USERPHONE_SMS_ORIGIN_BOUND", binding: boolean(&a.Flow.OriginBoundCodes)},
		{name: "USERPHONE_SECRET", binding: secret(&a.Flow.Secret), mask: maskValue},
		{name: "USERPHONE_DEV", binding: boolean(&c.Dev)},
		{name: "USERPHONE_OIDC_ISSUER", binding: text(&c.Auth.Issuer)},
		{name: "USERPHONE_OIDC_AUDIENCE", binding: text(&c.Auth.Audience)},
		{name: "USERPHONE_OIDC_INTROSPECTION_URL", binding: text(&c.Introspection.URL)},
		{name: "USERPHONE_OIDC_CLIENT_ID", binding: text(&c.Introspection.ClientID)},
		{name: "USERPHONE_OIDC_CLIENT_SECRET", binding: text(&c.Introspection.ClientSecret), mask: maskValue},
		{name: "USERPHONE_OIDC_INTROSPECTION_CACHE", binding: duration(&c.Introspection.Cache, time.Second, 10*time.Minute)},
		{name: "USERPHONE_REQUIRED_LINKED_IDENTITY", binding: text(&c.Auth.RequiredLinkedIdentity)},
		{name: "USERPHONE_LINKED_IDENTITY_CLAIM", binding: text(&c.Auth.LinkedIdentityClaim)},
		{name: "USERPHONE_SHUTDOWN_TIMEOUT", binding: duration(&c.ShutdownTimeout, 0, 10*time.Minute)},
		{name: "USERPHONE_DATABASE_MAX_CONNS", binding: integer(&a.Store.MaxConns, 2, 1000)},
		{name: "USERPHONE_WORKERS", binding: integer(&a.Jobs.Workers, 0, 100)},
		{name: "USERPHONE_DELIVERY_MAX_ATTEMPTS", binding: integer(&a.Jobs.MaxAttempts, 1, 50)},
		{name: "USERPHONE_DELIVERY_FIRST_RETRY", binding: duration(&a.Jobs.FirstRetry, time.Second, time.Hour)},
		{name: "USERPHONE_DELIVERY_RESCUE_AFTER", binding: duration(&a.Jobs.RescueAfter, jobs.JobTimeout+time.Second, 24*time.Hour)},
		{name: "USERPHONE_RETENTION", binding: duration(&a.Jobs.Retention, time.Hour, 10*365*24*time.Hour)},
		{name: "USERPHONE_LIMITS", binding: onOff(&c.LimitsOff)},
		{name: "USERPHONE_LIMIT_CHANGES_PER_HOUR", binding: integer(&a.Flow.Limits.ChangesPerHour, 0, 1000)},
		{name: "USERPHONE_LIMIT_CHANGES_PER_DAY", binding: integer(&a.Flow.Limits.ChangesPerDay, 0, 10000)},
		{name: "USERPHONE_LIMIT_SMS_PER_NUMBER_PER_HOUR", binding: integer(&a.Flow.Limits.SMSPerNumberPerHour, 0, 1000)},
		{name: "USERPHONE_LIMIT_SMS_PER_NUMBER_PER_DAY", binding: integer(&a.Flow.Limits.SMSPerNumberPerDay, 0, 10000)},
		{name: "USERPHONE_LIMIT_SMS_TO_OWNED_NUMBER_PER_DAY", binding: integer(&a.Flow.Limits.SMSToOwnedNumberPerDay, 0, 1000)},
		{name: "USERPHONE_LIMIT_SMS_PER_NETWORK_PER_HOUR", binding: integer(&a.Flow.Limits.SMSPerNetworkPerHour, 0, 1_000_000)},
		{name: "USERPHONE_LIMIT_SMS_PER_NETWORK_PER_DAY", binding: integer(&a.Flow.Limits.SMSPerNetworkPerDay, 0, 10_000_000)},
		{name: "USERPHONE_LIMIT_SMS_PER_PREFIX_PER_HOUR", binding: integer(&a.Flow.Limits.SMSPerPrefixPerHour, 0, 1_000_000)},
		{name: "USERPHONE_LIMIT_SMS_PER_PREFIX_PER_DAY", binding: integer(&a.Flow.Limits.SMSPerPrefixPerDay, 0, 10_000_000)},
		{name: "USERPHONE_LIMIT_WRONG_CODES_PER_NUMBER_PER_DAY", binding: integer(&a.Flow.Limits.WrongCodesPerNumberPerDay, 0, 1000)},
		{name: "USERPHONE_LIMIT_SMS_PER_HOUR", binding: integer(&a.Flow.Limits.SMSPerHour, 0, 10_000_000)},
		{name: "USERPHONE_LIMIT_NETWORK_BITS_IPV4", binding: integer(&a.Flow.Limits.IPv4NetworkBits, 8, 32)},
		{name: "USERPHONE_LIMIT_NETWORK_BITS_IPV6", binding: integer(&a.Flow.Limits.IPv6NetworkBits, 16, 128)},
		{name: "USERPHONE_DENY_NONGEOGRAPHIC", binding: boolean(&a.Flow.Limits.DenyNonGeographic)},
		{name: "USERPHONE_LIMIT_IP_RATE", binding: rate(&a.HTTP.IPRate, 0, 100000)},
		{name: "USERPHONE_LIMIT_IP_BURST", binding: integer(&a.HTTP.IPBurst, 1, 100000)},
		{name: "USERPHONE_TRUSTED_PROXIES", binding: cidrs(&a.HTTP.TrustedProxies)},
		{name: "USERPHONE_ALLOWED_REGIONS", binding: regions(&a.Flow.Limits.AllowedRegions)},
		{name: "USERPHONE_TEST_NUMBERS", binding: testNumbers(&a.Flow.TestNumbers), mask: maskValue},
		{name: "USERPHONE_TEST_NUMBERS_UNTIL", binding: endDate(&a.Flow.TestNumbersUntil)},
		{name: "USERPHONE_ALLOW_TEST_NUMBERS", binding: boolean(&c.AllowTestNumbers)},
		{name: "USERPHONE_SMTP_URL", binding: text(&c.Delivery.SMTP.URL), mask: maskPassword},
		{name: "USERPHONE_MAIL_FROM", binding: text(&c.Delivery.SMTP.From)},
		{name: "USERPHONE_SMTP_TLS", binding: oneOf(&c.Delivery.SMTP.TLSPolicy, "mandatory", "opportunistic", "none")},
		{name: "USERPHONE_SMS_PROVIDER", binding: oneOf(&c.Delivery.SMSProvider, "outbox", "twilio", "webhook")},
		{name: "USERPHONE_TWILIO_ACCOUNT_SID", binding: text(&c.Delivery.Twilio.AccountSID)},
		{name: "USERPHONE_TWILIO_AUTH_TOKEN", binding: text(&c.Delivery.Twilio.AuthToken), mask: maskValue},
		{name: "USERPHONE_TWILIO_FROM", binding: text(&c.Delivery.Twilio.From)},
		{name: "USERPHONE_TWILIO_MESSAGING_SERVICE_SID", binding: text(&c.Delivery.Twilio.MessagingServiceSID)},
		{name: "USERPHONE_TWILIO_API_URL", binding: text(&c.Delivery.Twilio.APIURL)},
		{name: "USERPHONE_SMS_WEBHOOK_URL", binding: text(&c.Delivery.Webhook.URL)},
		{name: "USERPHONE_SMS_WEBHOOK_SECRET", binding: text(&c.Delivery.Webhook.Secret), mask: maskValue},
		{name: "USERPHONE_LOG_LEVEL", binding: level(&c.LogLevel)},
		{name: "USERPHONE_LOG_FORMAT", binding: oneOf(&c.LogFormat, "text", "json")},
		{name: "USERPHONE_DEPRECATION_DATE", binding: date(&a.HTTP.Deprecation)},
		{name: "USERPHONE_SUNSET_DATE", binding: date(&a.HTTP.Sunset)},
		{name: "USERPHONE_METRICS_ADDR", binding: metricsAddr(&c.MetricsAddr), emptyTurnsOff: true},
	}
}

func text(p *string) binding {
	return binding{p, func(v string) error { *p = v; return nil }}
}

func listenAddr(p *string, example string) binding {
	return binding{p, func(v string) error {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("%q is not host:port; use e.g. %s", v, example)
		}
		*p = v
		return nil
	}}
}

func metricsAddr(p *string) binding {
	return binding{p, func(v string) error {
		if v != "" {
			if err := checkListenAddr(v, "127.0.0.1:9090, or set it empty to turn the metrics off"); err != nil {
				return err
			}
		}
		*p = v
		return nil
	}}
}

func databaseURL(p *string) binding {
	return binding{p, func(v string) error {
		if err := store.CheckDatabaseURL(v); err != nil {
			return err
		}
		*p = v
		return nil
	}}
}

func publicURL(p *string) binding {
	return binding{p, func(v string) (err error) {
		*p, err = checkPublicURL(v)
		return err
	}}
}

func duration(p *time.Duration, lo, hi time.Duration) binding {
	return binding{p, func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration; use e.g. %s", v, *p)
		}
		if d < lo || d > hi {
			return fmt.Errorf("%s is out of range; use a duration from %s to %s", d, lo, hi)
		}
		*p = d
		return nil
	}}
}

func integer(p *int, lo, hi int) binding {
	return binding{p, func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
		}
		*p = n
		return nil
	}}
}

// rate reads a whole number of requests per second into a float rate.
func rate(p *float64, lo, hi int) binding {
	return binding{p, func(v string) error {
		var n int
		if err := integer(&n, lo, hi).parse(v); err != nil {
			return err
		}
		*p = float64(n)
		return nil
	}}
}

// onOff reads "on" or "off"; off sets *off.
func onOff(off *switchedOff) binding {
	return binding{off, func(v string) error {
		switch strings.ToLower(v) {
		case "on":
			*off = false
		case "off":
			*off = true
		default:
			return fmt.Errorf("%q is neither on nor off", v)
		}
		return nil
	}}
}

func boolean(p *bool) binding {
	return binding{p, func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not a boolean; use true or false", v)
		}
		*p = b
		return nil
	}}
}

func oneOf(p *string, allowed ...string) binding {
	return binding{p, func(v string) error {
		for _, a := range allowed {
			if v == a {
				*p = v
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}}
}

func level(p *slog.Level) binding {
	return binding{p, func(v string) error {
		if err := p.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("%q is not a log level; use debug, info, warn or error", v)
		}
		return nil
	}}
}

// date reads a day (2027-06-30, midnight UTC) or an RFC 3339 time.
func date(p *time.Time) binding {
	return binding{p, func(v string) error {
		for _, layout := range []string{time.DateOnly, time.RFC3339} {
			if t, err := time.Parse(layout, v); err == nil {
				*p = t.UTC()
				return nil
			}
		}
		return fmt.Errorf("%q is not a date; use e.g. 2027-06-30 or 2027-06-30T00:00:00Z", v)
	}}
}

// endDate reads the end of a period: a date is its last day, to its end
// in UTC; a time is that instant.
func endDate(p *time.Time) binding {
	return binding{p, func(v string) error {
		if day, err := time.Parse(time.DateOnly, v); err == nil {
			*p = day.Add(24 * time.Hour)
			return nil
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*p = t.UTC()
			return nil
		}
		return fmt.Errorf("%q is not a date; use e.g. 2027-06-30 (its last day) or 2027-06-30T18:00:00Z", v)
	}}
}

// testNumbers reads the test numbers and their codes (phone.LoadTestNumbers).
func testNumbers(p *phone.TestNumbers) binding {
	return binding{p, func(v string) error {
		n, err := phone.LoadTestNumbers(v)
		*p = n
		return err
	}}
}

// regions reads a comma-separated list of ISO 3166 regions, e.g. "DE,AT".
func regions(p *[]string) binding {
	return binding{p, func(v string) error {
		var out []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.ToUpper(strings.TrimSpace(f)); f == "" {
				continue
			}
			if phonenumbers.GetCountryCodeForRegion(f) == 0 {
				return fmt.Errorf("%q is not a region libphonenumber knows; use ISO 3166 codes such as DE,AT,CH", f)
			}
			out = append(out, f)
		}
		*p = out
		return nil
	}}
}

// cidrs reads a comma-separated list of CIDRs or addresses.
func cidrs(p *[]string) binding {
	return binding{p, func(v string) error {
		var out []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			if _, _, err := net.ParseCIDR(f); err != nil && net.ParseIP(f) == nil {
				return fmt.Errorf("%q is not a CIDR or IP address; use e.g. 10.0.0.0/8,127.0.0.1", f)
			}
			out = append(out, f)
		}
		*p = out
		return nil
	}}
}

// secret reads the hex-encoded secret that keys the flow's HMACs.
func secret(p *[]byte) binding {
	return binding{p, func(v string) error {
		b, err := hex.DecodeString(v)
		if err == nil {
			err = flow.CheckSecret(b)
		}
		if err != nil {
			return fmt.Errorf("must be at least %d bytes written as hex; make one with `openssl rand -hex 32`", flow.MinSecretBytes)
		}
		*p = b
		return nil
	}}
}
