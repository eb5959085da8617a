package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pace/userphone/gen/api"
)

// loadEnv is what the workers of one run share.
type loadEnv struct {
	cfg         loadConfig
	hc          *http.Client
	api         *api.Client
	users       users
	numbers     *numbers
	codes       *mailbox
	links       *mailbox
	checkUsers  []vuser
	baselineURL string

	// current is the recorder outcomes go to: the warm-up's, the
	// measurement's, or nil between phases.
	current  atomic.Pointer[recorder]
	stopping atomic.Bool
	// waits ends when the window closes: no message is worth waiting for
	// then. Requests in flight finish, so the server sees no aborts.
	waits context.Context
	// Live counters for the progress line.
	requests, errors atomic.Int64
}

// record files an outcome with r and reports whether it was expected.
func (e *loadEnv) record(r *recorder, op, label string, d time.Duration, detail func() string) bool {
	if r == nil {
		return true
	}
	ok := r.record(op, label, d, detail)
	if r.ops[op].http && !r.closed.Load() {
		e.requests.Add(1)
		if !ok {
			e.errors.Add(1)
		}
	}
	return ok
}

// newHTTPClient is the one client every request of a run goes through,
// the baseline's included: keep-alive, a pool of one idle connection per
// worker, no proxy, no compression, no redirects.
func newHTTPClient(concurrency int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no total limit; per host below
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// phase is one measured stretch: the scenario or the baseline.
type phase struct {
	name    string
	sc      *scenario
	rec     *recorder
	elapsed time.Duration
	// iterations that completed in the window; missed are open-loop starts
	// dropped because the schedule's queue was full.
	iterations int64
	missed     int64
	stopReason string
}

// runPhase runs sc's iterations on c workers: first the warm-up, whose
// outcomes are dropped, then the measurement for cfg.Duration (or
// cfg.Iterations iterations). Requests still in flight when the window
// closes are not counted; the workers finish them, or give up on them
// after the request timeout.
func runPhase(ctx context.Context, e *loadEnv, name string, sc *scenario, progress io.Writer) *phase {
	r := newPhaseRun(ctx, e, name, sc)
	defer r.cancelRun()
	defer r.cancelWaits()
	if e.cfg.Rate > 0 {
		r.sched = make(chan time.Time, min(int(e.cfg.Rate*10)+e.cfg.Concurrency, 1<<20))
		go r.schedule()
	}
	e.current.Store(r.warm)
	r.startWorkers()
	prog := startProgress(progress, e, name)
	r.warmUpThenMeasure(ctx, prog, name)
	r.letInFlightEnd()
	prog.stop()
	return r.finish()
}

// phaseRun is what one runPhase's workers, schedule and clock share.
type phaseRun struct {
	e             *loadEnv
	sc            *scenario
	p             *phase
	warm, measure *recorder
	// runCtx ends the iterations; cancelWaits ends the waits for messages
	// when the window closes.
	runCtx                 context.Context
	cancelRun, cancelWaits context.CancelFunc
	stopCh                 chan struct{}
	stopOnce               sync.Once
	// sched holds the open loop's start times; nil in a closed loop.
	sched chan time.Time
	// missed counts open-loop starts dropped because sched was full;
	// tickets, the iterations begun in the window, for -n.
	missed, tickets atomic.Int64
	stopErr         atomic.Pointer[error]
	workersDone     chan struct{}
}

func newPhaseRun(ctx context.Context, e *loadEnv, name string, sc *scenario) *phaseRun {
	r := &phaseRun{e: e, sc: sc, warm: newRecorder(sc.ops), measure: newRecorder(sc.ops), stopCh: make(chan struct{})}
	r.p = &phase{name: name, sc: sc, rec: r.measure}
	e.stopping.Store(false)
	e.requests.Store(0)
	e.errors.Store(0)
	r.runCtx, r.cancelRun = context.WithCancel(ctx)
	var waits context.Context
	waits, r.cancelWaits = context.WithCancel(r.runCtx)
	e.waits = waits
	return r
}

// stop closes the window, once, for reason.
func (r *phaseRun) stop(reason string) {
	r.stopOnce.Do(func() {
		r.p.stopReason = reason
		r.e.stopping.Store(true)
		r.measure.close(time.Now())
		close(r.stopCh)
		r.cancelWaits()
	})
}

// schedule puts the open loop's start times into sched, one every
// 1/-rate seconds, until the window closes; a start that finds sched full
// is dropped and counted.
func (r *phaseRun) schedule() {
	start := time.Now()
	interval := time.Duration(float64(time.Second) / r.e.cfg.Rate)
	for k := int64(0); ; k++ {
		at := start.Add(time.Duration(k) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-r.stopCh:
				return
			case <-time.After(d):
			}
		}
		select {
		case r.sched <- at:
		case <-r.stopCh:
			return
		default:
			r.missed.Add(1)
		}
	}
}

// startWorkers starts -c workers; workersDone closes when all have ended.
func (r *phaseRun) startWorkers() {
	var live sync.WaitGroup
	for i := range r.e.cfg.Concurrency {
		live.Go(func() { r.work(&worker{id: i, env: r.e}) })
	}
	r.workersDone = make(chan struct{})
	go func() { live.Wait(); close(r.workersDone) }()
}

