package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/auth/authtest"
	"github.com/pace/userphone/flow"
	"github.com/pace/userphone/jobs"
	"github.com/pace/userphone/metrics"
	"github.com/pace/userphone/server"
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
				req := httptest.NewRequest("GET", server.BasePath+"/user/phone", nil)
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
	for _, path := range []string{"/health/live", server.BasePath + "/user/phone"} {
		for _, observed := range []bool{false, true} {
			name := path + "/off"
			var obs server.Observer
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

func benchService(b *testing.B, d store.Dialect, signer string, obs server.Observer) (http.Handler, string) {
	st := storetest.New(b, d)
	dir := b.TempDir()
	queue, err := jobs.New(st, jobs.Config{}) // insert-only: a GET sends nothing
	if err != nil {
		b.Fatal(err)
	}
	if err := queue.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	svc, err := flow.New(st, queue, flow.Config{
		ProcessTTL: 24 * time.Hour, ResendCooldown: time.Minute, MaxCodeAttempts: 5,
		Secret: bytes.Repeat([]byte{7}, 32), ConfirmURL: "http://userphone.test/confirm",
	}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var verifier auth.Verifier
	var token string
	switch signer {
	case "dev-EdDSA":
		keys, err := auth.LoadOrCreateDevKeys(dir)
		if err != nil {
			b.Fatal(err)
		}
		verifier = keys.Verifier(auth.Policy{}, nil, nil)
		token, _ = keys.Mint(userphone.Identity{Subject: authtest.Subject, Scopes: auth.AllScopes}, time.Hour, time.Now())
	default:
		iss := authtest.NewIssuer(b)
		verifier = iss.Verifier(b)
		token = iss.Token(b, nil)
		if signer == "oidc-RS256-cached" {
			verifier = auth.Cached(verifier, 0, 0, nil)
		}
	}
	handler, err := server.New(server.Config{Flow: svc, Verifier: verifier, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
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
	return handler, token
}
