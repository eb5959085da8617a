// Package apidocs owns the API reference page at /docs: Swagger UI showing
// the spec that /openapi.yaml serves. The Swagger UI version is pinned by
// package.json and package-lock.json here; the files the page needs are
// committed in swagger-ui/ (with their licences) and embedded in the
// binary, so building needs no npm and the page fetches nothing from
// another host. `npm run vendor` in this directory refreshes them, and a
// test checks that they are the locked version's files, byte for byte.
//
// To move to another version, in this directory:
//
//	npm install --save-exact swagger-ui-dist@VERSION
//	npm run vendor
//
// then run go test ./server/... with Chromium: the browser test checks the
// page under its Content-Security-Policy.
package apidocs

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// PagePath is where the page is served; AssetsPath is the prefix of the
// files it loads.
const (
	PagePath   = "/docs"
	AssetsPath = "/docs/assets/"
)

// ContentSecurityPolicy lets the page load only what this server serves,
// and nothing inline. Each source is there because the page breaks without
// it; the browser test opens every operation and schema under this policy
// and fails on any violation, so a new Swagger UI that needs more says so:
//
//   - script-src 'self': the bundle and init.js, both files; no inline
//     script and no eval. Swagger UI needs neither.
//   - style-src 'self': the stylesheet. Swagger UI (React) sets its inline
//     styles through the DOM, which the policy does not restrict, so it
//     needs no 'unsafe-inline'.
//   - img-src data:: the stylesheet's and the bundle's icons are data: URLs
//     (SVG), and so is the empty favicon that stops the browser asking for
//     /favicon.ico. The page shows no other image.
//   - connect-src 'self': the fetch of /openapi.yaml.
//
// Everything else, fonts, frames, workers, forms and other hosts included,
// falls to default-src 'none', and the page may not be framed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; " +
	"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

//go:embed page swagger-ui
var files embed.FS

// Route is one file of the page: its URL path and what serves it.
type Route struct {
	Path    string
	Handler http.Handler
}

// Routes lists the page and each file it loads, for GET and HEAD. An asset
// outside the list is left to the caller's 404.
func Routes() []Route {
	routes := []Route{{PagePath, mustFile("page/index.html")}, {AssetsPath + "init.js", mustFile("page/init.js")}}
	names, err := fs.Glob(files, "swagger-ui/*")
	if err != nil {
		panic(err)
	}
	sort.Strings(names)
	for _, name := range names {
		routes = append(routes, Route{AssetsPath + path.Base(name), mustFile(name)})
	}
	return routes
}

// contentTypes are spelled out rather than read from the system's MIME
// table, which differs between machines (.js as application/javascript).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE, NOTICE
}

// file serves one embedded file. Its ETag is a hash of the content, and
// Cache-Control: no-cache makes browsers revalidate it on each visit: a 304
// costs a round trip, but a new build can never leave a stale bundle in
// the cache.
type file struct {
	name        string
	content     []byte
	contentType string
	etag        string
}

func mustFile(name string) *file {
	content, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	ext := path.Ext(name)
	if strings.HasSuffix(name, ".LICENSE.txt") {
		ext = ".txt"
	}
	ct, ok := contentTypes[ext]
	if !ok {
		panic(fmt.Sprintf("apidocs: no content type for %s", name))
	}
	sum := sha256.Sum256(content)
	return &file{name: name, content: content, contentType: ct,
		etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`}
}

func (f *file) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	// ServeContent answers If-None-Match with 304, and HEAD and ranges.
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.content))
}
