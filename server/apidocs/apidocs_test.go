package apidocs_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"testing"

	"github.com/pace/userphone/server/apidocs"
)

// Every file the page names is one that is served, or the spec; the page
// names nothing on another host.
func TestThePageLoadsOnlyServedFiles(t *testing.T) {
	served := map[string]http.Handler{}
	for _, r := range apidocs.Routes() {
		if _, dup := served[r.Path]; dup {
			t.Fatalf("%s is served twice", r.Path)
		}
		served[r.Path] = r.Handler
	}
	page := get(t, served[apidocs.PagePath], apidocs.PagePath)
	base, _ := url.Parse("http://userphone.test" + apidocs.PagePath)
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	var loaded []string
	for _, m := range refs {
		u, err := base.Parse(m[1])
		switch {
		case err != nil:
			t.Errorf("%q does not parse: %v", m[1], err)
		case u.Scheme == "data":
		case u.Host != base.Host:
			t.Errorf("the page names %s, on another host", m[1])
		case u.Path == "/openapi.yaml":
		case served[u.Path] == nil:
			t.Errorf("the page loads %s, which is not served", u.Path)
		default:
			loaded = append(loaded, u.Path)
		}
	}
	for _, need := range []string{"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/init.js"} {
		if !slices.Contains(loaded, need) {
			t.Errorf("the page does not load %s; it loads %v", need, loaded)
		}
	}
	if init := get(t, served["/docs/assets/init.js"], "/docs/assets/init.js"); !regexp.MustCompile(`url: "openapi.yaml"`).MatchString(init) {
		t.Errorf("init.js does not load the spec from openapi.yaml next to /docs:\n%s", init)
	}
}

func get(t *testing.T, h http.Handler, path string) string {
	t.Helper()
	if h == nil {
		t.Fatalf("%s is not served", path)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d", path, rec.Code)
	}
	return rec.Body.String()
}
