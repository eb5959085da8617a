package server

import (
	"net/http"
	"strconv"
	"time"
)

// deprecationHeaders returns the headers of a deprecated operation's
// answers: Deprecation as an RFC 9745 structured-field date ("@" and Unix
// seconds), Sunset as an RFC 8594 HTTP date. Zero times send none.
func deprecationHeaders(deprecation, sunset time.Time) http.Header {
	h := http.Header{}
	if !deprecation.IsZero() {
		h.Set("Deprecation", "@"+strconv.FormatInt(deprecation.Unix(), 10))
	}
	if !sunset.IsZero() {
		h.Set("Sunset", sunset.UTC().Format(http.TimeFormat))
	}
	return h
}
