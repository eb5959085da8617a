package templates

import (
	"strconv"
	"strings"
)

// supported lists the languages with texts; the first is the fallback.
var supported = []string{"en", "de"}

// Lang picks "de" or "en": the user's locale first (e.g. "de", "de-DE",
// "de_AT" → de; "en-GB" → en), else the best supported match of an
// Accept-Language header, else "en".
//
// In the header, a language's weight is the highest q of the ranges that
// name it ("de-CH;q=0.5, de" gives de 1), so any regional variant counts as
// the language; q=0 means not acceptable, and "*" stands for every language
// the header does not name. Equal weights go to the range listed first.
func Lang(userLocale, acceptLanguage string) string {
	if l := primary(userLocale); isSupported(l) {
		return l
	}
	best, bestQ, bestPos := supported[0], 0.0, 0
	for _, l := range supported {
		q, pos := weight(acceptLanguage, l)
		if q > bestQ || q == bestQ && q > 0 && pos < bestPos {
			best, bestQ, bestPos = l, q, pos
		}
	}
	return best
}

// supportedLang returns lang if it has texts, else the fallback, so that a
// caller passing an unchecked value still gets readable words.
func supportedLang(lang string) string {
	if isSupported(lang) {
		return lang
	}
	return supported[0]
}

func isSupported(lang string) bool {
	for _, l := range supported {
		if l == lang {
			return true
		}
	}
	return false
}

// primary returns the lower-case primary language subtag of a locale or
// language range, accepting "_" as POSIX locales write it.
func primary(tag string) string {
	tag = strings.TrimSpace(tag)
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	return strings.ToLower(tag)
}

// weight returns the q of lang in an Accept-Language header and the
// position of the range that gave it; q is 0 when lang is not acceptable.
func weight(header, lang string) (q float64, pos int) {
	explicit, wildQ, wildPos := false, 0.0, 0
	for i, part := range strings.Split(header, ",") {
		rng, params, _ := strings.Cut(part, ";")
		p := primary(rng)
		if p != lang && p != "*" {
			continue
		}
		pq, ok := quality(params)
		if !ok {
			continue
		}
		if p == "*" {
			wildQ, wildPos = pq, i
			continue
		}
		if !explicit || pq > q {
			q, pos = pq, i
		}
		explicit = true
	}
	if explicit {
		return q, pos
	}
	return wildQ, wildPos
}

// quality reads the q parameter of one language range; a malformed one
// makes the range unusable rather than guessing the client's intent.
func quality(params string) (float64, bool) {
	for _, p := range strings.Split(params, ";") {
		k, v, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(q >= 0 && q <= 1) {
			return 0, false
		}
		return q, true
	}
	return 1, true
}
