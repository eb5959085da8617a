package server_test

// The API reference at /docs: served by the service itself, public, with
// nothing loaded from another host.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/server/apidocs"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// The operations the issue names: PACE's three and our two for the e-mail
// link. The browser test checks every operation of the spec; this list
// makes sure these five are among them.
var documentedOperations = []string{"UpdateUserPhone", "CheckUserPhone", "VerifyUserPhone", "ShowPhoneConfirmation", "ConfirmPhoneChange"}

// urlWithHost finds absolute and scheme-relative URLs.
var urlWithHost = regexp.MustCompile(`(?i)https?:|["'(]//`)

func TestAPIReferenceIsServed(t *testing.T) {
	h := newHarness(t, options{cfg: storetest.Config(t, store.SQLite)})
	for _, c := range []struct {
		path, contentType string
		has               string // a piece of the body
	}{
		{"/docs", "text/html; charset=utf-8", `<div id="swagger-ui">`},
		{"/docs/assets/init.js", "text/javascript; charset=utf-8", "SwaggerUIBundle("},
		{"/docs/assets/swagger-ui-bundle.js", "text/javascript; charset=utf-8", "SwaggerUIBundle"},
		{"/docs/assets/swagger-ui.css", "text/css; charset=utf-8", ".swagger-ui"},
		{"/docs/assets/LICENSE", "text/plain; charset=utf-8", "Apache License"},
		{"/docs/assets/swagger-ui-bundle.js.LICENSE.txt", "text/plain; charset=utf-8", "license"},
		{"/openapi.yaml", "application/yaml", "operationId: UpdateUserPhone"},
	} {
		// No token: the reference is public.
		resp, body := h.raw(http.MethodGet, c.path, "", "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != c.contentType || !strings.Contains(string(body), c.has) {
			t.Errorf("GET %s: %d %q, %d bytes; want 200 %q with %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), c.contentType, c.has)
			continue
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: the hardening headers are missing: %v", c.path, resp.Header)
		}
		if c.path == "/openapi.yaml" {
			continue // the spec keeps the API's headers
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != apidocs.ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q, want %q", c.path, got, apidocs.ContentSecurityPolicy)
		}
		etag := resp.Header.Get("ETag")
		if etag == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q; want an ETag and no-cache", c.path, etag, resp.Header.Get("Cache-Control"))
			continue
		}
		if again, _ := h.raw(http.MethodGet, c.path, "", "", "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: %d, want 304", c.path, etag, again.StatusCode)
		}
		if head, _ := h.raw(http.MethodHead, c.path, "", ""); head.StatusCode != http.StatusOK || head.Header.Get("Content-Type") != c.contentType {
			t.Errorf("HEAD %s: %d %q", c.path, head.StatusCode, head.Header.Get("Content-Type"))
		}
	}

	// The page names nothing outside this server.
	for _, p := range []string{"/docs", "/docs/assets/init.js"} {
		_, body := h.raw(http.MethodGet, p, "", "")
		if urlWithHost.Match(body) {
			t.Errorf("%s names a URL with a host:\n%s", p, body)
		}
	}

	// Files that are not there, and methods that are not served, get the
	// API's own error documents.
	resp, body := h.raw(http.MethodGet, "/docs/assets/swagger-ui-bundle.js.map", "", "")
	wantError(t, http.StatusNotFound, resp.StatusCode, body, api.ErrorCodeNotFound)
	resp, body = h.raw(http.MethodPost, "/docs", "text/plain", "x")
	wantError(t, http.StatusMethodNotAllowed, resp.StatusCode, body, api.ErrorCodeMethodNotAllowed)
}

// shownOperation is what the reference shows of one operation.
type shownOperation struct {
	Method      string `json:"method"`
	Path        string `json:"path"`
	Summary     string `json:"summary"`
	OperationID string `json:"operationId"`
	Deprecated  bool   `json:"deprecated"`
}

func (o shownOperation) String() string {
	return fmt.Sprintf("%s %s %s %q deprecated=%v", o.OperationID, o.Method, o.Path, o.Summary, o.Deprecated)
}

