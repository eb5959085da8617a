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

	"github.com/pace/userphone/delivery"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/internal/testservers"
	"github.com/pace/userphone/openapi"
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
	// DatabaseURL is where the floor scenarios run.
	DatabaseURL string
}

// defaultBaseURL is the API of a server started with its defaults.
var defaultBaseURL = "http://127.0.0.1:8080" + openapi.BasePath

// errUsage marks a bad command line: exit status 2.
var errUsage = errors.New("usage")

func loadFlags(args []string, getenv func(string) string, stderr io.Writer) (loadConfig, error) {
	var c loadConfig
	fs := flag.NewFlagSet("userphone-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&c.BaseURL, "url", defaultBaseURL, "the server's API base URL")
	fs.StringVar(&c.Scenario, "scenario", "check", "check, request, verify, flow, baseline (the bare server only), floor-select or floor-tx (net/http + pgx only)")
	fs.StringVar(&c.DatabaseURL, "database-url", getenv("USERPHONE_DATABASE_URL"), "PostgreSQL, for the floor scenarios (default $USERPHONE_DATABASE_URL)")
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
// SMS provider pointed at the receiver, every abuse limit off (the load is
// one client sending far more than any limit lets through), and dev
// sign-in on purpose, so that the load generator mints tokens with the
// server's key on PostgreSQL too.
func serverSettings(webhookURL, secret string) [][2]string {
	return [][2]string{
		{"USERPHONE_SMS_PROVIDER", "webhook"},
		{"USERPHONE_SMS_WEBHOOK_URL", webhookURL},
		{"USERPHONE_SMS_WEBHOOK_SECRET", secret},
		{"USERPHONE_LIMITS", "off"},
		{"USERPHONE_DEV", "1"},
	}
}

func webhookURL(addr string) string { return "http://" + addr + testservers.WebhookPath }

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
	r, code := newLoadRun(args, getenv, stderr)
	if r == nil {
		return code
	}
	defer r.close()
	rep, err := r.run(ctx)
	if err != nil {
		return r.fail(err)
	}
	rep.print(stdout)
	if r.cfg.JSONPath != "" {
		if err := rep.writeJSON(r.cfg.JSONPath); err != nil {
			return r.fail(err)
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

// loadRun is one load command from its flags to its report.
type loadRun struct {
	cfg     loadConfig
	sc      *scenario
	e       *loadEnv
	started time.Time
	stderr  io.Writer
	// realServer is false for the baseline and the floors, which need no
	// userphone.
	realServer bool
	rcv        *smsReceiver // nil when the scenario waits for no SMS
	rcvAddr    string
	tail       *outboxTail // nil when it waits for no e-mail
	// closers stop what the run started, last first, once the report is
	// out.
	closers []func()
}

// newLoadRun reads the command line; on a bad one it prints why and
// returns exit status 2.
func newLoadRun(args []string, getenv func(string) string, stderr io.Writer) (*loadRun, int) {
	cfg, err := loadFlags(args, getenv, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "userphone-load: %v\n", err)
		return nil, 2
	}
	sc, ok := scenarios(cfg.CheckStatus, cfg.TokensFile != "")[cfg.Scenario]
	if !ok {
		fmt.Fprintf(stderr, "userphone-load: %v: unknown -scenario %q; use check, request, verify, flow, baseline, floor-select or floor-tx\n", errUsage, cfg.Scenario)
		return nil, 2
	}
	started := time.Now()
	hc := newHTTPClient(cfg.Concurrency, cfg.Timeout)
	apiClient, err := api.NewClient(cfg.BaseURL, api.WithHTTPClient(hc))
	if err != nil {
		fmt.Fprintf(stderr, "userphone-load: %v\n", err)
		return nil, 2
	}
	e := &loadEnv{cfg: cfg, hc: hc, api: apiClient, codes: newMailbox(), links: newMailbox(), numbers: newNumbers(cfg.NumberStart)}
	realServer := sc.name != "baseline" && sc.name != floorSelect && sc.name != floorTx
	return &loadRun{cfg: cfg, sc: sc, e: e, started: started, stderr: stderr, realServer: realServer}, 0
}

// fail prints err and returns its exit status: 2 for a bad command line,
// else 1.
func (r *loadRun) fail(err error) int {
	fmt.Fprintf(r.stderr, "userphone-load: %v\n", err)
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func (r *loadRun) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// run sets up what the scenario needs, measures it and its baseline, and
// returns the report.
func (r *loadRun) run(ctx context.Context) (*report, error) {
	if r.realServer {
		if err := r.connect(ctx); err != nil {
			return nil, err
		}
		if err := r.startReceiver(); err != nil {
			return nil, err
		}
		r.describeSetUp()
	}
	if err := r.followOutbox(); err != nil {
		return nil, err
	}
	if err := r.prepare(ctx); err != nil {
		return nil, err
	}
	return r.measure(ctx)
}

// connect checks that the server is ready and finds the users: from the
// token file, or minted with the server's dev key.
func (r *loadRun) connect(ctx context.Context) error {
	if err := ready(ctx, r.e.hc, r.cfg.BaseURL); err != nil {
		return err
	}
	var err error
	if r.cfg.TokensFile != "" {
		r.e.users, err = readTokenFile(r.cfg.TokensFile)
	} else {
		r.e.users, err = newMinter(r.cfg.DataDir, runID(), r.cfg.TokenTTL)
	}
	return err
}

// startReceiver serves the SMS webhook receiver when the scenario waits
// for codes, or prepares users with them.
func (r *loadRun) startReceiver() error {
	tokenFile := r.cfg.TokensFile != ""
	needReceiver := r.sc.needsSMS || r.sc.name == "request" || (r.sc.name == "check" && r.cfg.CheckStatus == 200 && !tokenFile)
	if !needReceiver {
		return nil
	}
	if r.cfg.WebhookSecret == "" {
		return fmt.Errorf("%w: the %s scenario needs the SMS webhook's secret: -webhook-secret or $USERPHONE_LOAD_WEBHOOK_SECRET, "+
			"the same as the server's USERPHONE_SMS_WEBHOOK_SECRET; `userphone-load settings` makes one", errUsage, r.sc.name)
	}
	rcv := newSMSReceiver(r.cfg.WebhookSecret, r.e.codes)
	addr, stop, err := serveReceiver(r.cfg.WebhookListen, rcv)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, stop)
	r.rcv, r.rcvAddr = rcv, addr.String()
	return nil
}

// describeSetUp prints the run, and the settings the server needs for
// its messages to reach the load generator.
func (r *loadRun) describeSetUp() {
	fmt.Fprintf(r.stderr, "userphone-load: %s against %s; %s\n", r.sc.name, r.cfg.BaseURL, r.e.users.describe())
	if r.rcv == nil {
		return
	}
	fmt.Fprintf(r.stderr, "userphone-load: the SMS webhook receiver listens on %s; the server must run with:\n", webhookURL(r.rcvAddr))
	for _, kv := range serverSettings(webhookURL(r.rcvAddr), "(the secret given with -webhook-secret)") {
		fmt.Fprintf(r.stderr, "  %s=%s\n", kv[0], kv[1])
	}
	if r.cfg.TokensFile == "" || r.sc.needsEmail {
		fmt.Fprintf(r.stderr, "  USERPHONE_DATA_DIR=%s (no USERPHONE_SMTP_URL: the e-mails go to its outbox)\n", r.cfg.DataDir)
	}
}

// followOutbox follows the dev outbox when the scenario waits for e-mails.
func (r *loadRun) followOutbox() error {
	if !r.sc.needsEmail {
		return nil
	}
	tail, err := openOutboxTail(filepath.Join(r.cfg.DataDir, delivery.OutboxFile), r.e.links)
	if err != nil {
		return err
	}
	tailCtx, stopTail := context.WithCancel(context.Background())
	r.closers = append(r.closers, stopTail)
	go tail.run(tailCtx)
	r.tail = tail
	return nil
}

// prepare makes the users the scenario asks about, unmeasured.
func (r *loadRun) prepare(ctx context.Context) error {
	if r.sc.prepare == nil {
		return nil
	}
	t0 := time.Now()
	fmt.Fprintf(r.stderr, "userphone-load: preparing %d users…\n", r.cfg.Users)
	if err := r.sc.prepare(ctx, r.e); err != nil {
		return err
	}
	fmt.Fprintf(r.stderr, "userphone-load: prepared %d users in %s\n", len(r.e.checkUsers), time.Since(t0).Round(time.Millisecond))
	return nil
}

// measure runs the scenario, and the baseline before or after it, and
// reports both with what the receiver and the outbox saw.
func (r *loadRun) measure(ctx context.Context) (*report, error) {
	if !r.realServer {
		url, stop, err := r.startOwnServer(ctx)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, stop)
		r.e.baselineURL = url
	}
	var base *phase
	var err error
	if r.realServer && r.cfg.Baseline == "before" {
		if base, err = r.runBaseline(ctx, r.cfg); err != nil {
			return nil, err
		}
	}
	p := runPhase(ctx, r.e, r.sc.name, r.sc, r.stderr)
	rep := newReport(r.e, p, r.started)
	r.reportMessages(rep)
	if r.realServer && r.cfg.Baseline == "after" && ctx.Err() == nil {
		c := r.cfg
		if c.Iterations > 0 {
			// The same duration as the scenario's window.
			c.Iterations, c.Duration = 0, max(p.elapsed, time.Second)
		}
		if base, err = r.runBaseline(ctx, c); err != nil {
			return nil, err
		}
	}
	if base != nil {
		rep.setBaseline(base)
	}
	rep.Notes = notes(r.e, rep, r.rcv, r.tail)
	return rep, nil
}

// startOwnServer starts the server in this process that a scenario without
// userphone measures: the bare one, or a floor.
func (r *loadRun) startOwnServer(ctx context.Context) (string, func(), error) {
	if r.sc.name == "baseline" {
		return startBaseline()
	}
	return startFloor(ctx, r.cfg.DatabaseURL)
}

// runBaseline measures the bare server with c's concurrency and duration.
func (r *loadRun) runBaseline(ctx context.Context, c loadConfig) (*phase, error) {
	url, stop, err := startBaseline()
	if err != nil {
		return nil, err
	}
	defer stop()
	be := &loadEnv{cfg: c, hc: r.e.hc, baselineURL: url}
	// Closed loop whatever -rate says: the baseline is the ceiling.
	be.cfg.Rate = 0
	return runPhase(ctx, be, "baseline", scenarios(0, false)["baseline"], r.stderr), nil
}

// reportMessages waits for the SMS still on their way (-drain), then adds
// what the receiver and the outbox tail counted to rep.
func (r *loadRun) reportMessages(rep *report) {
	if r.rcv == nil {
		return
	}
	after, still := drain(r.rcv, time.Second, r.cfg.Drain)
	c := r.rcv.Counts()
	rep.Messages = &messageInfo{
		ReceiverAddress: webhookURL(r.rcvAddr), StillArriving: still,
		SMSReceived: int64(c.Taken), SMSDuplicates: int64(c.Duplicates), SMSRejected: int64(c.Unauthorized),
		SMSMalformed: r.rcv.malformed(), SMSUnclaimed: r.e.codes.stray.Load(), SMSAfterRun: after,
	}
	if r.tail != nil {
		rep.Messages.EmailsUnclaimed, rep.Messages.OutboxLinesSeen = r.e.links.stray.Load(), r.tail.lines.Load()
	}
}

// notes explain what the numbers alone do not.
func notes(e *loadEnv, r *report, rcv *smsReceiver, tail *outboxTail) []string {
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
		switch c := rcv.Counts(); {
		case c.Unauthorized > 0:
			out = append(out, "SMS were refused for their signature or timestamp: the server's USERPHONE_SMS_WEBHOOK_SECRET differs from -webhook-secret, or the clocks differ")
		case c.Taken == 0:
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
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), openapi.BasePath) + "/health/ready"
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
