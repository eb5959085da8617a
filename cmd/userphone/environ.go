package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pace/userphone/phone"
)

// readElsewhere are the prefixes of USERPHONE_* variables that the tests
// and tools read, and the server ignores on purpose; but a name within
// nearMiss edits of a setting's (USERPHONE_TEST_NUMBER) is still a typo.
var readElsewhere = []string{"USERPHONE_TEST_", "USERPHONE_FAULTS", "USERPHONE_LOAD_", "USERPHONE_SDK_", "USERPHONE_CONTRACT_"}

const nearMiss = 2

// unknownVariables warns of each USERPHONE_* variable no setting reads: a
// mistyped name would otherwise leave its default in force in silence.
func unknownVariables(vars map[string]string, settings []setting) []string {
	known := make([]string, len(settings))
	for i, s := range settings {
		known[i] = s.name
	}
	var warnings []string
	for name := range vars {
		if slices.Contains(known, name) {
			continue
		}
		suggestion := closest(name, known)
		if slices.ContainsFunc(readElsewhere, func(p string) bool { return strings.HasPrefix(name, p) }) && editDistance(name, suggestion) > nearMiss {
			continue
		}
		warnings = append(warnings, fmt.Sprintf("%s is not a setting and is ignored; did you mean %s?", name, suggestion))
	}
	slices.Sort(warnings)
	return warnings
}

// closest is the name with the fewest edits from name.
func closest(name string, names []string) string {
	best, bestDist := "", -1
	for _, n := range names {
		if d := editDistance(name, n); bestDist < 0 || d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// printConfig writes every setting's effective value and where it came
// from, with secrets and passwords masked.
func printConfig(c config, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tFROM")
	for _, s := range c.settings() {
		from := "default"
		if c.fromEnv[s.name] {
			from = "environment"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.name, s.show(), from)
	}
	return tw.Flush()
}

// show is the setting's value as printConfig prints it.
func (s setting) show() string {
	v := valueText(s.field)
	switch {
	case v == "":
		return "(empty)"
	case s.mask == maskValue:
		return "(set, hidden)"
	case s.mask == maskPassword:
		if u, err := url.Parse(v); err == nil {
			return u.Redacted()
		}
		return "(set, hidden)"
	}
	return v
}

// valueText writes a setting's field as its variable would say it.
func valueText(field any) string {
	switch v := field.(type) {
	case *string:
		return *v
	case *int:
		return strconv.Itoa(*v)
	case *float64:
		return strconv.FormatFloat(*v, 'f', -1, 64)
	case *bool:
		return strconv.FormatBool(*v)
	case *time.Duration:
		return v.String()
	case *time.Time:
		if v.IsZero() {
			return ""
		}
		return v.Format(time.RFC3339)
	case *[]string:
		return strings.Join(*v, ",")
	case *[]byte:
		return hex.EncodeToString(*v)
	case *phone.TestNumbers:
		return strings.Join(v.Numbers(), ",") // never the codes
	case *slog.Level:
		return strings.ToLower(v.String())
	case *switchedOff:
		if *v {
			return "off"
		}
		return "on"
	}
	return fmt.Sprint(field)
}
