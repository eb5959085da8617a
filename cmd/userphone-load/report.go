package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is the JSON document -json writes; the table shows the same.
type report struct {
	Scenario    string        `json:"scenario"`
	Summary     string        `json:"summary"`
	BaseURL     string        `json:"base_url"`
	Started     time.Time     `json:"started"`
	Concurrency int           `json:"concurrency"`
	Mode        string        `json:"mode"` // closed-loop or open-loop
	Rate        float64       `json:"rate_per_second,omitempty"`
	Warmup      float64       `json:"warmup_seconds"`
	Duration    float64       `json:"duration_seconds"`
	Iterations  int64         `json:"iterations"`
	IterPerSec  float64       `json:"iterations_per_second"`
	Missed      int64         `json:"missed_starts,omitempty"`
	StopReason  string        `json:"stop_reason"`
	Users       string        `json:"users"`
	Operations  []opResult    `json:"operations"`
	Baseline    *baselineInfo `json:"baseline,omitempty"`
	Messages    *messageInfo  `json:"messages,omitempty"`
	Notes       []string      `json:"notes,omitempty"`
	Errors      uint64        `json:"errors"`
}

type baselineInfo struct {
	What       string   `json:"what"`
	Duration   float64  `json:"duration_seconds"`
	Requests   uint64   `json:"requests"`
	Errors     uint64   `json:"errors"`
	PerSecond  float64  `json:"per_second"`
	Latency    opResult `json:"result"`
	Iterations int64    `json:"-"`
}

type messageInfo struct {
	SMSReceived     int64  `json:"sms_received"`
	SMSDuplicates   int64  `json:"sms_duplicates"`
	SMSRejected     int64  `json:"sms_rejected_signature"`
	SMSMalformed    int64  `json:"sms_malformed"`
	SMSUnclaimed    int64  `json:"sms_unclaimed"`
	SMSAfterRun     int64  `json:"sms_after_run"`
	StillArriving   bool   `json:"sms_still_arriving_after_drain,omitempty"`
	EmailsUnclaimed int64  `json:"emails_unclaimed,omitempty"`
	OutboxLinesSeen int64  `json:"outbox_lines_read,omitempty"`
	ReceiverAddress string `json:"receiver_address"`
}

func newReport(e *loadEnv, p *phase, started time.Time) *report {
	cfg := e.cfg
	r := &report{
		Scenario: p.sc.name, Summary: p.sc.summary, BaseURL: cfg.BaseURL, Started: started.UTC(),
		Concurrency: cfg.Concurrency, Mode: "closed-loop", Rate: cfg.Rate, Warmup: cfg.Warmup.Seconds(),
		Duration: p.elapsed.Seconds(), Iterations: p.iterations, Missed: p.missed, StopReason: p.stopReason,
		Operations: p.rec.results(),
	}
	if cfg.Rate > 0 {
		r.Mode = "open-loop"
	}
	if p.elapsed > 0 {
		r.IterPerSec = float64(p.iterations) / p.elapsed.Seconds()
	}
	if e.users != nil && p.sc.name != "baseline" {
		r.Users = e.users.describe()
	}
	for _, o := range r.Operations {
		r.Errors += o.Errors
	}
	return r
}

func (r *report) setBaseline(b *phase) {
	res := b.rec.results()[0]
	r.Baseline = &baselineInfo{
		What:     "a bare net/http server in this process answering a small JSON document on a loopback port, driven by the same client with the same concurrency and duration",
		Duration: b.elapsed.Seconds(), Requests: res.Requests, Errors: res.Errors, PerSecond: res.PerSecond, Latency: res,
	}
	r.Errors += res.Errors
	if res.PerSecond <= 0 {
		return
	}
	for i := range r.Operations {
		if r.Operations[i].HTTP {
			r.Operations[i].VsBaseline = r.Operations[i].PerSecond / res.PerSecond
		}
	}
}

// fmtMS shows milliseconds with three significant digits.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return strconv.FormatFloat(v, 'f', 3, 64) + "ms"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	case v < 10000:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	}
	return strconv.FormatFloat(v/1000, 'f', 1, 64) + "s"
}

