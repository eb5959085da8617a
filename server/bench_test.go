package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/app"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/auth/authtest"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/metrics"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/store"
	"github.com/pace/userphone/store/storetest"
)

// BenchmarkCheckUserPhone measures a whole GET /user/phone in process:
// routing, token check, validation, the database read and the JSON
// answer, for a user with a verified number. Compare with auth's
// BenchmarkVerify* to see what share the token check takes.
func BenchmarkCheckUserPhone(b *testing.B) {
	for _, d := range storetest.Dialects {
		for _, signer := range []string{"dev-EdDSA", "oidc-RS256", "oidc-RS256-cached"} {
			b.Run(string(d)+"/"+signer, func(b *testing.B) {
				handler, token := benchService(b, d, signer, nil)
				req := httptest.NewRequest("GET", openapi.BasePath+"/user/phone", nil)
				req.Header.Set("Authorization", "Bearer "+token)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					rec := httptest.NewRecorder()
					handler.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}

// BenchmarkObserver measures what the metrics add to a request: a probe
// (no database, no token: the middleware's share is largest there) and a
// whole GET /user/phone, each without and with the Prometheus observer.
func BenchmarkObserver(b *testing.B) {
	for _, path := range []string{"/health/live", openapi.BasePath + "/user/phone"} {
		for _, observed := range []bool{false, true} {
			name := path + "/off"
			var obs *metrics.Metrics
			if observed {
				name, obs = path+"/on", metrics.New()
			}
			b.Run(name, func(b *testing.B) {
				handler, token := benchService(b, store.SQLite, "dev-EdDSA", obs)
				req := httptest.NewRequest("GET", path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					rec := httptest.NewRecorder()
					handler.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d: %s", rec.Code, rec.Body)
					}
				}
			})
		}
	}
}

func benchService(b *testing.B, d store.Dialect, signer string, m *metrics.Metrics) (http.Handler, string) {
	cfg := app.DefaultConfig()
	cfg.Store, cfg.PublicURL = storetest.Config(b, d), "http://userphone.test"
	cfg.Flow.Secret = bytes.Repeat([]byte{7}, 32)
	// The figures are the request's own: no limits, no workers (a GET
	// sends nothing).
	cfg.Flow.Limits, cfg.HTTP.IPRate, cfg.Jobs.Workers = flow.Limits{}, 0, 0
	verifier, token := benchVerifier(b, signer, cfg.Store.DataDir)
	a, err := app.New(cfg, app.Parts{Verifier: verifier, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	if err := a.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	st := a.Store
	// A verified number, through the flow itself.
	ctx := context.Background()
	id := userphone.Identity{Subject: authtest.Subject}
	if err := st.InTx(ctx, func(tx userphone.Tx) error {
		if _, err := tx.UpsertUser(ctx, id, time.Now()); err != nil {
			return err
		}
		_, err := tx.TakeVerifiedNumber(ctx, id.Subject, numberA, time.Now())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return a.Handler, token
}

// benchVerifier returns a verifier of the signer's kind and a token it
// accepts.
func benchVerifier(b *testing.B, signer, dir string) (auth.Verifier, string) {
	switch signer {
	case "dev-EdDSA":
		keys, err := auth.LoadOrCreateDevKeys(dir)
		if err != nil {
			b.Fatal(err)
		}
		token, _ := keys.Mint(userphone.Identity{Subject: authtest.Subject, Scopes: auth.AllScopes}, time.Hour, time.Now())
		return keys.Verifier(auth.Policy{}, nil, nil), token
	}
	iss := authtest.NewIssuer(b)
	var verifier auth.Verifier = iss.Verifier(b)
	if signer == "oidc-RS256-cached" {
		verifier = auth.Cached(verifier, 0, 0, nil)
	}
	return verifier, iss.Token(b, nil)
}
