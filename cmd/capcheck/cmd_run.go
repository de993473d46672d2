package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/embedded"
	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/internal/redact"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/mockapi"
	"github.com/capcheck/capcheck/outfiles"
)

const flagDemo = "demo"

// The demo's in-process API: its own credentials, and numbers ending in
// demoRejectSuffix refused as invalid so that bisection shows in the results.
const (
	demoSID          = "demo"
	demoKey          = "demo-key-not-secret"
	demoRejectSuffix = "0000"
	// The demo waits this long for its simulator's callbacks unless
	// --callback-wait says otherwise, and half the numbers are capable.
	demoCallbackWait    = 30 * time.Second
	demoCapableFraction = 0.5
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "enqueue a list, process it with in-process workers and wait: one command",
		Description: "Enqueues --input, runs workers in this process and waits until the job is finished,\n" +
			"with the exit codes of 'capcheck wait'. With no Redis configured (no --redis,\n" +
			"CAPCHECK_REDIS or redis: in the config file) it uses an embedded in-process Redis:\n" +
			"it works on a bare machine, and what it records is journaled to\n" +
			"{out}/{job}/journal.jsonl so that re-running the same command resumes without\n" +
			"sending recorded requests again. With a Redis configured it is one more worker\n" +
			"replica of the fleet. With --callback-listen it also receives the provider's\n" +
			"callbacks in this process (as 'capcheck callbacks' does), for --callback-wait.\n" +
			"--demo also serves the API in-process (a simulator that refuses numbers ending in\n" +
			"0000 and calls back with each accepted number's capability), so no account is\n" +
			"needed; it waits up to --callback-wait (30s unless set) for those callbacks.",
		Flags: slices.Concat(configs.SharedFlags(), configs.APIFlags(), configs.EnqueueFlags(), configs.WorkerFlags(), configs.ForgetFlags(),
			configs.CallbackFlags(), []cli.Flag{
				&cli.BoolFlag{Name: flagDemo, Usage: "call an in-process simulator of the API instead of the provider"},
			}),
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	demo := c.Bool(flagDemo)
	cfg, err := loadConfig(c, configs.Needs{Credentials: !demo, Input: true})
	if err != nil {
		return err
	}
	if demo && cfg.RedisExplicit {
		// On a shared Redis the demo's worker would take the fleet's chunks
		// and "check" real jobs' numbers against the simulator.
		return usageErrorf("--demo runs on its own embedded Redis: unset --redis, CAPCHECK_REDIS and redis: in the config file")
	}
	log := newLogger(cfg, c.App.ErrWriter)
	ctx := c.Context
	r, err := openRunRedis(ctx, cfg, demo, log)
	if err != nil {
		return err
	}
	defer r.close()
	callbackURL := ""
	if demo && cfg.Callback.Listen == "" {
		cfg.Callback.Listen = "127.0.0.1:0"
		cfg.Enqueue.CallbackWait = cmp.Or(cfg.Enqueue.CallbackWait, demoCallbackWait)
	}
	if cfg.Callback.Listen != "" {
		addr, stop, err := runReceiver(ctx, cfg, r, log)
		if err != nil {
			return err
		}
		defer stop()
		callbackURL = "http://" + addr + callbacks.Path
	}
	if demo {
		stop, err := startDemoAPI(ctx, cfg, callbackURL, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	id, err := r.enqueue(c, cfg, log)
	if err != nil {
		return err
	}
	// run writes the files itself once the job is finished, whichever
	// replica finalizes it.
	_, stopWorker, err := startWorker(cfg, r.rdb, r.store, log, true)
	if err != nil {
		return err
	}
	defer stopWorker()

	st, err := waitJob(ctx, r.store, id, 0, c.App.ErrWriter, log)
	if err != nil {
		if ctx.Err() == nil {
			return err
		}
		log.Info("interrupted: draining in-flight calls; run the same command again to resume", "job", id)
		return r.interrupted(id)
	}
	if _, err := writeFiles(ctx, r.store, id, cfg.Out, outfiles.CSV, log); err != nil {
		return fmt.Errorf("job %s finished, but writing its files under %s failed: %w", id, cfg.Out, err)
	}
	return finished(c.App.Writer, st, cfg.Out, r.again(id))
}

// runRedis is the Redis of a run: a shared one, or an embedded one (emb
// set) that dies with the process.
type runRedis struct {
	rdb   redis.UniversalClient
	store *jobstore.Store
	emb   *embedded.Run
}

// openRunRedis connects to cfg's Redis, or starts an embedded one when none
// is configured.
func openRunRedis(ctx context.Context, cfg *configs.Config, demo bool, log *slog.Logger) (*runRedis, error) {
	if cfg.RedisExplicit {
		rdb, err := connectRedis(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		return &runRedis{rdb: rdb, store: jobstore.New(rdb, storeOptions(cfg)...)}, nil
	}
	// What the job's numbers are checked against: a journal is only
	// replayed for the same one (a demo's answers are not the API's).
	target := redact.URL(cfg.API.URL) + " SID " + cfg.API.SID
	if demo {
		target = "the --demo simulator"
	}
	emb, err := embedded.Open(embedded.Config{Out: cfg.Out, Target: target, ForgetAfter: cfg.Memory.ForgetAfter, Logger: log})
	if err != nil {
		return nil, outError(err, cfg.Out)
	}
	log.Info("no Redis configured: using an embedded in-process Redis; what is recorded is journaled under --out so a re-run resumes",
		"out", cfg.Out)
	return &runRedis{rdb: emb.Redis(), store: emb.Store(), emb: emb}, nil
}

func (r *runRedis) close() {
	if r.emb != nil {
		r.emb.Close()
		return
	}
	r.rdb.Close()
}

// enqueue enqueues cfg's input, prints the job ID and returns it; on the
// embedded Redis it resumes the job from what an earlier run left.
func (r *runRedis) enqueue(c *cli.Context, cfg *configs.Config, log *slog.Logger) (string, error) {
	mem, err := r.memory(c.Context, log)
	if err != nil {
		return "", err
	}
	ecfg := enqueue.Config{
		Input:         cfg.Enqueue.Input,
		Column:        cfg.Enqueue.Column,
		DefaultRegion: cfg.Enqueue.DefaultRegion,
		JobID:         cfg.Enqueue.Job,
		ChunkSize:     cfg.Enqueue.ChunkSize,
		CallbackWait:  cfg.Enqueue.CallbackWait,
		Memory:        mem,
		RecheckAfter:  cfg.Enqueue.RecheckAfter,
		ForgetAfter:   cfg.Memory.ForgetAfter,
		OutDir:        cfg.Out,
		Store:         r.store,
		Client:        asynq.NewClientFromRedisClient(r.rdb),
		Logger:        log,
		Progress:      c.App.ErrWriter,
	}
	if r.emb != nil {
		if err := r.restore(c, ecfg, cfg.Out); err != nil {
			return "", err
		}
	}
	res, err := enqueue.Run(c.Context, ecfg)
	if err != nil {
		if r.emb != nil && errors.Is(err, jobstore.ErrSpecMismatch) {
			dir := outfiles.Dir(cfg.Out, res.JobID)
			return "", usageErrorf("%s holds job %s of another input or other options (its journal must not be replayed on this one); "+
				"pass another --job, or move %s away to start the job afresh", dir, res.JobID, dir)
		}
		return "", enqueueError(err, res.JobID)
	}
	fmt.Fprintln(c.App.Writer, res.JobID)
	if r.emb != nil {
		if err := r.emb.Resume(c.Context, res.JobID); err != nil {
			return "", outError(err, cfg.Out)
		}
	}
	return res.JobID, nil
}

// restore puts back into the embedded Redis the job that an earlier run
// of ecfg (its --job, or the ID derived from its input) left under out.
func (r *runRedis) restore(c *cli.Context, ecfg enqueue.Config, out string) error {
	id, err := enqueue.JobID(ecfg)
	if err != nil {
		return enqueueError(err, "")
	}
	if err := r.emb.Restore(c.Context, id); err != nil {
		return outError(err, out)
	}
	return nil
}

// memory is the capability memory enqueue reads: the fleet's in Redis, or
// the embedded run's file with what the run learns.
func (r *runRedis) memory(ctx context.Context, log *slog.Logger) (enqueue.Memory, error) {
	if r.emb != nil {
		return r.emb.Memory().Snapshot(), nil
	}
	return fleetMemory(ctx, r.rdb, log)
}

// interrupted is the error of a run stopped before job id finished. Not
// waitJob's "it goes on; 'capcheck wait' resumes waiting": an embedded Redis
// dies with this process, and on a shared one the job goes on only if other
// workers are running.
func (r *runRedis) interrupted(id string) error {
	if r.emb != nil {
		return fmt.Errorf("interrupted: job %s stopped before it finished; run the same command again to resume it", id)
	}
	return fmt.Errorf("interrupted: this run stopped working on job %s; run the same command again to resume it "+
		"(workers of the fleet, if any, go on with it: 'capcheck wait %s')", id, id)
}

// again says how to send the failed numbers of job id again.
func (r *runRedis) again(id string) string {
	if r.emb != nil {
		return "running the same command again sends them again"
	}
	return retryHint(id)
}

// outError adds what the operator can do to an error of the embedded run
// about its output folder.
func outError(err error, out string) error {
	var locked *embedded.LockedError
	var target *embedded.TargetError
	switch {
	case errors.As(err, &locked):
		return fmt.Errorf("another 'capcheck run' on an embedded Redis is using --out %s (%s); "+
			"wait for it to finish, or run both on a shared Redis (--redis) where they work as one fleet", out, locked.Holder)
	case errors.As(err, &target):
		return usageErrorf("%v: pass another --out (or --job), or move %s away", err, target.Dir)
	case errors.Is(err, embedded.ErrSymlink):
		return usageErrorf("%v", err)
	}
	return err
}

// startDemoAPI serves the API simulator on a loopback port and points cfg's
// API options at it.
func startDemoAPI(ctx context.Context, cfg *configs.Config, callbackURL string, log *slog.Logger) (stop func(), err error) {
	srv, err := mockapi.New(mockapi.Config{
		SID: demoSID, APIKey: demoKey, RejectSuffix: demoRejectSuffix,
		Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond, FailRate: 0.05, Seed: 1,
		Logger: log,
		// Callbacks to the in-process receiver: the capability of a number
		// is mockapi.Capable(number, 0.5).
		CallbackURL: callbackURL, CallbackToken: cfg.Callback.Token.Reveal(), CallbackHeader: cfg.Callback.Header,
		CallbackDelay: 100 * time.Millisecond, CallbackJitter: 400 * time.Millisecond,
		CapableFraction: demoCapableFraction,
	})
	if err != nil {
		return nil, err
	}
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(sctx, ln)
	}()
	cfg.API.URL = "http://" + ln.Addr().String()
	cfg.API.SID = demoSID
	cfg.API.Key = configs.NewSecret(demoKey)
	log.Info("demo: calling an in-process simulator of the API; numbers ending in "+demoRejectSuffix+" are refused as invalid",
		"api_url", cfg.API.URL)
	return func() { cancel(); <-done }, nil
}
