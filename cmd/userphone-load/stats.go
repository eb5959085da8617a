package main

import (
	"maps"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// histogram is a log-linear latency histogram in the manner of HDR
// histograms: values below subBuckets nanoseconds are exact, and each
// further power of two is split into subBuckets equal buckets, so every
// recorded value is known to within 1/subBuckets (1.6 %). It covers
// 1 ns to over an hour in 40 KB, whatever the number of samples.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

const (
	subBucketBits = 6
	subBuckets    = 1 << subBucketBits // 64
	// Values up to 2^(maxExp) ns; 2^42 ns is 73 minutes.
	maxExp      = 42
	histBuckets = (maxExp - subBucketBits + 2) * subBuckets
)

// bucketOf returns the bucket of v nanoseconds.
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(max(v, 0))
	}
	if v >= 1<<maxExp {
		v = 1<<maxExp - 1
	}
	shift := bits.Len64(uint64(v)) - subBucketBits - 1 // >= 0
	mantissa := int(v >> shift)                        // in [subBuckets, 2*subBuckets)
	return (shift+1)*subBuckets + mantissa - subBuckets
}

// bucketHigh returns the highest value bucket i holds, in nanoseconds.
func bucketHigh(i int) int64 {
	if i < subBuckets {
		return int64(i)
	}
	shift := i/subBuckets - 1
	mantissa := int64(i%subBuckets + subBuckets)
	return (mantissa+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value below or at which a fraction q of the samples
// lie (the bucket's highest value, capped at the true maximum).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(bucketHigh(i)), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Status labels that are not HTTP statuses.
const (
	labelNetError = "neterr"  // the request failed: connection, timeout, …
	labelTimeout  = "timeout" // a message did not arrive in time
)

// opStats collects one operation's outcomes within one phase.
type opStats struct {
	name string
	// http is false for the waits for an SMS or e-mail, which are no
	// requests and have no baseline to compare with.
	http bool
	// expected are the labels that count as success.
	expected []string

	mu       sync.Mutex
	hist     histogram
	statuses map[string]uint64
	errors   uint64
	samples  []string // the first few unexpected answers, for the report
}

const maxErrorSamples = 3

func (o *opStats) record(label string, d time.Duration, detail func() string) (ok bool) {
	ok = slices.Contains(o.expected, label)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hist.record(d)
	o.statuses[label]++
	if !ok {
		o.errors++
		if len(o.samples) < maxErrorSamples && detail != nil {
			o.samples = append(o.samples, label+": "+detail())
		}
	}
	return ok
}

// opSpec names an operation and the answers that count as success.
type opSpec struct {
	name     string
	http     bool
	expected []int // HTTP statuses; for a wait, nil (success is "ok")
}

// recorder collects a phase's outcomes: the warm-up, the measurement or the
// baseline. After close, records are dropped, so that requests still in
// flight at the end of the window do not count.
type recorder struct {
	ops    map[string]*opStats
	order  []string
	start  time.Time
	end    atomic.Pointer[time.Time]
	iters  atomic.Int64
	closed atomic.Bool
}

const labelOK = "ok"

func newRecorder(specs []opSpec) *recorder {
	r := &recorder{ops: map[string]*opStats{}, start: time.Now()}
	for _, s := range specs {
		o := &opStats{name: s.name, http: s.http, statuses: map[string]uint64{}}
		for _, st := range s.expected {
			o.expected = append(o.expected, strconv.Itoa(st))
		}
		if !s.http {
			o.expected = []string{labelOK}
		}
		r.ops[s.name] = o
		r.order = append(r.order, s.name)
	}
	return r
}

// record files one outcome under op; it reports whether the outcome was
// expected. Unknown ops are a programming error.
func (r *recorder) record(op, label string, d time.Duration, detail func() string) bool {
	o := r.ops[op]
	if r.closed.Load() {
		return slices.Contains(o.expected, label)
	}
	return o.record(label, d, detail)
}

// close ends the recorder's window at t.
func (r *recorder) close(t time.Time) {
	if r.closed.CompareAndSwap(false, true) {
		r.end.Store(&t)
	}
}

func (r *recorder) elapsed() time.Duration {
	if e := r.end.Load(); e != nil {
		return e.Sub(r.start)
	}
	return time.Since(r.start)
}

// opResult is one operation's line in the report and the JSON.
type opResult struct {
	Name      string            `json:"name"`
	HTTP      bool              `json:"http"`
	Requests  uint64            `json:"requests"`
	Errors    uint64            `json:"errors"`
	PerSecond float64           `json:"per_second"`
	Latency   latencyResult     `json:"latency_ms"`
	Statuses  map[string]uint64 `json:"statuses"`
	// VsBaseline is PerSecond divided by the baseline's; 0 when there is
	// no baseline or the operation is not a request.
	VsBaseline   float64  `json:"vs_baseline,omitempty"`
	ErrorSamples []string `json:"error_samples,omitempty"`
}

type latencyResult struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *recorder) results() []opResult {
	secs := r.elapsed().Seconds()
	var out []opResult
	for _, name := range r.order {
		o := r.ops[name]
		o.mu.Lock()
		h := o.hist
		res := opResult{
			Name: name, HTTP: o.http, Requests: h.n, Errors: o.errors,
			Statuses: maps.Clone(o.statuses), ErrorSamples: slices.Clone(o.samples),
			Latency: latencyResult{
				Min: ms(h.min), Mean: ms(h.mean()), P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)),
				P95: ms(h.quantile(0.95)), P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(h.max),
			},
		}
		o.mu.Unlock()
		if secs > 0 {
			res.PerSecond = float64(h.n) / secs
		}
		out = append(out, res)
	}
	return out
}