// fmtPercent keeps two significant digits of small shares: 0.021%, 2.0%.
func fmtPercent(p float64) string {
	if p >= 10 {
		return strconv.FormatFloat(p, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(p, 'g', 2, 64) + "%"
}

func fmtStatuses(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// print writes the table: one line per operation, the baseline, the
// ratios, and what went wrong.
func (r *report) print(w io.Writer) {
	r.printHeading(w)
	r.printTable(w)
	r.printFootnotes(w)
}

// printHeading says what ran, against what, for how long, and how many
// iterations completed.
func (r *report) printHeading(w io.Writer) {
	fmt.Fprintf(w, "\nscenario %s: %s\n", r.Scenario, r.Summary)
	mode := r.Mode
	if r.Rate > 0 {
		mode += fmt.Sprintf(" at %g iterations/s", r.Rate)
	}
	fmt.Fprintf(w, "%s, %d connections, %s, measured %.1fs after %.1fs warm-up (%s)\n",
		r.BaseURL, r.Concurrency, mode, r.Duration, r.Warmup, r.StopReason)
	if r.Users != "" {
		fmt.Fprintf(w, "users: %s\n", r.Users)
	}
	fmt.Fprintf(w, "iterations: %d completed, %.1f/s", r.Iterations, r.IterPerSec)
	if r.Missed > 0 {
		fmt.Fprintf(w, "; %d scheduled starts dropped (the schedule's queue was full)", r.Missed)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
}

// printTable writes a line per operation and one for the baseline, in
// aligned columns.
func (r *report) printTable(w io.Writer) {
	width := len("operation")
	for _, o := range r.Operations {
		width = max(width, len(o.Name)+2)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\trequests\treq/s\tp50\tp95\tp99\tmax\terrors\tvs baseline\t statuses\n", width, "operation")
	line := func(o opResult, name string) {
		vs := ""
		if o.VsBaseline > 0 {
			vs = fmtPercent(o.VsBaseline * 100)
		}
		count, rate := strconv.FormatUint(o.Requests, 10), strconv.FormatFloat(o.PerSecond, 'f', 1, 64)
		if !o.HTTP {
			name += " *"
		}
		fmt.Fprintf(tw, "%-*s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t %s\n", width, name, count, rate,
			fmtMS(o.Latency.P50), fmtMS(o.Latency.P95), fmtMS(o.Latency.P99), fmtMS(o.Latency.Max), o.Errors, vs, fmtStatuses(o.Statuses))
	}
	for _, o := range r.Operations {
		line(o, o.Name)
	}
	if r.Baseline != nil {
		line(r.Baseline.Latency, "baseline")
	}
	tw.Flush()
}

// printFootnotes explains the table's waits and baseline, and lists what
// the receiver counted, the error samples, the notes and the errors.
func (r *report) printFootnotes(w io.Writer) {
	var waits bool
	for _, o := range r.Operations {
		waits = waits || !o.HTTP
	}
	if waits {
		fmt.Fprintln(w, "* not a request: from the request that makes the server send the message to its arrival (SMS at the webhook receiver, e-mail in the outbox)")
	}
	if r.Baseline != nil {
		fmt.Fprintf(w, "baseline: %s; %.0f req/s over %.1fs\n", r.Baseline.What, r.Baseline.PerSecond, r.Baseline.Duration)
	}
	if m := r.Messages; m != nil {
		fmt.Fprintf(w, "webhook receiver %s: %d SMS taken, %d duplicates, %d refused (signature or timestamp), %d malformed, %d no worker waited for; %d more arrived after the window\n",
			m.ReceiverAddress, m.SMSReceived, m.SMSDuplicates, m.SMSRejected, m.SMSMalformed, m.SMSUnclaimed, m.SMSAfterRun)
	}
	for _, o := range append(slices.Clone(r.Operations), baselineOps(r)...) {
		for _, s := range o.ErrorSamples {
			fmt.Fprintf(w, "error sample %s: %s\n", o.Name, s)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "errors: %d\n", r.Errors)
}

func baselineOps(r *report) []opResult {
	if r.Baseline == nil {
		return nil
	}
	return []opResult{r.Baseline.Latency}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