// work runs iterations on w until the window closes, the -n tickets run
// out, or an iteration fails in a way that ends the phase (the token file
// ran out), which it stops.
func (r *phaseRun) work(w *worker) {
	for {
		select {
		case <-r.stopCh:
			return
		default:
		}
		if r.sched != nil {
			select {
			case at := <-r.sched:
				w.intended = at
			case <-r.stopCh:
				return
			}
		}
		// The whole iteration counts in the phase it began in, and with -n
		// only the window's iterations take a ticket.
		rec := r.e.current.Load()
		if r.e.cfg.Iterations > 0 && rec == r.measure && r.tickets.Add(1) > r.e.cfg.Iterations {
			return
		}
		w.rec = rec
		err := r.sc.iterate(r.runCtx, w)
		w.intended = time.Time{}
		if err == nil {
			if rec == r.measure && !r.measure.closed.Load() {
				r.measure.iters.Add(1)
			}
			continue
		}
		if !errors.Is(err, errAbort) {
			r.stopErr.CompareAndSwap(nil, &err)
			r.stop(err.Error())
			return
		}
	}
}

// warmUpThenMeasure waits out the warm-up, then opens the window and
// closes it when the duration is reached, ctx ends or the workers are
// done.
func (r *phaseRun) warmUpThenMeasure(ctx context.Context, prog *progress, name string) {
	cfg := r.e.cfg
	if cfg.Warmup > 0 {
		prog.label(name + " warm-up")
		select {
		case <-time.After(cfg.Warmup):
		case <-ctx.Done():
		case <-r.workersDone:
		}
	}
	r.measure.start = time.Now()
	r.e.current.Store(r.measure)
	r.e.requests.Store(0)
	r.e.errors.Store(0)
	prog.restart(name)

	var deadline <-chan time.Time
	if cfg.Iterations == 0 {
		deadline = time.After(cfg.Duration)
	}
	select {
	case <-deadline:
		r.stop("duration reached")
	case <-ctx.Done():
		r.stop("interrupted")
	case <-r.workersDone:
		r.stop("all iterations done")
	case <-r.stopCh:
	}
}

// letInFlightEnd lets the iterations in flight end, uncounted, within the
// request timeout; then it cancels them.
func (r *phaseRun) letInFlightEnd() {
	select {
	case <-r.workersDone:
	case <-time.After(r.e.cfg.Timeout):
		r.cancelRun()
		<-r.workersDone
	}
}

// finish stops recording and fills in the phase's figures.
func (r *phaseRun) finish() *phase {
	r.e.current.Store(nil)
	p := r.p
	p.elapsed = r.measure.elapsed()
	p.iterations = r.measure.iters.Load()
	p.missed = r.missed.Load()
	if errp := r.stopErr.Load(); errp != nil && errors.Is(*errp, errNoUsers) {
		p.stopReason = "the token file ran out"
	}
	return p
}

// progress prints a line a second while a phase runs: on a terminal one
// line rewritten in place, else a line each.
type progress struct {
	w       io.Writer
	tty     bool
	e       *loadEnv
	mu      sync.Mutex
	name    string
	start   time.Time
	lastN   int64
	lastAt  time.Time
	done    chan struct{}
	stopped chan struct{}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func startProgress(w io.Writer, e *loadEnv, name string) *progress {
	p := &progress{w: w, tty: isTerminal(w), e: e, name: name, start: time.Now(), lastAt: time.Now(),
		done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.print()
			}
		}
	}()
	return p
}

func (p *progress) label(name string) {
	p.mu.Lock()
	p.name = name
	p.mu.Unlock()
}

// restart begins the measured window's counting.
func (p *progress) restart(name string) {
	p.mu.Lock()
	p.name, p.start, p.lastN, p.lastAt = name, time.Now(), 0, time.Now()
	p.mu.Unlock()
}

func (p *progress) print() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.lastAt) < 500*time.Millisecond {
		return // the window just began
	}
	n, errs := p.e.requests.Load(), p.e.errors.Load()
	rate := float64(n-p.lastN) / now.Sub(p.lastAt).Seconds()
	p.lastN, p.lastAt = n, now
	line := fmt.Sprintf("%-16s %6.1fs  %9.1f req/s  %9d requests  %d errors",
		p.name, now.Sub(p.start).Seconds(), max(rate, 0), n, errs)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) stop() {
	close(p.done)
	<-p.stopped
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

// startBaseline serves a small JSON document on a loopback port with a
// bare net/http server, in this process: what the client, the loopback
// network and this machine manage without userphone.
func startBaseline() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	body := []byte(`{"data":{"type":"phone","id":"baseline","attributes":{"phoneNumber":"+4917600000000","verified":true}}}`)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/vnd.api+json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/user/phone", func() { _ = srv.Close() }, nil
}

// serveReceiver starts the webhook receiver on addr.
func serveReceiver(addr string, r http.Handler) (net.Addr, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-webhook-listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr(), func() { _ = srv.Close() }, nil
}

// drain waits until no SMS has reached the receiver for quiet, at most
// max: the server may still be sending what the run asked for, which
// would otherwise land on the next run or a closed port. still reports
// that they were still coming when max ran out.
func drain(r *smsReceiver, quiet, max time.Duration) (n int64, still bool) {
	taken := func() int64 { return int64(r.Counts().Taken) }
	before := taken()
	deadline := time.Now().Add(max)
	for {
		if time.Since(r.LastTaken()) >= quiet {
			return taken() - before, false
		}
		if time.Now().After(deadline) {
			return taken() - before, true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
