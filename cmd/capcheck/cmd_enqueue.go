package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
)

func enqueueCommand() *cli.Command {
	return &cli.Command{
		Name:  "enqueue",
		Usage: "read a list, normalize and dedupe it, write rejects, enqueue chunk tasks; prints the job ID",
		Description: "Reads --input (CSV with a header, or one number per line; - is stdin; gzip is read\n" +
			"decompressed), keeps the first row of each valid number, writes the rest to\n" +
			"{out}/{job}/rejects.csv and enqueues one task per --chunk-size numbers for the\n" +
			"workers. Prints the job ID alone on stdout. Without --job, the ID is derived from\n" +
			"the file and the options, so re-running the same nightly command resumes the same\n" +
			"job: it completes a half-enqueued job and changes nothing for a complete one.",
		Flags:  slices.Concat(configs.SharedFlags(), configs.EnqueueFlags(), configs.ForgetFlags()),
		Action: sessionAction(configs.Needs{Input: true}, enqueueAction),
	}
}

func enqueueAction(c *cli.Context, s *session) error {
	cfg := s.cfg
	mem, err := fleetMemory(c.Context, s.rdb, s.log)
	if err != nil {
		return err
	}
	res, err := enqueue.Run(c.Context, enqueue.Config{
		Input:         cfg.Enqueue.Input,
		Stdin:         c.App.Reader,
		Column:        cfg.Enqueue.Column,
		DefaultRegion: cfg.Enqueue.DefaultRegion,
		JobID:         cfg.Enqueue.Job,
		ChunkSize:     cfg.Enqueue.ChunkSize,
		CallbackWait:  cfg.Enqueue.CallbackWait,
		Memory:        mem,
		RecheckAfter:  cfg.Enqueue.RecheckAfter,
		ForgetAfter:   cfg.Memory.ForgetAfter,
		OutDir:        cfg.Out,
		Store:         s.store,
		Client:        asynq.NewClientFromRedisClient(s.rdb),
		Logger:        s.log,
		Progress:      c.App.ErrWriter,
	})
	if err != nil {
		return enqueueError(err, res.JobID)
	}
	fmt.Fprintln(c.App.Writer, res.JobID)
	return nil
}

// enqueueError keeps enqueue's configuration errors usage errors (exit 2)
// and adds the flag or command that fixes them.
func enqueueError(err error, id string) error {
	switch {
	case errors.Is(err, enqueue.ErrRetrying):
		return fmt.Errorf("%w; run 'capcheck retry %s' again", err, id)
	case !errors.Is(err, enqueue.ErrConfig):
		return err
	case errors.Is(err, listreader.ErrColumn):
		return usageErrorf("%v; --column NAME or N says which column holds the numbers", err)
	case errors.Is(err, jobstore.ErrSpecMismatch):
		return usageErrorf("%v; pass another --job", err)
	}
	return usageErrorf("%v", err)
}

// fleetMemory is the capability memory enqueue reads on a shared Redis,
// first moved out of an older capcheck's layout if that is still there
// (once per Redis): otherwise the first night after an upgrade would find
// it empty and send every number again.
func fleetMemory(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger) (enqueue.Memory, error) {
	caps := capstore.New(rdb, capstore.Options{})
	start := time.Now()
	moved, err := caps.MoveOldLayout(ctx)
	if err != nil {
		return nil, err
	}
	if moved > 0 {
		log.Info("capability memory moved from an older capcheck's layout", "old_layout_keys_moved", moved,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return caps.Snapshot(), nil
}
