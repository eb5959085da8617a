package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/gen/api"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
)

// Every kind of bad input gets a clear JSON:API error, and nothing is lost
// or changed: after each one, the user's phone reads exactly as before.

func TestBadRequestsAreRefusedAndChangeNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		tok := h.token("lena", "lena@example.com")
		h.verifyNumber(tok, numberA)
		h.put(tok, numberB) // a pending change that bad requests must not disturb
		before := h.check(tok).Body
		messages := len(h.messages())
		auth := "Bearer " + tok
		const put, verify = "/user/2021-2/user/phone", "/user/2021-2/user/phone/verify"

		cases := []struct {
			name, method, path, contentType, body string
			status                                int
			code                                  api.ErrorCode
			pointer                               string
		}{
			{"body not JSON", "PUT", put, "application/vnd.api+json", `{"data":`, 400, api.ErrorCodeInvalidRequest, ""},
			{"no body", "PUT", put, "application/vnd.api+json", ``, 400, api.ErrorCodeInvalidRequest, ""},
			{"no data", "PUT", put, "application/vnd.api+json", `{}`, 400, api.ErrorCodeInvalidRequest, "/data"},
			{"wrong type", "PUT", put, "application/vnd.api+json", `{"data":{"type":"user","attributes":{"phoneNumber":"+4915112345670"}}}`, 400, api.ErrorCodeInvalidRequest, "/data/type"},
			{"no phone number", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{}}}`, 400, api.ErrorCodeInvalidRequest, "/data/attributes/phoneNumber"},
			{"phone number not a string", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":4915112345670}}}`, 400, api.ErrorCodeInvalidRequest, "/data/attributes/phoneNumber"},
			{"phone number too long", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+49151123456789012345678901234567890"}}}`, 400, api.ErrorCodeInvalidRequest, "/data/attributes/phoneNumber"},
			{"plain JSON for the update", "PUT", put, "application/json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345670"}}}`, 415, api.ErrorCodeUnsupportedMediaType, ""},
			{"JSON:API with a charset", "PUT", put, "application/vnd.api+json; charset=utf-8", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345670"}}}`, 415, api.ErrorCodeUnsupportedMediaType, ""},
			{"JSON:API with an unknown parameter", "PUT", put, `application/vnd.api+json; version="1.1"`, `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345670"}}}`, 415, api.ErrorCodeUnsupportedMediaType, ""},
			{"no content type", "PUT", put, "", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345670"}}}`, 415, api.ErrorCodeUnsupportedMediaType, ""},
			{"text body", "PUT", verify, "text/plain", `123456`, 415, api.ErrorCodeUnsupportedMediaType, ""},
			{"code too short", "PUT", verify, "application/json", `{"code":"12345"}`, 400, api.ErrorCodeInvalidRequest, "/code"},
			{"code not digits", "PUT", verify, "application/json", `{"code":"12345a"}`, 400, api.ErrorCodeInvalidRequest, "/code"},
			{"no code", "PUT", verify, "application/json", `{}`, 400, api.ErrorCodeInvalidRequest, "/code"},
			{"verify body an array", "PUT", verify, "application/json", `[]`, 400, api.ErrorCodeInvalidRequest, ""},
			{"unknown member is fine but a wrong one is not", "PUT", verify, "application/json", `{"code":123456}`, 400, api.ErrorCodeInvalidRequest, "/code"},
			{"verify body not JSON", "PUT", verify, "application/json", `code=123456`, 400, api.ErrorCodeInvalidRequest, ""},
			{"body too large", "PUT", verify, "application/json", `{"code":"123456","pad":"` + strings.Repeat("x", 20<<10) + `"}`, 413, api.ErrorCodeRequestTooLarge, ""},
			{"update body too large", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345670"}},"pad":"` + strings.Repeat("x", 20<<10) + `"}`, 413, api.ErrorCodeRequestTooLarge, ""},
			{"trailing data after the JSON", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+4915112345670"}}} xyz`, 400, api.ErrorCodeInvalidRequest, ""},
			{"landline", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+49 30 12345678"}}}`, 422, api.ErrorCodeInvalidPhoneNumber, "/data/attributes/phoneNumber"},
			{"invalid number", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+49 170 888 999 000"}}}`, 422, api.ErrorCodeInvalidPhoneNumber, "/data/attributes/phoneNumber"},
			{"national format", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"0151 12345678"}}}`, 422, api.ErrorCodeInvalidPhoneNumber, "/data/attributes/phoneNumber"},
			{"toll free", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"+49 800 1234567"}}}`, 422, api.ErrorCodeInvalidPhoneNumber, "/data/attributes/phoneNumber"},
			{"letters", "PUT", put, "application/vnd.api+json", `{"data":{"type":"phone","attributes":{"phoneNumber":"call me"}}}`, 422, api.ErrorCodeInvalidPhoneNumber, "/data/attributes/phoneNumber"},
			{"wrong code", "PUT", verify, "application/json", `{"code":"000000"}`, 409, api.ErrorCodeEmailConfirmationPending, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp, body := h.raw(c.method, c.path, c.contentType, c.body, "Authorization", auth)
				e := wantError(t, c.status, resp.StatusCode, body, c.code)
				if c.name == "body too large" && !strings.Contains(deref(e.Detail), "larger than") {
					t.Errorf("detail %q does not say the body is too large", deref(e.Detail))
				}
				if got := pointerOf(e); got != c.pointer {
					t.Errorf("source.pointer = %q, want %q (detail %q)", got, c.pointer, deref(e.Detail))
				}
				if after := h.check(tok).Body; string(after) != string(before) {
					t.Errorf("state changed:\nbefore %s\nafter  %s", before, after)
				}
				if n := len(h.messages()); n != messages {
					t.Errorf("%d messages sent", n-messages)
				}
			})
		}
	})
}

