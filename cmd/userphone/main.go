// Command userphone serves the phone-number part of the PACE Cloud User
// API, mints dev tokens, applies migrations and prints a user's audit
// trail. It owns the configuration (settings.go reads every USERPHONE_*
// variable over the packages' defaults) and the outside world (providers,
// token verifier, metrics listener); app.New assembles the service from
// them (serve.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `userphone serves the phone-number part of the PACE Cloud User API (2021-2).

Usage:
  userphone [serve]      serve the API (the default)
  userphone token --sub ID --email ADDR [--locale de] [--scope "..."] [--ttl 1h]
                         print a dev bearer token
  userphone migrate      apply the database migrations and exit
  userphone audit --sub ID
                         print one user's audit trail
  userphone config       print the effective settings and where each came from
  userphone rotate-secret
                         make the database take USERPHONE_SECRET as its secret
  userphone version      print the version, the commit and the spec's version
  userphone contract-test -url URL (-token TOKEN | -token-command CMD | -token-url URL -client-id ID -client-secret S)
                         [-test-numbers PAIRS|FILE] [-mailpit-url URL] [-public-url URL] [-allow-skip]
                         [-junit FILE] [-timeout 2m] [-v]
                         check a deployed instance against the spec through the whole flow

Configuration comes from USERPHONE_* environment variables; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own arguments,
// environment and output.
func run(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		// Needs no configuration: it must work on any machine.
		if err := printVersion(stdout); err != nil {
			fmt.Fprintf(stderr, "userphone: %v\n", err)
			return 1
		}
		return 0
	case "contract-test":
		// A client of a deployed instance: it needs none of the server's
		// settings.
		return contractTest(ctx, args, environ, stdout, stderr)
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintf(stderr, "userphone: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	switch cmd {
	case "serve":
		err = serve(ctx, cfg, log)
	case "migrate":
		err = migrate(ctx, cfg, log)
	case "token":
		err = token(cfg, args, stdout, stderr)
	case "audit":
		err = audit(ctx, cfg, args, log, stdout, stderr)
	case "config":
		err = printConfig(cfg, stdout)
	case "rotate-secret":
		err = rotateSecret(ctx, cfg, log)
	default:
		fmt.Fprintf(stderr, "userphone: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var se *settingError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &se), errors.Is(err, errBadArgs):
		fmt.Fprintf(stderr, "userphone: %v\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "userphone: %v\n", err)
	return 1
}

// newLogger writes to w at the configured level and format.
func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
