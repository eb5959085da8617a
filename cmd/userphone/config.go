package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pace/userphone/app"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/flow"
)

// config is the whole configuration: the service's own, grouped by the
// package each setting configures (App), and what only the command needs
// (where to listen, the providers, the logs). Each package gives its
// defaults and their reasons; this command reads the environment over them
// (settings) and never restates them.
type config struct {
	App app.Config
	// Addr is where the API listens.
	Addr string
	// Auth is how tokens are verified: an empty issuer is dev mode.
	Auth auth.Policy
	// Introspection is how opaque tokens of the issuer are checked.
	Introspection introspectionConfig
	// Delivery names the providers; empty ones mean the dev outbox.
	Delivery deliveryConfig
	// MetricsAddr is where /metrics and pprof listen; empty turns them off.
	MetricsAddr     string
	ShutdownTimeout time.Duration
	LogLevel        slog.Level
	LogFormat       string
	// LimitsOff turns every abuse limit off, for load tests in dev mode.
	LimitsOff switchedOff
	// Dev asks for dev sign-in where it would be refused otherwise (see
	// checkServe).
	Dev bool
	// AllowTestNumbers lets test numbers run with an OIDC issuer: a
	// staging instance, on purpose.
	AllowTestNumbers bool
	// fromEnv names the variables the environment set; the rest are
	// defaults. warnings are said once the logger exists.
	fromEnv  map[string]bool
	warnings []string
}

// introspectionConfig asks the issuer about opaque access tokens (RFC
// 7662); the URL defaults to the discovery document's endpoint.
type introspectionConfig struct {
	URL, ClientID, ClientSecret string
	// Cache is how long an active answer is trusted.
	Cache time.Duration
}

type deliveryConfig struct {
	SMTP        delivery.SMTPConfig
	SMSProvider string
	Twilio      delivery.TwilioConfig
	Webhook     delivery.WebhookConfig
}

// defaultConfig is the configuration of a fresh `go run ./cmd/userphone`:
// the packages' defaults, and the command's own.
func defaultConfig() config {
	return config{
		App: app.DefaultConfig(),
		// Loopback: a dev server is not exposed by accident.
		Addr: "127.0.0.1:8080",
		Auth: auth.Policy{LinkedIdentityClaim: auth.DefaultLinkedIdentityClaim},
		// Revocation at the issuer takes effect within this; a client's
		// burst of requests asks the issuer once.
		Introspection: introspectionConfig{Cache: auth.DefaultIntrospectionCache},
		Delivery:      deliveryConfig{SMSProvider: "outbox"},
		// Loopback: pprof on the same listener shows the process's
		// internals (heap, goroutines, command line) and can cost CPU, so
		// it is reachable from elsewhere only when an operator says so.
		MetricsAddr: "127.0.0.1:9090",
		// In-flight requests finish within the usual 30 s grace period of
		// orchestrators.
		ShutdownTimeout: 15 * time.Second,
		LogLevel:        slog.LevelInfo,
		LogFormat:       "text",
	}
}

// switchedOff is a feature switch that reads "on" or "off" and is true
// when off.
type switchedOff bool

// settingError names the variable at fault; main prints it on one line and
// exits with status 2.
type settingError struct {
	name, problem string
}

func (e *settingError) Error() string { return e.name + ": " + e.problem }

// loadConfig reads the configuration from environ, which is os.Environ()
// outside tests: a variable set to the empty string differs from an unset
// one for USERPHONE_METRICS_ADDR. A USERPHONE_* variable that no setting
// reads earns a warning that names the closest one.
func loadConfig(environ []string) (config, error) {
	c := defaultConfig()
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "USERPHONE_") {
			vars[k] = v
		}
	}
	c.fromEnv = map[string]bool{}
	settings := c.settings()
	for _, s := range settings {
		v, set := vars[s.name]
		if v = strings.TrimSpace(v); !set || (v == "" && !s.emptyTurnsOff) {
			continue
		}
		if err := s.parse(v); err != nil {
			return c, &settingError{s.name, err.Error()}
		}
		c.fromEnv[s.name] = true
	}
	c.warnings = unknownVariables(vars, settings)
	if err := c.checkTogether(); err != nil {
		return c, err
	}
	return c, nil
}

