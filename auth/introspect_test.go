package auth_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/testenv"
)

// The edges of RFC 7662 that a real issuer rarely shows on demand, against
// a stand-in endpoint that answers in the RFC's wire format. The whole
// path runs against Ory Hydra in server/hydra_test.go.

const issuer, audience = "https://id.example.com", "userphone"

// endpoint answers every introspection with answer and status, and
// counts the questions and the credentials sent.
type endpoint struct {
	srv     *httptest.Server
	answer  atomic.Value // map[string]any
	status  atomic.Int64
	asked   atomic.Int64
	lastAut atomic.Value // string
}

func newEndpoint(t *testing.T) *endpoint {
	e := &endpoint{}
	e.status.Store(http.StatusOK)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.asked.Add(1)
		id, secret, _ := r.BasicAuth()
		e.lastAut.Store(id + ":" + secret)
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("token") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(int(e.status.Load()))
		json.NewEncoder(w).Encode(e.answer.Load())
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func active(extra map[string]any) map[string]any {
	now := time.Now()
	a := map[string]any{"active": true, "iss": issuer, "aud": []string{audience}, "sub": "alice",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Unix(), "iat": now.Unix(),
		"scope": strings.Join(auth.AllScopes, " "), "token_use": "access_token", "token_type": "Bearer"}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func introspector(t *testing.T, e *endpoint, client ...string) (auth.Verifier, *testenv.SyncBuffer) {
	logs := &testenv.SyncBuffer{}
	cfg := auth.IntrospectionConfig{Policy: auth.Policy{Issuer: issuer, Audience: audience}, URL: e.srv.URL, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if len(client) == 2 {
		cfg.ClientID, cfg.ClientSecret = client[0], client[1]
	}
	i, err := auth.NewIntrospector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return auth.CachedIntrospection(i, time.Hour, nil), logs
}

func TestIntrospectionReadsTheAnswerLikeAJWT(t *testing.T) {
	e := newEndpoint(t)
	e.answer.Store(active(map[string]any{"ext": map[string]any{"email": "alice@example.com", "locale": "de-DE", "sub": "mallory"}}))
	v, _ := introspector(t, e, "userphone client", "s3cret:with/colon")
	id, err := v.Verify(context.Background(), "ory_at_opaque")
	if err != nil {
		t.Fatal(err)
	}
	// ext fills what the answer lacks, and never overrides it.
	if id.Subject != "alice" || id.Email != "alice@example.com" || id.Locale != "de-DE" || !auth.HasScope(id, auth.ScopeUpdate) {
		t.Fatalf("identity %+v", id)
	}
	if got := e.lastAut.Load(); got != "userphone+client:s3cret%3Awith%2Fcolon" {
		t.Fatalf("Basic credentials %q, want both form-encoded (RFC 6749 2.3.1)", got)
	}
}

func TestIntrospectionRefusesWhatAJWTWouldBeRefusedFor(t *testing.T) {
	for name, c := range map[string]struct {
		answer map[string]any
		code   userphone.ErrorCode
	}{
		"inactive":       {map[string]any{"active": false}, userphone.CodeUnauthorized},
		"refresh token":  {active(map[string]any{"token_use": "refresh_token"}), userphone.CodeUnauthorized},
		"wrong audience": {active(map[string]any{"aud": "another-api"}), userphone.CodeUnauthorized},
		"wrong issuer":   {active(map[string]any{"iss": "https://evil.example.com"}), userphone.CodeUnauthorized},
		"expired":        {active(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), userphone.CodeUnauthorized},
		"no subject":     {active(map[string]any{"sub": ""}), userphone.CodeUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEndpoint(t)
			e.answer.Store(c.answer)
			v, _ := introspector(t, e)
			if _, err := v.Verify(context.Background(), "ory_at_x"); userphone.ErrorCodeOf(err) != c.code {
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
}

// An endpoint that fails is 503 with Retry-After, and is asked again next
// time; a refused token is not asked about again for a few seconds.
func TestAnEndpointThatFailsIs503AndIsNotCached(t *testing.T) {
	e := newEndpoint(t)
	v, logs := introspector(t, e, "userphone", "wrong")
	e.status.Store(http.StatusUnauthorized)
	e.answer.Store(map[string]any{"error": "invalid_client"})
	for range 2 {
		_, err := v.Verify(context.Background(), "ory_at_good")
		if e := userphone.AsError(err); e == nil || e.Code != userphone.CodeServiceUnavailable || e.RetryAfter <= 0 {
			t.Fatalf("got %v, want 503 with a Retry-After", err)
		}
	}
	if e.asked.Load() != 2 {
		t.Fatalf("asked %d times, want 2: a failure must not be cached", e.asked.Load())
	}
	if !strings.Contains(logs.String(), "USERPHONE_OIDC_CLIENT_SECRET") || strings.Contains(logs.String(), "ory_at_good") {
		t.Fatalf("the log must name the settings to check and never the token:\n%s", logs.String())
	}
	e.status.Store(http.StatusOK)
	e.answer.Store(map[string]any{"active": false})
	for range 3 {
		v.Verify(context.Background(), "ory_at_dead")
	}
	if e.asked.Load() != 3 {
		t.Fatalf("asked %d times in all, want one more for the three tries of a dead token", e.asked.Load())
	}
}

// A JWT goes to the keys, anything else to introspection.
func TestTokensAreRoutedByTheirShape(t *testing.T) {
	jwts, opaque := &recorded{}, &recorded{}
	v := auth.ByTokenShape(jwts, opaque)
	v.Verify(context.Background(), "a.b.c")
	v.Verify(context.Background(), "ory_at_abc.def")
	if jwts.n != 1 || opaque.n != 1 {
		t.Fatalf("JWT verifier asked %d times, introspection %d; want 1 each", jwts.n, opaque.n)
	}
}

type recorded struct{ n int }

func (r *recorded) Verify(context.Context, string) (userphone.Identity, error) {
	r.n++
	return userphone.Identity{}, nil
}
