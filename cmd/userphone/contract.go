package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pace/userphone/auth"
	"github.com/pace/userphone/internal/contracttest"
	"github.com/pace/userphone/openapi"
	"github.com/pace/userphone/phone"
)

// The contract test's own variables, which keep secrets out of shell
// history; the server ignores USERPHONE_CONTRACT_* (environ.go).
const (
	contractTokenEnv        = "USERPHONE_CONTRACT_TOKEN"
	contractClientSecretEnv = "USERPHONE_CONTRACT_CLIENT_SECRET"
)

// contractFlags are the flags of `userphone contract-test`.
type contractFlags struct {
	url, publicURL, specURL, email, testNumbers, mailpitURL, junit string
	token, tokenCommand                                            string
	tokenURL, clientID, clientSecret, scope, audience              string
	timeout                                                        time.Duration
	verbose, allowSkip                                             bool
}

// contractTest runs `userphone contract-test`: it checks a deployed
// instance against the spec and needs none of the server's settings.
// Exit status: 0 when every check passed (or, with -allow-skip, was
// skipped), 1 when one failed or was skipped, 2 on bad flags.
func contractTest(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	f, err := parseContractFlags(args, environ, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var cfg contracttest.Config
	if err == nil {
		cfg, err = f.config()
	}
	if err != nil {
		fmt.Fprintf(stderr, "userphone contract-test: %v\n", err)
		return 2
	}
	if f.verbose {
		cfg.Verbose = stdout
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	report, err := contracttest.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "userphone contract-test: %v\n", err)
		return 2
	}
	report.WriteSummary(stdout)
	if f.junit != "" {
		if err := writeJUnit(f.junit, report); err != nil {
			fmt.Fprintf(stderr, "userphone contract-test: cannot write the JUnit report: %v\n", err)
			return 1
		}
	}
	if !report.OK() {
		return 1
	}
	return 0
}

func parseContractFlags(args, environ []string, stdout io.Writer) (contractFlags, error) {
	var f contractFlags
	fs := flag.NewFlagSet("contract-test", flag.ContinueOnError)
	// A bad flag is reported once, by the caller, in one sentence.
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.url, "url", "", "the API base URL, e.g. https://staging.example.com"+openapi.BasePath+"; required")
	fs.StringVar(&f.publicURL, "public-url", "", "the instance's USERPHONE_PUBLIC_URL, where the e-mail's link must lead, when it is not the root of -url (e.g. -url reaches the instance past its proxy)")
	fs.StringVar(&f.specURL, "spec-url", "", "where the instance serves its spec (default: the root of -url + "+openapi.SpecPath+")")
	fs.StringVar(&f.token, "token", "", "a bearer token (or "+contractTokenEnv+", which keeps it out of shell history)")
	fs.StringVar(&f.tokenCommand, "token-command", "", "a shell command whose standard output is a bearer token, run once, e.g. one that mints a fresh user")
	fs.StringVar(&f.tokenURL, "token-url", "", "the issuer's token endpoint, for the client_credentials grant")
	fs.StringVar(&f.clientID, "client-id", "", "the client's id, with -token-url")
	fs.StringVar(&f.clientSecret, "client-secret", "", "the client's secret, with -token-url (or "+contractClientSecretEnv+")")
	fs.StringVar(&f.scope, "scope", strings.Join(auth.AllScopes, " "), "the scopes to ask for, with -token-url")
	fs.StringVar(&f.audience, "audience", "", "the audience to ask for, with -token-url (Ory Hydra and Auth0 need it for an aud)")
	fs.StringVar(&f.email, "email", "", "where the confirmation e-mail goes (default: the token's email claim)")
	fs.StringVar(&f.testNumbers, "test-numbers", "", "the instance's test numbers and codes, as USERPHONE_TEST_NUMBERS: +4915112345678=123456,... or a file")
	fs.StringVar(&f.mailpitURL, "mailpit-url", "", "the base of mailpit's HTTP API, e.g. http://127.0.0.1:8025, to read the confirmation e-mail")
	fs.StringVar(&f.junit, "junit", "", "also write the report as JUnit XML to this file")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "stop the whole run after this long")
	fs.BoolVar(&f.verbose, "v", false, "print every request and its answer (never a token or a code)")
	fs.BoolVar(&f.allowSkip, "allow-skip", false, "exit 0 even when checks were skipped for a missing input (-test-numbers, -mailpit-url, ...)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "userphone contract-test checks a deployed instance against the spec through the whole flow.\n\nFlags:")
			fs.PrintDefaults()
			return f, err
		}
		return f, fmt.Errorf("%w; -h lists the flags", err)
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected argument %q; every input is a flag (userphone contract-test -h lists them)", fs.Arg(0))
	}
	if f.token == "" && f.tokenCommand == "" && f.tokenURL == "" {
		f.token = lookupEnv(environ, contractTokenEnv)
	}
	if f.clientSecret == "" {
		f.clientSecret = lookupEnv(environ, contractClientSecretEnv)
	}
	return f, nil
}

// config checks the flags and turns them into the run's configuration.
func (f contractFlags) config() (contracttest.Config, error) {
	if f.url == "" {
		return contracttest.Config{}, fmt.Errorf("-url is required: the API base, e.g. -url https://staging.example.com%s", openapi.BasePath)
	}
	if _, err := contracttest.APIBase(f.url); err != nil {
		return contracttest.Config{}, err
	}
	if f.timeout <= 0 {
		return contracttest.Config{}, errors.New("-timeout must be positive, e.g. 2m")
	}
	source, err := f.tokenSource()
	if err != nil {
		return contracttest.Config{}, err
	}
	numbers, err := phone.LoadTestNumbers(f.testNumbers)
	if err != nil {
		return contracttest.Config{}, fmt.Errorf("-test-numbers: %w", err)
	}
	return contracttest.Config{BaseURL: f.url, PublicURL: f.publicURL, SpecURL: f.specURL, Token: source, Email: f.email,
		TestNumbers: numbers, MailpitURL: f.mailpitURL, AllowSkip: f.allowSkip}, nil
}

// tokenSource is the one token source the flags name.
func (f contractFlags) tokenSource() (contracttest.TokenSource, error) {
	given := 0
	for _, set := range []bool{f.token != "", f.tokenCommand != "", f.tokenURL != ""} {
		if set {
			given++
		}
	}
	switch {
	case given != 1:
		return nil, fmt.Errorf("give exactly one token source: -token (or %s), -token-command, or -token-url with -client-id and -client-secret", contractTokenEnv)
	case f.tokenURL == "" && f.clientID != "":
		return nil, errors.New("-client-id needs -token-url, the issuer's token endpoint")
	case f.tokenURL != "" && (f.clientID == "" || f.clientSecret == ""):
		return nil, fmt.Errorf("-token-url needs -client-id and -client-secret (or %s)", contractClientSecretEnv)
	case f.token != "":
		return contracttest.FixedToken(f.token), nil
	case f.tokenCommand != "":
		return contracttest.CommandToken(f.tokenCommand), nil
	}
	source := contracttest.ClientCredentials{TokenURL: f.tokenURL, ClientID: f.clientID, ClientSecret: f.clientSecret,
		Scope: f.scope, Audience: f.audience}
	return source, source.CheckURL()
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func writeJUnit(path string, report *contracttest.Report) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.WriteJUnit(file); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}
