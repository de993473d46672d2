package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/phonenorm"
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
		Action: enqueueStart,
	}
}

// enqueueStart readies what the first chunk needs while Redis connects,
// then enqueues: the first chunk's task is what the workers wait for.
func enqueueStart(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	gcOn := gcOffUntilStarted()
	defer gcOn()
	cfg, err := loadConfig(c, configs.Needs{Input: true})
	if err != nil {
		return err
	}
	// The normalizer's tables for the region (built on first use: ~5 ms)
	// are built on the other core while Redis connects.
	go phonenorm.Warm(cfg.Enqueue.DefaultRegion)
	s, err := connectSession(c, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	return enqueueAction(c, s, gcOn)
}

// startMemoryLimit bounds the Go heap while the collector is off: until
// the first chunk is out, enqueue holds a few MB (one chunk's rows).
const startMemoryLimit = 64 << 20

// gcOff is the collector's setting while enqueues start: off from the
// first to start until the last is started (tests run several in one
// process), then as it was.
var gcOff struct {
	sync.Mutex
	starting int
	pct      int
	limit    int64
}

// gcOffUntilStarted turns the garbage collector off (up to
// startMemoryLimit) until the returned function turns it back on as it
// was; calling that twice is harmless. Enqueue calls it once its first
// chunk is out: a collection before, on a host of two cores, delayed it by
// a few ms.
func gcOffUntilStarted() (on func()) {
	gcOff.Lock()
	defer gcOff.Unlock()
	if gcOff.starting == 0 {
		gcOff.limit = debug.SetMemoryLimit(-1)
		debug.SetMemoryLimit(min(gcOff.limit, startMemoryLimit))
		gcOff.pct = debug.SetGCPercent(-1)
	}
	gcOff.starting++
	var once sync.Once
	return func() {
		once.Do(func() {
			gcOff.Lock()
			defer gcOff.Unlock()
			if gcOff.starting--; gcOff.starting == 0 {
				debug.SetGCPercent(gcOff.pct)
				debug.SetMemoryLimit(gcOff.limit)
			}
		})
	}
}

func enqueueAction(c *cli.Context, s *session, started func()) error {
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
		Started:       started,
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
