package main

import (
	"cmp"
	"context"
	"log/slog"

	"github.com/pace/userphone/auth"
)

// newVerifier returns the token verifier: the OIDC issuer's when one is
// configured (its keys load in the background, and its Ready reports when
// they have), else the dev key's. Either is cached: a client sends one
// token with each request until it expires, and checking its signature
// every time would be half the cost of a request.
func newVerifier(ctx context.Context, cfg config, log *slog.Logger) (auth.Verifier, error) {
	if cfg.Auth.Issuer == "" {
		keys, err := auth.LoadOrCreateDevKeys(cfg.App.Store.DataDir)
		if err != nil {
			return nil, err
		}
		log.Warn("running in dev mode: tokens are signed with the key in the data directory; " +
			"mint one with `userphone token`. Configure an OIDC issuer for production.")
		return auth.Cached(keys.Verifier(cfg.Auth, log, nil), 0, 0, nil), nil
	}
	oidc, err := auth.NewOIDC(auth.OIDCConfig{Policy: cfg.Auth, Log: log})
	if err != nil {
		return nil, &settingError{"USERPHONE_OIDC_ISSUER", err.Error()}
	}
	// The keys load and refresh until the process ends; an issuer that is
	// down at start-up leaves the service up but not ready.
	go oidc.Run(context.WithoutCancel(ctx))
	ic := cfg.Introspection
	introspector, err := auth.NewIntrospector(auth.IntrospectionConfig{Policy: cfg.Auth, URL: ic.URL,
		Discovered: oidc.IntrospectionEndpoint, ClientID: ic.ClientID, ClientSecret: ic.ClientSecret, Log: log})
	if err != nil {
		return nil, &settingError{"USERPHONE_OIDC_INTROSPECTION_URL", err.Error()}
	}
	log.Info("tokens are verified against the OIDC issuer: JWTs with its keys, opaque tokens by introspection",
		"issuer", cfg.Auth.Issuer, "audience", cfg.Auth.Audience, "required_linked_identity", cfg.Auth.RequiredLinkedIdentity,
		"introspection_url", cmp.Or(ic.URL, "(the discovery document's)"), "introspection_cache", ic.Cache)
	return auth.ForIssuer(oidc, introspector, ic.Cache), nil
}
