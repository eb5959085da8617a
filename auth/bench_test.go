package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/auth/authtest"
)

// BenchmarkVerifyOIDC measures one Verify of a valid token with cached
// keys: parse, key lookup, signature, claims.
func BenchmarkVerifyOIDC(b *testing.B) {
	for _, alg := range []jwa.SignatureAlgorithm{jwa.RS256(), jwa.ES256()} {
		b.Run(alg.String(), func(b *testing.B) {
			iss := authtest.NewIssuer(b, authtest.WithAlg(alg))
			v := iss.Verifier(b)
			raw := iss.Token(b, map[string]any{"email": "alice@example.com", "locale": "de-DE"})
			if _, err := v.Verify(b.Context(), raw); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(b.Context(), raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyDev measures one Verify of a valid dev (EdDSA) token.
func BenchmarkVerifyDev(b *testing.B) {
	keys, err := auth.LoadOrCreateDevKeys(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	raw, err := keys.Mint(userphone.Identity{Subject: "alice", Email: "alice@example.com", Locale: "de-DE", Scopes: auth.AllScopes}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	v := keys.Verifier(auth.Policy{}, nil, nil)
	if _, err := v.Verify(b.Context(), raw); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(b.Context(), raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	iss := authtest.NewIssuer(b)
	v := auth.Cached(iss.Verifier(b), 0, 0, nil)
	token := iss.Token(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}
