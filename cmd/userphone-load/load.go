package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/pace/userphone/gen/api"
)

// loadConfig is a load run's flags.
type loadConfig struct {
	BaseURL        string
	Scenario       string
	Concurrency    int
	Duration       time.Duration
	Iterations     int64
	Rate           float64
	Warmup         time.Duration
	JSONPath       string
	DataDir        string
	TokensFile     string
	TokenTTL       time.Duration
	WebhookListen  string
	WebhookSecret  string
	Baseline       string
	Users          int
	CheckStatus    int
	MessageTimeout time.Duration
	Timeout        time.Duration
	NumberStart    int64
	Drain          time.Duration
}

const defaultBaseURL = "http://127.0.0.1:8080/user/2021-2"

// errUsage marks a bad command line: exit status 2.
var errUsage = errors.New("usage")

func loadFlags(args []string, getenv func(string) string, stderr io.Writer) (loadConfig, error) {
	var c loadConfig
	fs := flag.NewFlagSet("userphone-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&c.BaseURL, "url", defaultBaseURL, "the server's API base URL")
	fs.StringVar(&c.Scenario, "scenario", "check", "check, request, verify, flow, or baseline (the bare server only)")
	fs.IntVar(&c.Concurrency, "c", 64, "connections: workers, each with one request in flight")
	fs.DurationVar(&c.Duration, "d", 30*time.Second, "how long to measure")
	fs.Int64Var(&c.Iterations, "n", 0, "measure this many iterations instead of a duration (a request for check and request, a PUT and verify for verify, a whole change for flow)")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: start this many iterations per second, latency counted from the scheduled start; 0 is a closed loop")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "run this long before measuring, and drop its results")
	fs.StringVar(&c.JSONPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.DataDir, "data-dir", envOr(getenv, "USERPHONE_DATA_DIR", "./data"), "the server's USERPHONE_DATA_DIR: its dev signing key mints the tokens, its outbox.jsonl has the e-mails")
	fs.StringVar(&c.TokensFile, "tokens", "", "read bearer tokens from this file, one a line, instead of minting dev tokens; each user is used once (check: the first -users)")
	fs.DurationVar(&c.TokenTTL, "token-ttl", 2*time.Hour, "the minted tokens' lifetime")
	fs.StringVar(&c.WebhookListen, "webhook-listen", "127.0.0.1:9099", "where the SMS webhook receiver listens (the server's USERPHONE_SMS_WEBHOOK_URL points here)")
	fs.StringVar(&c.WebhookSecret, "webhook-secret", envOr(getenv, "USERPHONE_LOAD_WEBHOOK_SECRET", getenv("USERPHONE_SMS_WEBHOOK_SECRET")),
		"the server's USERPHONE_SMS_WEBHOOK_SECRET (default from $USERPHONE_LOAD_WEBHOOK_SECRET, else $USERPHONE_SMS_WEBHOOK_SECRET)")
	fs.StringVar(&c.Baseline, "baseline", "after", "measure the bare net/http baseline after the scenario, before it, or off")
	fs.IntVar(&c.Users, "users", 1000, "check: how many users are asked about, round robin")
	fs.IntVar(&c.CheckStatus, "check-status", 200, "check: 200 asks about users prepared with a verified number, 404 about users the server does not know")
	fs.DurationVar(&c.MessageTimeout, "message-timeout", 30*time.Second, "how long to wait for an SMS or e-mail before the iteration counts as failed")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "a request's timeout")
	fs.Int64Var(&c.NumberStart, "numbers-from", -1, "the first number, as the 8 digits after +49 176; -1 picks a random million")
	fs.DurationVar(&c.Drain, "drain", 30*time.Second, "after the window, wait up to this long for SMS still on their way (until none came for a second)")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if explicit["n"] && explicit["d"] {
		return c, fmt.Errorf("%w: give -d or -n, not both", errUsage)
	}
	switch {
	case c.Concurrency < 1:
		return c, fmt.Errorf("%w: -c must be at least 1", errUsage)
	case c.Iterations < 0 || c.Duration <= 0 || c.Warmup < 0 || c.Rate < 0:
		return c, fmt.Errorf("%w: -n, -d, -warmup and -rate must not be negative", errUsage)
	case !slices.Contains([]string{"after", "before", "off"}, c.Baseline):
		return c, fmt.Errorf("%w: -baseline is after, before or off", errUsage)
	case c.Users < 1:
		return c, fmt.Errorf("%w: -users must be at least 1", errUsage)
	case c.NumberStart >= numberRange:
		return c, fmt.Errorf("%w: -numbers-from has at most 8 digits", errUsage)
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("%w: -url %q is not an http(s) URL", errUsage, c.BaseURL)
	}
	c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	return c, nil
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// serverSettings are what the server needs for a load run: the webhook
// SMS provider pointed at the receiver, and every limit off (the load is
// one client sending far more than any limit lets through).
func serverSettings(webhookURL, secret string) [][2]string {
	return [][2]string{
		{"USERPHONE_SMS_PROVIDER", "webhook"},
		{"USERPHONE_SMS_WEBHOOK_URL", webhookURL},
		{"USERPHONE_SMS_WEBHOOK_SECRET", secret},
		{"USERPHONE_LIMIT_CHANGES_PER_HOUR", "0"},
		{"USERPHONE_LIMIT_CHANGES_PER_DAY", "0"},
		{"USERPHONE_LIMIT_SMS_PER_NUMBER_PER_HOUR", "0"},
		{"USERPHONE_LIMIT_SMS_PER_NUMBER_PER_DAY", "0"},
		{"USERPHONE_LIMIT_SMS_PER_HOUR", "0"},
		{"USERPHONE_LIMIT_IP_RATE", "0"},
	}
}

func webhookURL(addr string) string { return "http://" + addr + webhookPath }

// settingsCmd prints the server's settings as shell exports, with a new
// secret unless one is given: eval "$(userphone-load settings)".
func settingsCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("userphone-load settings", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("webhook-listen", "127.0.0.1:9099", "where the load generator's receiver will listen")
	secret := fs.String("webhook-secret", envOr(getenv, "USERPHONE_LOAD_WEBHOOK_SECRET", getenv("USERPHONE_SMS_WEBHOOK_SECRET")), "the secret; empty makes a new one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		*secret = hex.EncodeToString(b)
	}
	for _, kv := range serverSettings(webhookURL(*listen), *secret) {
		fmt.Fprintf(stdout, "export %s=%s\n", kv[0], kv[1])
	}
	fmt.Fprintf(stdout, "export USERPHONE_LOAD_WEBHOOK_SECRET=%s\n", *secret)
	return 0
}

// loadCmd runs one scenario and its baseline, and reports.
func loadCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadFlags(args, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "userphone-load: %v\n", err)
		return 2
	}
	tokenFile := cfg.TokensFile != ""
	sc, ok := scenarios(cfg.CheckStatus, tokenFile)[cfg.Scenario]
	if !ok {
		fmt.Fprintf(stderr, "userphone-load: %v: unknown -scenario %q; use check, request, verify, flow or baseline\n", errUsage, cfg.Scenario)
		return 2
	}
	started := time.Now()
	hc := newHTTPClient(cfg.Concurrency, cfg.Timeout)
	apiClient, err := api.NewClient(cfg.BaseURL, api.WithHTTPClient(hc))
	if err != nil {
		fmt.Fprintf(stderr, "userphone-load: %v\n", err)
		return 2
	}
	e := &loadEnv{cfg: cfg, hc: hc, api: apiClient, codes: newMailbox(), links: newMailbox(), numbers: newNumbers(cfg.NumberStart)}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "userphone-load: %v\n", err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}

	realServer := sc.name != "baseline"
	var rcv *receiver
	var rcvAddr string
	needReceiver := sc.needsSMS || sc.name == "request" || (sc.name == "check" && cfg.CheckStatus == 200 && !tokenFile)
	if realServer {
		if err := ready(ctx, hc, cfg.BaseURL); err != nil {
			return fail(err)
		}
		if tokenFile {
			e.users, err = readTokenFile(cfg.TokensFile)
		} else {
			e.users, err = newMinter(cfg.DataDir, runID(), cfg.TokenTTL)
		}
		if err != nil {
			return fail(err)
		}
		if needReceiver {
			if cfg.WebhookSecret == "" {
				return fail(fmt.Errorf("%w: the %s scenario needs the SMS webhook's secret: -webhook-secret or $USERPHONE_LOAD_WEBHOOK_SECRET, "+
					"the same as the server's USERPHONE_SMS_WEBHOOK_SECRET; `userphone-load settings` makes one", errUsage, sc.name))
			}
			rcv = newReceiver(cfg.WebhookSecret, e.codes)
			addr, stop, err := serveReceiver(cfg.WebhookListen, rcv)
			if err != nil {
				return fail(err)
			}
			defer stop()
			rcvAddr = addr.String()
		}
		fmt.Fprintf(stderr, "userphone-load: %s against %s; %s\n", sc.name, cfg.BaseURL, e.users.describe())
		if rcv != nil {
			fmt.Fprintf(stderr, "userphone-load: the SMS webhook receiver listens on %s; the server must run with:\n", webhookURL(rcvAddr))
			for _, kv := range serverSettings(webhookURL(rcvAddr), "(the secret given with -webhook-secret)") {
				fmt.Fprintf(stderr, "  %s=%s\n", kv[0], kv[1])
			}
			if !tokenFile || sc.needsEmail {
				fmt.Fprintf(stderr, "  USERPHONE_DATA_DIR=%s (no USERPHONE_SMTP_URL: the e-mails go to its outbox)\n", cfg.DataDir)
			}
		}
	}
	var tail *outboxTail
	if sc.needsEmail {
		tail, err = openOutboxTail(filepath.Join(cfg.DataDir, "outbox.jsonl"), e.links)
		if err != nil {
			return fail(err)
		}
		tailCtx, stopTail := context.WithCancel(context.Background())
		defer stopTail()
		go tail.run(tailCtx)
	}
	if sc.prepare != nil {
		t0 := time.Now()
		fmt.Fprintf(stderr, "userphone-load: preparing %d users…\n", cfg.Users)
		if err := sc.prepare(ctx, e); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "userphone-load: prepared %d users in %s\n", len(e.checkUsers), time.Since(t0).Round(time.Millisecond))
	}

	var base *phase
	runBaseline := func(c loadConfig) error {
		url, stop, err := startBaseline()
		if err != nil {
			return err
		}
		defer stop()
		be := &loadEnv{cfg: c, hc: hc, baselineURL: url}
		// Closed loop whatever -rate says: the baseline is the ceiling.
		be.cfg.Rate = 0
		base = runPhase(ctx, be, "baseline", scenarios(0, false)["baseline"], stderr)
		return nil
	}
	if sc.name == "baseline" {
		url, stop, err := startBaseline()
		if err != nil {
			return fail(err)
		}
		defer stop()
		e.baselineURL = url
	}
	if realServer && cfg.Baseline == "before" {
		if err := runBaseline(cfg); err != nil {
			return fail(err)
		}
	}
	p := runPhase(ctx, e, sc.name, sc, stderr)
	rep := newReport(e, p, started)
	if rcv != nil {
		after, still := drain(rcv, time.Second, cfg.Drain)
		rep.Messages = &messageInfo{
			ReceiverAddress: webhookURL(rcvAddr), StillArriving: still,
			SMSReceived: rcv.received.Load(), SMSDuplicates: rcv.duplicates.Load(), SMSRejected: rcv.rejected.Load(),
			SMSMalformed: rcv.malformed.Load(), SMSUnclaimed: e.codes.stray.Load(), SMSAfterRun: after,
		}
		if tail != nil {
			rep.Messages.EmailsUnclaimed, rep.Messages.OutboxLinesSeen = e.links.stray.Load(), tail.lines.Load()
		}
	}
	if realServer && cfg.Baseline == "after" && ctx.Err() == nil {
		c := cfg
		if c.Iterations > 0 {
			// The same duration as the scenario's window.
			c.Iterations, c.Duration = 0, max(p.elapsed, time.Second)
		}
		if err := runBaseline(c); err != nil {
			return fail(err)
		}
	}
	if base != nil {
		rep.setBaseline(base)
	}
	rep.Notes = notes(e, rep, rcv, tail)
	rep.print(stdout)
	if cfg.JSONPath != "" {
		if err := rep.writeJSON(cfg.JSONPath); err != nil {
			return fail(err)
		}
	}
	if ctx.Err() != nil {
		return 130
	}
	if rep.Errors > 0 {
		return 1
	}
	return 0
}

