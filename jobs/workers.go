package jobs

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/pace/userphone"
)

type sendArgs struct {
	userphone.Outgoing
}

func (sendArgs) Kind() string { return "send_message" }

type sendWorker struct {
	river.WorkerDefaults[sendArgs]
	q *Queue
}

// Work sends one message. The text is built now, so a retry carries the
// same code or link as the first attempt, and a message made stale by a
// newer one is dropped rather than delivering an outdated code.
func (w *sendWorker) Work(ctx context.Context, job *river.Job[sendArgs]) error {
	q, m := w.q, job.Args.Outgoing
	msg, current, err := q.flow.Compose(ctx, m)
	if err != nil {
		return err
	}
	log := q.log.With("job", job.ID, "kind", m.Kind, "attempt", job.Attempt)
	if !current {
		log.Info("message no longer current; not sent")
		return nil
	}
	err = q.sender.Send(ctx, msg)
	switch {
	case err == nil:
		log.Info("message sent", "channel", msg.Channel)
		return nil
	case errors.Is(err, userphone.ErrPermanent):
		log.Warn("message refused for good; the change is cancelled", "err", err)
		if ferr := q.flow.DeliveryFailed(ctx, m, "refused"); ferr != nil {
			return ferr // the cancel is retried with the job
		}
		return river.JobCancel(err)
	case job.Attempt >= job.MaxAttempts:
		log.Error("message not delivered after the last attempt; the change is cancelled", "err", err)
		if ferr := q.flow.DeliveryFailed(ctx, m, "gave-up"); ferr != nil {
			return fmt.Errorf("%w; and marking the change failed: %v", err, ferr)
		}
		return err
	}
	log.Warn("message not delivered; will retry", "err", err)
	return err
}

type sweepArgs struct{}

func (sweepArgs) Kind() string { return "expire_changes" }

type sweepWorker struct {
	river.WorkerDefaults[sweepArgs]
	q *Queue
}

func (w *sweepWorker) Work(ctx context.Context, _ *river.Job[sweepArgs]) error {
	n, err := w.q.flow.SweepExpired(ctx)
	if n > 0 {
		w.q.log.Info("expired phone changes closed", "count", n)
	}
	return err
}

type purgeArgs struct{}

func (purgeArgs) Kind() string { return "purge_changes" }

type purgeWorker struct {
	river.WorkerDefaults[purgeArgs]
	q *Queue
}

func (w *purgeWorker) Work(ctx context.Context, _ *river.Job[purgeArgs]) error {
	n, err := w.q.flow.Purge(ctx, w.q.cfg.Retention)
	if n > 0 {
		w.q.log.Info("finished phone changes past retention deleted", "count", n)
	}
	return err
}
