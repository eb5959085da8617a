package jobs

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/pace/userphone"
)

// riverClient is River's client for the store's dialect. Its driver's
// transaction differs (pgx.Tx on PostgreSQL, *sql.Tx on SQLite); this
// hides it behind what the queue needs.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	// Insert inserts a job outside any transaction of the store's.
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	// insertIn inserts jobs in the store's transaction tx.
	insertIn(ctx context.Context, tx userphone.Tx, args ...river.JobArgs) error
	migrate(ctx context.Context) error
}

// typedClient is a riverClient on a driver whose transactions are TTx.
type typedClient[TTx any] struct {
	*river.Client[TTx]
	driver riverdriver.Driver[TTx]
	// txOf finds the driver's transaction under the store's.
	txOf func(userphone.Tx) (TTx, error)
	log  *slog.Logger
}

func newRiverClient[TTx any](driver riverdriver.Driver[TTx], rc *river.Config, txOf func(userphone.Tx) (TTx, error), log *slog.Logger) (riverClient, error) {
	c, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, err
	}
	return &typedClient[TTx]{Client: c, driver: driver, txOf: txOf, log: log}, nil
}

func (c *typedClient[TTx]) insertIn(ctx context.Context, tx userphone.Tx, args ...river.JobArgs) error {
	t, err := c.txOf(tx)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	params := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		params[i] = river.InsertManyParams{Args: a}
	}
	_, err = c.InsertManyTx(ctx, t, params)
	return err
}

func (c *typedClient[TTx]) migrate(ctx context.Context) error {
	m, err := rivermigrate.New(c.driver, &rivermigrate.Config{Logger: c.log})
	if err != nil {
		return err
	}
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}
