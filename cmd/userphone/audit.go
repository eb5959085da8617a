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
)

// audit prints one user's trail: what happened to their phone number, when,
// by which request and from which (hashed) address.
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
	st, _, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	var events []userphone.Event
	err = st.Read(ctx, func(tx userphone.Tx) error {
		events, err = tx.Events(ctx, *sub)
		return err
	})
	if err != nil {
		return err
	}
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