func TestConfirmationPagesRefuseBadRequests(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		resp, body := h.raw("GET", "/user/2021-2/user/phone/confirm", "", "")
		e := wantError(t, 400, resp.StatusCode, body, api.ErrorCodeInvalidRequest)
		if e.Source == nil || deref(e.Source.Parameter) != "token" {
			t.Fatalf("source.parameter = %+v, want token", e.Source)
		}
		resp, body = h.raw("POST", "/user/2021-2/user/phone/confirm", "application/json", `{"token":"x"}`)
		wantError(t, 415, resp.StatusCode, body, api.ErrorCodeUnsupportedMediaType)
		resp, body = h.raw("POST", "/user/2021-2/user/phone/confirm", "application/x-www-form-urlencoded", `nottoken=x`)
		wantError(t, 400, resp.StatusCode, body, api.ErrorCodeInvalidRequest)
		resp, body = h.raw("POST", "/user/2021-2/user/phone/confirm", "application/x-www-form-urlencoded", "token="+strings.Repeat("x", 20<<10))
		wantError(t, 413, resp.StatusCode, body, api.ErrorCodeRequestTooLarge)
		for _, token := range []string{"unknown", "<script>alert(1)</script>", strings.Repeat("A", 43)} {
			if r := h.showConfirmation(token); r.StatusCode() != http.StatusNotFound ||
				!strings.HasPrefix(r.HTTPResponse.Header.Get("Content-Type"), "text/html") || strings.Contains(string(r.Body), "<script>") {
				t.Fatalf("unknown token %q: %d %s", token, r.StatusCode(), r.Body)
			}
			if r := h.confirm(token); r.StatusCode() != http.StatusNotFound {
				t.Fatalf("confirm unknown token: %d", r.StatusCode())
			}
		}
	})
}

func TestTokensAndScopesAreEnforced(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		const path = "/user/2021-2/user/phone"
		resp, body := h.raw("GET", path, "", "")
		wantError(t, 401, resp.StatusCode, body, api.ErrorCodeUnauthorized)
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="userphone"` {
			t.Errorf("WWW-Authenticate without a token = %q", got)
		}
		resp, body = h.raw("GET", path, "", "", "Authorization", "Basic YWxpY2U6c2VjcmV0")
		wantError(t, 401, resp.StatusCode, body, api.ErrorCodeUnauthorized)
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="userphone"` {
			t.Errorf("WWW-Authenticate for another scheme = %q", got)
		}
		for name, header := range map[string]string{
			"garbage":       "Bearer not-a-token",
			"foreign token": "Bearer " + foreignToken(t),
		} {
			resp, body := h.raw("GET", path, "", "", "Authorization", header)
			wantError(t, 401, resp.StatusCode, body, api.ErrorCodeUnauthorized)
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
				t.Errorf("%s: WWW-Authenticate = %q", name, got)
			}
		}
		checkOnly := h.token("mia", "mia@example.com", auth.ScopeCheck)
		r := h.put(checkOnly, numberA)
		wantError(t, 403, r.StatusCode(), r.Body, api.ErrorCodeInsufficientScope)
		if got := r.HTTPResponse.Header.Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_scope"`) || !strings.Contains(got, auth.ScopeUpdate) {
			t.Errorf("403 WWW-Authenticate = %q", got)
		}
		v := h.verify(checkOnly, "123456")
		wantError(t, 403, v.StatusCode(), v.Body, api.ErrorCodeInsufficientScope)
		v = h.verify("not-a-token", "123456")
		wantError(t, 401, v.StatusCode(), v.Body, api.ErrorCodeUnauthorized)
		if c := h.check(checkOnly); c.StatusCode() != http.StatusNotFound {
			t.Fatalf("check with the check scope: %d", c.StatusCode())
		}
		updateOnly := h.token("mia", "mia@example.com", auth.ScopeUpdate)
		c := h.check(updateOnly)
		wantError(t, 403, c.StatusCode(), c.Body, api.ErrorCodeInsufficientScope)
		if len(h.messages()) != 0 {
			t.Fatal("a refused request sent a message")
		}
	})
}

