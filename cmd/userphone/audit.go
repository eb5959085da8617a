package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/pace/userphone"
	"github.com/pace/userphone/store"
)

// audit prints one user's trail: what happened to their phone number, when,
// by which request and from which (hashed) address. It only reads: it
// refuses a database that is not migrated rather than migrate it.
func audit(ctx context.Context, cfg config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sub := fs.String("sub", "", "the user id (the token's sub); required")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errBadArgs, err)
	}
	if *sub == "" {
		return fmt.Errorf("%w: --sub is required, e.g. userphone audit --sub alice", errBadArgs)
	}
	storeCfg := cfg.App.Store
	storeCfg.Logger = log
	st, err := store.Open(storeCfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := requireMigrated(ctx, st, cfg); err != nil {
		return err
	}
	var events []userphone.Event
	err = st.Read(ctx, func(tx userphone.Tx) error {
		events, err = tx.Events(ctx, *sub)
		return err
	})
	if err != nil {
		return err
	}
	return printTrail(stdout, events)
}

// requireMigrated refuses a database that is unreachable, or whose schema
// is older than this binary's, with what to do about it.
func requireMigrated(ctx context.Context, st *store.Store, cfg config) error {
	if err := pingDatabase(ctx, st, cfg); err != nil {
		return err
	}
	applied, latest, err := st.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the schema version (%v); is this userphone's database? run `userphone migrate` to set it up", err)
	}
	if applied < latest {
		return fmt.Errorf("the database schema is at migration %d, this binary needs %d; run `userphone migrate` first", applied, latest)
	}
	return nil
}

func printTrail(stdout io.Writer, events []userphone.Event) error {
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tEVENT\tCHANGE\tNUMBER\tREQUEST\tCLIENT\tDETAIL")
	for _, e := range events {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Kind, dash(e.ChangeID), dash(e.PhoneNumber),
			dash(e.RequestID), dash(e.ClientIPHash), dash(e.Detail))
	}
	return w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