// checkTogether checks the rules that span settings, and derives the
// public URL from the listen address when it is not set.
func (c *config) checkTogether() error {
	h := &c.App.HTTP
	if !h.Sunset.IsZero() && h.Sunset.Before(h.Deprecation) {
		return &settingError{"USERPHONE_SUNSET_DATE", fmt.Sprintf("%s is before the deprecation date %s (USERPHONE_DEPRECATION_DATE); a sunset comes after it",
			h.Sunset.Format(time.DateOnly), h.Deprecation.Format(time.DateOnly))}
	}
	if f := c.App.Flow; f.CodeTTL > f.ProcessTTL {
		return &settingError{"USERPHONE_CODE_TTL", fmt.Sprintf("%s is longer than the whole process (USERPHONE_PROCESS_TTL, %s); a code must die before its change does", f.CodeTTL, f.ProcessTTL)}
	}
	if c.MetricsAddr != "" && c.MetricsAddr == c.Addr {
		return &settingError{"USERPHONE_METRICS_ADDR", fmt.Sprintf("%s is USERPHONE_ADDR too; the metrics and pprof need a listener of their own", c.MetricsAddr)}
	}
	if c.LimitsOff {
		if c.Auth.Issuer != "" {
			return &settingError{"USERPHONE_LIMITS", "off is for load tests in dev mode, and an OIDC issuer is set; with real users, turn single limits off (USERPHONE_LIMIT_*=0) knowing what each guards"}
		}
		c.App.Flow.Limits = flow.WithoutAbuseLimits(c.App.Flow.Limits)
		c.App.HTTP.IPRate = 0
	}
	if len(c.App.Flow.TestNumbers) > 0 && c.Auth.Issuer != "" && !c.AllowTestNumbers {
		return &settingError{"USERPHONE_TEST_NUMBERS", "is set with an OIDC issuer, and their fixed codes would let any user verify those numbers without a phone; on a staging instance set USERPHONE_ALLOW_TEST_NUMBERS=1 as well, else remove it"}
	}
	if c.App.PublicURL == "" {
		c.App.PublicURL = "http://" + loopbackFor(c.Addr)
	}
	if err := checkOIDC(c.Auth.Issuer, c.Auth.Audience); err != nil {
		return err
	}
	return c.Introspection.check(c.Auth.Issuer)
}

// check accepts introspection settings that go with an issuer, with a
// client id and its secret together.
func (ic introspectionConfig) check(issuer string) error {
	switch {
	case issuer == "" && (ic.URL != "" || ic.ClientID != ""):
		return &settingError{"USERPHONE_OIDC_ISSUER", "must be set for token introspection (USERPHONE_OIDC_INTROSPECTION_URL, USERPHONE_OIDC_CLIENT_ID)"}
	case ic.ClientID != "" && ic.ClientSecret == "":
		return &settingError{"USERPHONE_OIDC_CLIENT_SECRET", "must be set with USERPHONE_OIDC_CLIENT_ID: the service's client authenticates to the introspection endpoint with both"}
	case ic.ClientID == "" && ic.ClientSecret != "":
		return &settingError{"USERPHONE_OIDC_CLIENT_ID", "must be set with USERPHONE_OIDC_CLIENT_SECRET"}
	case ic.URL != "":
		if err := auth.CheckIssuerURL(ic.URL); err != nil {
			return &settingError{"USERPHONE_OIDC_INTROSPECTION_URL", err.Error()}
		}
	}
	return nil
}

// checkOIDC accepts an issuer with its audience, or neither (dev mode).
// Whether the issuer's URL is fit to fetch keys from is the auth package's
// rule (auth.CheckIssuerURL).
func checkOIDC(issuer, audience string) error {
	switch {
	case issuer == "" && audience == "":
		return nil // dev mode
	case issuer == "":
		return &settingError{"USERPHONE_OIDC_ISSUER", "must be set when USERPHONE_OIDC_AUDIENCE is; unset both for dev mode"}
	case audience == "":
		return &settingError{"USERPHONE_OIDC_AUDIENCE", "must be set when USERPHONE_OIDC_ISSUER is: name the audience (client id) that tokens carry in aud"}
	}
	if err := auth.CheckIssuerURL(issuer); err != nil {
		return &settingError{"USERPHONE_OIDC_ISSUER", err.Error()}
	}
	return nil
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

// checkListenAddr accepts host:port with a port number.
func checkListenAddr(addr, example string) error {
	_, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q is not host:port; use e.g. %s", addr, example)
	}
	return nil
}

// checkPublicURL accepts an http(s) base URL, perhaps with a path prefix.
func checkPublicURL(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not an http(s) base URL; use e.g. https://api.example.com", v)
	}
	return strings.TrimSuffix(v, "/"), nil
}
