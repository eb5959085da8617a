package server

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/pace/userphone/gen/api"
)

// sameOriginOnly refuses, with 403 cross-site-request, a request to method
// and fullPath (a gin route) that a browser sent on behalf of another site;
// other routes pass untouched. It guards the confirmation form: the token
// in the form is the real credential, so this is defence in depth against
// a page elsewhere that posts a token it has got hold of.
func sameOriginOnly(method, fullPath string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Method != method || c.FullPath() != fullPath || !crossSite(c.Request) {
			c.Next()
			return
		}
		writeError(c, httpErrorf(api.ErrorCodeCrossSiteRequest,
			"Confirm from the page that the link in the e-mail opens."))
	}
}

// crossSite tells whether a browser sent r for another site.
//
//   - Sec-Fetch-Site, when present, decides: only same-origin (our own
//     page's form) and none (the user's own doing, such as a bookmark) pass;
//     same-site, cross-site and anything unknown are refused. Browsers set
//     it and pages cannot forge it.
//   - Without it (older browsers), an Origin whose host and port differ
//     from the request's Host is refused, as is one that does not parse.
//     "Origin: null" passes: our pages send Referrer-Policy: no-referrer,
//     under which the Fetch standard makes a browser send "null" for a
//     form posted from our own page (Chromium does, with Sec-Fetch-Site:
//     same-origin), and the browsers that send "null" for other sites'
//     sandboxed frames send Sec-Fetch-Site too.
//   - Neither header (curl, scripts, the README's walk-through) passes:
//     such clients are not a browser tricked by another site.
//
// The Host comparison needs a reverse proxy to pass the Host header on
// (most do); browsers new enough to send Sec-Fetch-Site never reach it.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		switch strings.ToLower(strings.TrimSpace(site)) {
		case "same-origin", "none":
			return false
		}
		return true
	}
	origin := strings.TrimSpace(r.Header.Get("Origin"))
	if origin == "" || origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil {
		return true
	}
	return !sameHost(u, r.Host)
}

// sameHost compares an origin's host and port with a Host header. A
// missing port is the scheme's default on either side: behind a proxy that
// terminates TLS the request's own scheme is unknown.
func sameHost(origin *url.URL, host string) bool {
	defaultPort := map[string]string{"http": "80", "https": "443"}[strings.ToLower(origin.Scheme)]
	oHost, oPort := splitHostPort(origin.Host, defaultPort)
	rHost, rPort := splitHostPort(host, defaultPort)
	return oHost != "" && strings.EqualFold(oHost, rHost) && oPort == rPort
}

func splitHostPort(hostport, defaultPort string) (host, port string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: a bare name, or a bracketed IPv6 address.
		host, port = hostport, ""
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if port == "" {
		port = defaultPort
	}
	return host, port
}