// foreignToken is a well-formed dev token signed by another server's key.
func foreignToken(t *testing.T) string {
	keys, err := auth.LoadOrCreateDevKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := keys.Mint(userphone.Identity{Subject: "mallory", Scopes: auth.AllScopes}, 3600e9, nowForTokens())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRoutesOutsideTheAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		resp, body := h.raw("GET", "/user/2021-2/user/phones", "", "")
		wantError(t, 404, resp.StatusCode, body, api.ErrorCodeNotFound)
		resp, body = h.raw("DELETE", "/user/2021-2/user/phone", "", "")
		wantError(t, 405, resp.StatusCode, body, api.ErrorCodeMethodNotAllowed)
		for path, want := range map[string]string{"/health/live": "live", "/health/ready": "ready", "/openapi.yaml": "operationId: UpdateUserPhone"} {
			resp, body := h.raw("GET", path, "", "")
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
			}
			if resp, _ := h.raw("HEAD", path, "", ""); resp.StatusCode != 200 {
				t.Errorf("HEAD %s: %d", path, resp.StatusCode)
			}
		}
		// A caller's request id is kept and returned in errors; a forged one is replaced.
		resp, body = h.raw("GET", "/nowhere", "", "", "X-Request-Id", "trace-123")
		if e := wantError(t, 404, resp.StatusCode, body, api.ErrorCodeNotFound); e.Id != "trace-123" || resp.Header.Get("X-Request-Id") != "trace-123" {
			t.Errorf("request id = %q / %q, want trace-123", e.Id, resp.Header.Get("X-Request-Id"))
		}
		resp, _ = h.raw("GET", "/nowhere", "", "", "X-Request-Id", "bad id; with spaces")
		if id := resp.Header.Get("X-Request-Id"); id == "" || strings.Contains(id, " ") {
			t.Errorf("forged request id kept: %q", id)
		}
	})
}

func TestAnUnreachableDatabaseAnswers503(t *testing.T) {
	// Nothing listens on port 1: every query fails to connect, as when the
	// database is down.
	h := newHarness(t, options{cfg: store.Config{DatabaseURL: "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", DataDir: t.TempDir()}, skipMigrate: true})
	resp, body := h.raw("GET", "/health/ready", "", "")
	wantError(t, 503, resp.StatusCode, body, api.ErrorCodeServiceUnavailable)
	r := h.check(h.token("nina", ""))
	e := wantError(t, 503, r.StatusCode(), r.Body, api.ErrorCodeServiceUnavailable)
	if r.HTTPResponse.Header.Get("Retry-After") == "" || strings.Contains(deref(e.Detail), "127.0.0.1") {
		t.Fatalf("503: Retry-After %q, detail %q", r.HTTPResponse.Header.Get("Retry-After"), deref(e.Detail))
	}
	if resp, _ := h.raw("GET", "/health/live", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("live while the database is down: %d", resp.StatusCode)
	}
	// Every operation that needs the database says so the same way.
	tok := h.token("nina", "")
	if r := h.verify(tok, "123456"); r.StatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("verify: %d", r.StatusCode())
	}
	if r := h.put(tok, numberA); r.StatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("update: %d", r.StatusCode())
	}
	if r := h.showConfirmation("some-token"); r.StatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("confirmation page: %d", r.StatusCode())
	}
	if r := h.confirm("some-token"); r.StatusCode() != http.StatusServiceUnavailable {
		t.Fatalf("confirm: %d", r.StatusCode())
	}
}

// JSON:API's media type with ext or profile is JSON:API still: accepted.
func TestJSONAPIProfileAndExtAreAccepted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		for i, ct := range []string{`application/vnd.api+json; profile="https://example.com/profile"`, `application/vnd.api+json; ext="https://jsonapi.org/ext/atomic"`} {
			body := fmt.Sprintf(`{"data":{"type":"phone","attributes":{"phoneNumber":"+491511234567%d"}}}`, i)
			resp, got := h.raw("PUT", openapi.BasePath+"/user/phone", ct, body, "Authorization", "Bearer "+h.token(fmt.Sprint("p", i), ""))
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("%s: %d %s", ct, resp.StatusCode, got)
			}
		}
	})
}