// notes explain what the numbers alone do not.
func notes(e *loadEnv, r *report, rcv *receiver, tail *outboxTail) []string {
	var out []string
	timeouts := func(op string) uint64 {
		for _, o := range r.Operations {
			if o.Name == op {
				return o.Statuses[labelTimeout]
			}
		}
		return 0
	}
	if rcv != nil && timeouts(opSMSWait) > 0 {
		switch {
		case rcv.rejected.Load() > 0:
			out = append(out, "SMS were refused for their signature or timestamp: the server's USERPHONE_SMS_WEBHOOK_SECRET differs from -webhook-secret, or the clocks differ")
		case rcv.received.Load() == 0:
			out = append(out, "no SMS reached the receiver: does the server run with the settings printed at the start (USERPHONE_SMS_PROVIDER=webhook and the URL)?")
		default:
			out = append(out, "some SMS did not arrive within -message-timeout: the server's delivery queue (USERPHONE_WORKERS) may be behind")
		}
	}
	if tail != nil && timeouts(opEmailWait) > 0 && tail.lines.Load() == 0 {
		out = append(out, fmt.Sprintf("nothing was appended to %s: is -data-dir the server's USERPHONE_DATA_DIR, and USERPHONE_SMTP_URL unset?", tail.path))
	}
	if m := r.Messages; m != nil && m.StillArriving {
		out = append(out, fmt.Sprintf("SMS were still arriving when -drain (%s) ran out: the server's delivery queue is behind what the run asked for, "+
			"and a run started now meets that backlog", e.cfg.Drain))
	}
	if r.Missed > 0 {
		out = append(out, "the open loop's schedule fell more than 10 s behind: the server (or this machine) cannot sustain -rate")
	}
	if u, err := url.Parse(e.cfg.BaseURL); err == nil && r.Scenario != "baseline" {
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			out = append(out, fmt.Sprintf("the server runs on this machine: it shares the %d CPUs with the load generator, the baseline server and the database", runtime.NumCPU()))
		}
	}
	return out
}

// ready checks the server's readiness probe, beside the API's base path.
func ready(ctx context.Context, hc *http.Client, base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/user/2021-2") + "/health/ready"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("the server at %s does not answer (%v); start it, or fix -url", base, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the server's %s answered %d, not 200: it is not ready", u, resp.StatusCode)
	}
	return nil
}

// runID names a run's users: load-<run>-<n>.
func runID() string {
	return strings.ToLower(rand.Text()[:8])
}