// operationsScript reads the operations as a person sees them: innerText
// is empty for what is not rendered visibly.
const operationsScript = `[...document.querySelectorAll("#swagger-ui .opblock")].map(b => ({
	method: b.querySelector(".opblock-summary-method")?.innerText.trim() ?? "",
	path: b.querySelector("[data-path]")?.innerText.trim() ?? "",
	summary: b.querySelector(".opblock-summary-description")?.innerText.trim() ?? "",
	operationId: b.querySelector(".opblock-summary-operation-id")?.innerText.trim() ?? "",
	deprecated: b.classList.contains("opblock-deprecated"),
}))`

func TestAPIReferenceInABrowser(t *testing.T) {
	want := specOperations(t)
	browser := startBrowser(t)
	h := newHarness(t, options{cfg: storetest.Config(t, store.SQLite)})
	tab := openTab(t, browser)
	watch := watchTab(t, tab)
	// Violations of the Content-Security-Policy also reach the log, but
	// this tells them apart and names the directive.
	if err := chromedp.Do(tab, chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
		_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
			window.__cspViolations = [];
			document.addEventListener("securitypolicyviolation", e =>
				window.__cspViolations.push(e.violatedDirective + " refused " + e.blockedURI));`})
		return err
	})); err != nil {
		t.Fatal(err)
	}

	resp, err := chromedp.Run(tab, chromedp.NavigateResponse(h.srv.URL+"/docs"))
	if err != nil {
		t.Fatalf("opening /docs: %v", err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("/docs: %d", resp.Status)
	}
	start := time.Now()
	// Rendered: an operation block for each of the spec's operations.
	_, err = chromedp.Run(tab, chromedp.Poll[bool](
		fmt.Sprintf(`document.querySelectorAll("#swagger-ui .opblock .opblock-summary-operation-id").length >= %d`, len(want)),
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		html, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		t.Fatalf("the reference did not render %d operations: %v\n%s\nproblems: %v", len(want), err, html, watch.problems())
	}
	t.Logf("rendered in %v", time.Since(start).Round(time.Millisecond))

	shown, err := chromedp.Run(tab, chromedp.Evaluate[[]shownOperation](operationsScript))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !slices.Contains(shown, w) {
			t.Errorf("the reference does not show %s; it shows:\n%v", w, shown)
		}
	}
	if len(shown) != len(want) {
		t.Errorf("the reference shows %d operations, the spec has %d:\n%v", len(shown), len(want), shown)
	}
	title, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("#swagger-ui .info .title")?.innerText ?? ""`))
	if err != nil {
		t.Fatal(err)
	}
	if spec := specDoc(t); !strings.Contains(title, spec.Info.Title) {
		t.Errorf("the title shows %q, want the spec's %q", title, spec.Info.Title)
	}
	// "Try it out" sends requests to the server chosen in the list: this
	// instance, not PACE production.
	server, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("#swagger-ui .servers select")?.value ?? ""`))
	if err != nil {
		t.Fatal(err)
	}
	if want := h.srv.URL + openapi.BasePath; server != want {
		t.Errorf("the reference tries requests against %q, want this instance, %q", server, want)
	}
	saveScreenshot(t, tab, "docs")

	// Opening the operations and the schemas renders parameters, examples
	// with syntax highlighting and models: the page's policy must allow
	// all of that too.
	err = chromedp.Do(tab,
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("#swagger-ui .opblock-summary-control, #swagger-ui .models .model-box-control").forEach(e => e.click())`),
		chromedp.WaitVisible(chromedp.CSS(`#operations-Phone-UpdateUserPhone .responses-wrapper pre`)),
		chromedp.WaitVisible(chromedp.CSS(`#model-ErrorDocument .model .property-row`)),
	)
	if err != nil {
		t.Fatalf("opening the operations and schemas: %v\nproblems: %v", err, watch.problems())
	}
	saveScreenshot(t, tab, "docs-opened")

	// Everything the page loaded came from the test server, as the browser
	// saw it and as the page itself counts it.
	loaded, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(e => e.name)`))
	if err != nil {
		t.Fatal(err)
	}
	violations, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`window.__cspViolations`))
	if err != nil {
		t.Fatal(err)
	}
	self, err := url.Parse(h.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	requests := watch.requests()
	for _, u := range append(requests, loaded...) {
		p, err := url.Parse(u)
		switch {
		case err != nil:
			t.Errorf("the page requested %q, which does not parse: %v", u, err)
		case p.Scheme == "data":
			// the icons and the empty favicon: nothing leaves the browser
		case p.Scheme != self.Scheme || p.Host != self.Host:
			t.Errorf("the page requested %s, outside the test server %s", u, h.srv.URL)
		}
	}
	for _, need := range []string{"/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/init.js", "/openapi.yaml"} {
		if !slices.Contains(requests, h.srv.URL+need) {
			t.Errorf("the page did not request %s; it requested %v", need, requests)
		}
	}
	for _, v := range violations {
		t.Errorf("Content-Security-Policy violation: %s", v)
	}
	for _, p := range watch.problems() {
		t.Errorf("the browser reported: %s", p)
	}
}

// tabWatch keeps what a tab requested and what it reported as an error.
type tabWatch struct {
	mu    sync.Mutex
	urls  []string
	probs []string
}

func watchTab(t *testing.T, tab context.Context) *tabWatch {
	t.Helper()
	w := &tabWatch{}
	err := chromedp.Listen(tab, func(ev any) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			w.urls = append(w.urls, ev.Request.URL)
		case *network.EventLoadingFailed:
			w.probs = append(w.probs, fmt.Sprintf("loading failed: %s (blocked: %s)", ev.ErrorText, ev.BlockedReason))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			what := d.Text
			if d.Exception != nil {
				what += " " + d.Exception.Description
			}
			w.probs = append(w.probs, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, what))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, cmp.Or(string(a.Value), a.Description))
				}
				w.probs = append(w.probs, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				w.probs = append(w.probs, fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *tabWatch) requests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.urls)
}

func (w *tabWatch) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.probs)
}

// specDoc parses the spec exactly as /openapi.yaml serves it.
func specDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapi.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// specOperations lists what the reference must show of each operation:
// method, path, summary, operationId and whether it is deprecated.
func specOperations(t *testing.T) []shownOperation {
	t.Helper()
	var ops []shownOperation
	for path, item := range specDoc(t).Paths.Map() {
		for method, op := range item.Operations() {
			ops = append(ops, shownOperation{Method: method, Path: path, Summary: op.Summary,
				OperationID: op.OperationID, Deprecated: op.Deprecated})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].OperationID < ops[j].OperationID })
	for _, id := range documentedOperations {
		if !slices.ContainsFunc(ops, func(o shownOperation) bool { return o.OperationID == id && o.Summary != "" }) {
			t.Fatalf("the spec has no operation %s with a summary: %v", id, ops)
		}
	}
	return ops
}

// The served spec names the serving instance first, and is otherwise the
// embedded spec: the reference page and tools that take the first server
// try requests here, not at PACE production.
func TestTheServedSpecNamesThisInstanceFirst(t *testing.T) {
	h := newHarness(t, options{cfg: storetest.Config(t, store.SQLite)})
	resp, body := h.raw(http.MethodGet, "/openapi.yaml", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d", resp.StatusCode)
	}
	served, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	embedded := specDoc(t)
	if len(served.Servers) != len(embedded.Servers)+1 || served.Servers[0].URL != h.srv.URL+openapi.BasePath {
		t.Fatalf("servers %v; want this instance, then %v", served.Servers, embedded.Servers)
	}
	for i, s := range embedded.Servers {
		if served.Servers[i+1].URL != s.URL {
			t.Errorf("server %d: %q, want %q", i+1, served.Servers[i+1].URL, s.URL)
		}
	}
	if len(served.Paths.Map()) != len(embedded.Paths.Map()) || served.Info.Version != embedded.Info.Version {
		t.Error("the served spec differs from the embedded one beyond its servers")
	}
}
