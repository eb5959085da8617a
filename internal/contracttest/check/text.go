package check

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Shorten is s as one printable line of at most max bytes, for a report:
// runs of white space become one space, control characters (an answer's
// body may hold escape sequences that would rewrite a terminal, or
// marks that reorder the text shown) are escaped, and a longer line is cut at a character's boundary and
// ends in "…".
func Shorten(s string, max int) string {
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " ")
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029' {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	s = b.String()
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
