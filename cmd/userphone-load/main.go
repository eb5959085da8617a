// Command userphone-load drives a running userphone server with the
// service's own request sequences and reports throughput and latency per
// operation, beside a bare net/http baseline measured the same way. Its seed
// subcommand fills a database with users and phone changes in bulk, so that
// the server's queries meet big tables.
//
// # A load run, step by step
//
// The server must send its SMS to the load generator, which plays the SMS
// gateway of USERPHONE_SMS_PROVIDER=webhook, and must have its limits off:
// one client sends far more than any limit lets through. The settings
// subcommand prints them as shell exports, with a new webhook secret:
//
//	go build -o /tmp/userphone ./cmd/userphone
//	go build -o /tmp/userphone-load ./cmd/userphone-load
//	/tmp/userphone-load settings > /tmp/load.env   # or: -webhook-listen ADDR, -webhook-secret S
//	cat /tmp/load.env
//	export USERPHONE_SMS_PROVIDER=webhook
//	export USERPHONE_SMS_WEBHOOK_URL=http://127.0.0.1:9099/sms
//	export USERPHONE_SMS_WEBHOOK_SECRET=<64 hex digits>
//	export USERPHONE_LIMITS=off
//	export USERPHONE_DEV=1
//	export USERPHONE_LOAD_WEBHOOK_SECRET=<the same secret, for the load generator>
//
// Start the server with them, in dev mode (no OIDC issuer, so the load
// generator mints tokens with the server's dev key) and without
// USERPHONE_SMTP_URL (so the confirmation e-mails land in the data
// directory's outbox, where the flow scenario reads its links). On
// PostgreSQL, with a database of its own:
//
//	createdb -h 127.0.0.1 -U postgres userphone_load
//	export USERPHONE_DATABASE_URL='postgres://postgres@127.0.0.1:5432/userphone_load?sslmode=disable'
//	export USERPHONE_DATA_DIR=/tmp/load-data
//	/tmp/userphone-load seed --users 200000 --changes 1000000   # optional: big tables first
//	. /tmp/load.env
//	/tmp/userphone serve 2>/tmp/userphone.log &
//
// Then, in a shell with the same USERPHONE_DATA_DIR and
// USERPHONE_LOAD_WEBHOOK_SECRET (or pass -data-dir and -webhook-secret):
//
//	/tmp/userphone-load -scenario check   -c 64 -d 30s
//	/tmp/userphone-load -scenario request -c 64 -d 30s -drain 15m   # or run it last
//	/tmp/userphone-load -scenario verify  -c 64 -d 30s -json verify.json
//	/tmp/userphone-load -scenario flow    -c 64 -d 30s
//	/tmp/userphone-load -scenario flow    -c 64 -d 30s -rate 50   # open loop: 50 changes a second
//
// Afterwards: stop the server, and dropdb -h 127.0.0.1 -U postgres userphone_load.
//
// # Scenarios
//
// An iteration is one pass of a scenario; -n counts iterations, -rate starts
// them on a schedule.
//
//   - check: GET /user/phone, round robin over -users users. They are
//     prepared first through the API (PUT, the SMS code, verify), so every
//     answer must be 200; with -check-status 404 they are users the server
//     has never seen, and every answer must be 404.
//   - request: PUT /user/phone with a first number for a new user: 201. The
//     server queues an SMS for each; nobody waits for them. The server
//     sends SMS far slower than it accepts these requests
//     (USERPHONE_WORKERS), so the run ends by
//     waiting for the backlog (-drain), which a following run would
//     otherwise meet.
//   - verify: PUT a first number (201), wait for the code at the webhook
//     receiver, PUT /user/phone/verify (200). The PUT and the verify are
//     reported apart.
//   - flow: the whole change with the e-mail step: a first number and its
//     verify, a second number (201), the confirmation e-mail's link from the
//     outbox, GET the page (200) and POST its form (200), the second code,
//     verify (200).
//   - baseline: only the bare net/http server, the ceiling of this client
//     on this machine.
//
// Every iteration takes a new user (dev tokens with a distinct sub,
// load-<run>-<n>, and e-mail <sub>@example.com, all scopes) and new numbers
// (+49 176 and 8 digits, counting up from a random million; each is checked
// with libphonenumber as the server checks it). Tokens can come from a file
// instead (-tokens, one a line, for a server with an OIDC issuer): each is
// used once, and the run ends when they run out; the check scenario asks
// about the first -users of them and expects each to keep the answer it gave
// before the run.
//
// # Messages
//
// The SMS webhook receiver (-webhook-listen, default 127.0.0.1:9099, path
// /sms) does what the server's README asks of a real one: it checks the
// X-Userphone-Signature HMAC over the raw body in constant time, refuses
// timestamps more than 5 minutes off (401, which the server retries), takes
// each Idempotency-Key once, and hands the code to the worker waiting for
// that number. E-mail links come from <-data-dir>/outbox.jsonl, followed from
// its end at the start like tail -f: only appended bytes are read, and a
// truncated or replaced file is read again from its start. The waits are
// reported as operations of their own (sms-wait, email-wait: from the
// request that makes the server send the message to its arrival), and a
// message that does not come within -message-timeout fails its iteration.
// Both go through the server's delivery queue (USERPHONE_WORKERS): when the
// waits grow with -c while the requests stay fast, the queue, not the API,
// bounds verify and flow.
//
// # What is measured
//
// -c workers share one http.Client (keep-alive, MaxIdleConnsPerHost = -c,
// no proxy or compression); each has one request in flight. The warm-up
// (-warmup) runs the same way and is dropped; the window is -d long (or -n
// iterations), and requests still in flight when it closes are not counted.
// Each operation's line gives requests, req/s, latency p50, p95, p99 and
// max (a log-linear histogram, within 1.6 %), errors, the ratio of its req/s
// to the baseline's, and the answers by status. An answer other than the
// operation's expected one (say, a 201 where 200 is due) is an error, and so
// is a failed connection (neterr) or a message that did not come (timeout).
// In the open loop (-rate) a request's latency counts from the iteration's
// scheduled start, so a server that falls behind shows it.
//
// The baseline runs after the scenario (-baseline before, or off): a bare
// net/http server in this process answering a small JSON document on a
// loopback port, driven by the same client with the same -c and duration in
// a closed loop. Its req/s is what this machine's client and network stack
// manage without userphone; the ratio says what share of it an operation
// gets. When the server runs on the same machine, they share its CPUs.
//
// The table goes to stdout, the progress line (once a second: elapsed,
// req/s, requests, errors) and the settings the server needs to stderr;
// -json FILE writes the same results as JSON. The exit status is 0 without
// errors, 1 with any, 2 for a bad command line, 130 when interrupted (the
// table shows what was measured until then).
//
// # Seeding
//
//	userphone-load seed --users 200000 --changes 1000000 [--database-url postgres://…] [--data-dir DIR]
//
// migrates the database (store.Open and Migrate, as the server does) and
// adds the users, each with a verified number (+49 177 or +49 179), and the
// changes round robin over them, each with its audit trail in phone_events
// (--events=false leaves it out). A user's first change verified their
// number; later ones went through the e-mail step and ended verified,
// cancelled (superseded, too many attempts, already verified, delivery
// failed) or expired, and a user's last one may still be open, awaiting the
// e-mail confirmation or the code. Times spread over the last --span (29
// days: below the 30-day retention, which the server's purge enforces at
// start); open changes are from the last 23 hours, so they have not expired.
// PostgreSQL gets COPY, SQLite multi-row INSERTs, a transaction per --batch;
// progress and rows/s are printed as it goes, and PostgreSQL's tables are
// analyzed at the end. A later seed with the same --prefix continues the
// numbering. The same --seed gives the same rows, their times relative to
// the run's.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `userphone-load drives a running userphone server and reports throughput and latency.

Usage:
  userphone-load [flags]            run a scenario (see the flags below)
  userphone-load settings           print the server's settings for a load run, as shell exports
  userphone-load seed [flags]       add users and phone changes to a database in bulk

`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process, for tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "seed":
			return seedCmd(ctx, args[1:], getenv, stdout, stderr)
		case "settings":
			return settingsCmd(args[1:], getenv, stdout, stderr)
		case "help", "-h", "--help", "-help":
			_, _ = loadFlags([]string{"-h"}, getenv, stdout)
			return 0
		}
	}
	return loadCmd(ctx, args, getenv, stdout, stderr)
}
