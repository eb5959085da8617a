package contracttest

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pace/userphone/internal/contracttest/check"
)

// Outcome is how a check ended.
type Outcome string

const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
)

// Result is one named check of a run.
type Result struct {
	Name    string
	Outcome Outcome
	// Reason is one line: what happened, what is wrong, or why it did not
	// run.
	Reason string
	// Details holds the evidence of a failure: further violations, and
	// the body of the answer at fault.
	Details []string
	// Needs names, for a skipped check, the inputs that would let it run
	// ("-mailpit-url"); none when no input would, as after an earlier
	// failure.
	Needs    []string
	Duration time.Duration
}

// Report is what a run found.
type Report struct {
	Target  string // the API base URL
	Started time.Time
	Results []Result
	// Pairs are the embedded spec's documented (operation, status) pairs;
	// Seen holds the keys of those the run's answers produced.
	Pairs []check.Pair
	Seen  map[string]bool
	// AllowSkip accepts skipped checks (Config.AllowSkip).
	AllowSkip bool
}

// OK reports whether the run passed, and exits 0: no check failed, and
// none was skipped unless AllowSkip accepts that.
func (r *Report) OK() bool {
	return !r.Failed() && (r.AllowSkip || r.count(Skipped) == 0)
}

// Failed reports whether any check failed.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.Outcome == Failed {
			return true
		}
	}
	return false
}

func (r *Report) count(o Outcome) int {
	n := 0
	for _, res := range r.Results {
		if res.Outcome == o {
			n++
		}
	}
	return n
}

var outcomeLabel = map[Outcome]string{Passed: "PASS", Failed: "FAIL", Skipped: "SKIP"}

// WriteSummary writes the readable report: each check with one line of
// why, then the documented pairs seen and not seen, then the totals, and
// last, when checks were skipped, the inputs that would run them.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "userphone contract-test against %s\n\n", r.Target)
	for _, res := range r.Results {
		fmt.Fprintf(w, "%s  %s: %s\n", outcomeLabel[res.Outcome], res.Name, res.Reason)
		for _, d := range res.Details {
			fmt.Fprintf(w, "        %s\n", d)
		}
	}
	r.writeCoverage(w)
	fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", r.count(Passed), r.count(Failed), r.count(Skipped))
	r.writeWhatSkipsNeed(w)
}

// writeWhatSkipsNeed says which inputs the skipped checks need, and
// whether the skips fail the run.
func (r *Report) writeWhatSkipsNeed(w io.Writer) {
	n := r.count(Skipped)
	if n == 0 {
		return
	}
	var needs []string
	for _, res := range r.Results {
		for _, input := range res.Needs {
			if res.Outcome == Skipped && !slices.Contains(needs, input) {
				needs = append(needs, input)
			}
		}
	}
	if len(needs) > 0 {
		fmt.Fprintf(w, "To run the %d skipped checks, add %s.\n", n, joinAnd(needs))
	}
	switch {
	case r.AllowSkip:
		fmt.Fprintln(w, "-allow-skip accepts the skipped checks.")
	case !r.Failed():
		fmt.Fprintln(w, "Skipped checks fail the run; -allow-skip accepts a run without them.")
	}
}

// joinAnd joins "a", "b" and "c" as "a, b and c".
func joinAnd(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

func (r *Report) writeCoverage(w io.Writer) {
	c := check.Coverage(r.Pairs, r.Seen)
	fmt.Fprintf(w, "\ndocumented (operation, status) pairs: %d seen, %d not seen, %d documented as never answered\n",
		len(c.Seen), len(c.NotSeen), len(c.NeverAnswered))
	for _, group := range []struct {
		label string
		keys  []string
	}{{"seen          ", c.Seen}, {"not seen      ", c.NotSeen}, {"never answered", c.NeverAnswered}} {
		for _, k := range group.keys {
			fmt.Fprintf(w, "  %s  %s\n", group.label, k)
		}
	}
}

// WriteJUnit writes the report as JUnit XML: one test case per check, a
// failure or skipped element with its reason.
func (r *Report) WriteJUnit(w io.Writer) error {
	type text struct {
		Message string `xml:"message,attr"`
		Body    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string  `xml:"name,attr"`
		Classname string  `xml:"classname,attr"`
		Time      float64 `xml:"time,attr"`
		Failure   *text   `xml:"failure,omitempty"`
		Skipped   *text   `xml:"skipped,omitempty"`
		SystemOut string  `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		XMLName   xml.Name   `xml:"testsuite"`
		Name      string     `xml:"name,attr"`
		Tests     int        `xml:"tests,attr"`
		Failures  int        `xml:"failures,attr"`
		Skipped   int        `xml:"skipped,attr"`
		Time      float64    `xml:"time,attr"`
		Timestamp string     `xml:"timestamp,attr"`
		Hostname  string     `xml:"hostname,attr"`
		Cases     []testcase `xml:"testcase"`
	}
	host := r.Target
	if u, err := url.Parse(r.Target); err == nil {
		host = u.Host
	}
	suite := testsuite{Name: "userphone contract-test", Tests: len(r.Results), Failures: r.count(Failed),
		Skipped: r.count(Skipped), Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05"), Hostname: host}
	for _, res := range r.Results {
		c := testcase{Name: res.Name, Classname: "contract-test", Time: res.Duration.Seconds()}
		suite.Time += c.Time
		switch res.Outcome {
		case Failed:
			c.Failure = &text{Message: res.Reason, Body: strings.Join(append([]string{res.Reason}, res.Details...), "\n")}
		case Skipped:
			c.Skipped = &text{Message: res.Reason}
		default:
			c.SystemOut = res.Reason
		}
		suite.Cases = append(suite.Cases, c)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(suite); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
