package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/auth"
)

var errBadArgs = errors.New("bad arguments")

// token prints a dev bearer token and nothing else on stdout, so that
// TOKEN=$(userphone token ...) works.
func token(cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the user id (the token's sub); required")
	email := fs.String("email", "", "the user's e-mail address, for the confirmation e-mail")
	locale := fs.String("locale", "", "the user's locale, e.g. de or en")
	linked := fs.String("linked-identity", "", "comma-separated linked identity providers, for USERPHONE_REQUIRED_LINKED_IDENTITY")
	scope := fs.String("scope", strings.Join(auth.AllScopes, " "), "space-separated scopes")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errBadArgs, err)
	}
	if *sub == "" {
		return fmt.Errorf("%w: --sub is required, e.g. userphone token --sub alice --email alice@example.com", errBadArgs)
	}
	if cfg.Auth.Issuer != "" {
		return fmt.Errorf("%w: userphone token works only in dev mode; with USERPHONE_OIDC_ISSUER set, get tokens from the issuer", errBadArgs)
	}
	if *ttl <= 0 {
		return fmt.Errorf("%w: --ttl must be positive, e.g. 1h", errBadArgs)
	}
	keys, err := auth.LoadOrCreateDevKeys(cfg.App.Store.DataDir)
	if err != nil {
		return err
	}
	raw, err := keys.Mint(userphone.Identity{
		Subject: *sub, Email: *email, Locale: *locale, Scopes: strings.Fields(*scope),
		LinkedIdentities: strings.FieldsFunc(*linked, func(r rune) bool { return r == ',' }),
	}, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, raw)
	return err
}
