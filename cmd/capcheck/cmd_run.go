package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/urfave/cli/v2"

	"github.com/capcheck/capcheck/configs"
	"github.com/capcheck/capcheck/enqueue"
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
			"replica of the fleet. --demo also serves the API in-process (a simulator that\n" +
			"refuses numbers ending in 0000), so no account is needed.",
		Flags: slices.Concat(configs.SharedFlags(), configs.APIFlags(), configs.EnqueueFlags(), configs.WorkerFlags(), []cli.Flag{
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
	// What the job's numbers are checked against: an embedded run's journal
	// is only replayed for the same one (a demo's answers are not the API's).
	target := cfg.API.URL + " SID " + cfg.API.SID
	if demo {
		target = "the --demo simulator"
	}

	var rdb redis.UniversalClient
	var opt asynq.RedisConnOpt
	embedded := !cfg.RedisExplicit
	if embedded {
		unlock, err := lockOutDir(cfg.Out)
		if err != nil {
			return err
		}
		defer unlock()
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("starting the embedded Redis: %w", err)
		}
		defer mr.Close()
		rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		opt = asynq.RedisClientOpt{Addr: mr.Addr()}
		log.Info("no Redis configured: using an embedded in-process Redis; what is recorded is journaled under --out so a re-run resumes",
			"out", cfg.Out)
	} else {
		if rdb, opt, err = connectRedis(ctx, cfg.Redis); err != nil {
			return err
		}
	}
	defer rdb.Close()

	if demo {
		stop, err := startDemoAPI(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	store := jobstore.New(rdb)
	var journal *jobstore.FileJournal
	if embedded {
		journal = jobstore.NewFileJournal(cfg.Out)
		defer journal.Close()
		store.SetJournal(journal)
	}
	if embedded {
		if err := restoreJob(ctx, store, cfg.Out, cfg.Enqueue.Job); err != nil {
			return err
		}
	}
	client := asynq.NewClientFromRedisClient(rdb)
	res, err := enqueue.Run(ctx, enqueue.Config{
		Input:         cfg.Enqueue.Input,
		Column:        cfg.Enqueue.Column,
		DefaultRegion: cfg.Enqueue.DefaultRegion,
		JobID:         cfg.Enqueue.Job,
		ChunkSize:     cfg.Enqueue.ChunkSize,
		OutDir:        cfg.Out,
		Store:         store,
		Client:        client,
		Logger:        log,
		Progress:      c.App.ErrWriter,
	})
	if err != nil {
		if embedded && errors.Is(err, jobstore.ErrSpecMismatch) {
			dir := outfiles.Dir(cfg.Out, res.JobID)
			return usageErrorf("%s holds job %s of another input or other options (its journal must not be replayed on this one); "+
				"pass another --job, or move %s away to start the job afresh", dir, res.JobID, dir)
		}
		return enqueueError(err)
	}
	id := res.JobID
	fmt.Fprintln(c.App.Writer, id)
	if embedded {
		if err := saveJob(ctx, store, cfg.Out, id, target); err != nil {
			return err
		}
		if err := replayJournal(ctx, store, journal, id, log); err != nil {
			return err
		}
	}

	_, stopWorker, err := startWorker(cfg, rdb, opt, store, log)
	if err != nil {
		return err
	}
	defer stopWorker()

	st, err := waitJob(ctx, store, id, 0, c.App.ErrWriter, log)
	if err != nil {
		if ctx.Err() == nil {
			return err
		}
		log.Info("interrupted: draining in-flight calls; run the same command again to resume", "job", id)
		// Not waitJob's "it goes on; 'capcheck wait' resumes waiting": an
		// embedded Redis dies with this process, and on a shared one the
		// job goes on only if other workers are running.
		if embedded {
			return fmt.Errorf("interrupted: job %s stopped before it finished; run the same command again to resume it", id)
		}
		return fmt.Errorf("interrupted: this run stopped working on job %s; run the same command again to resume it "+
			"(workers of the fleet, if any, go on with it: 'capcheck wait %s')", id, id)
	}
	again := retryHint(id)
	if embedded {
		again = "running the same command again sends them again"
	}
	return finished(c.App.Writer, st, cfg.Out, again)
}

// enqueueError keeps enqueue's configuration errors usage errors (exit 2).
func enqueueError(err error) error {
	if errors.Is(err, enqueue.ErrConfig) {
		return usageErrorf("%v", err)
	}
	return err
}

// replayJournal puts back what an earlier run of the job recorded, before
// any worker starts, so that recorded calls are not sent again.
func replayJournal(ctx context.Context, store *jobstore.Store, j *jobstore.FileJournal, id string, log *slog.Logger) error {
	f, err := os.Open(j.Path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the journal of job %s: %w", id, err)
	}
	defer f.Close()
	n, err := store.Replay(ctx, id, f)
	if err != nil {
		return fmt.Errorf("replaying %s: %w (move it away to start the job afresh)", j.Path(id), err)
	}
	log.Info("resumed from the journal of an earlier run", "job", id, "entries", n)
	return nil
}

// jobFile, next to a job's journal, holds the spec (input fingerprint, chunk
// size) of the job that wrote the journal. Without it a run under the same
// --job on another list would replay the outcomes of the earlier list onto
// the rows of the new one, and report numbers never sent as checked.
const jobFile = "journal-job.json"

// journalJob is jobFile's content.
type journalJob struct {
	jobstore.Spec
	// Target is what the journaled calls were sent to.
	Target string `json:"target"`
}

// restoreJob puts the record of job id that an earlier run on the embedded
// Redis left under --out back into the fresh Redis, as a shared Redis would
// still hold it: enqueue then resumes the job, or refuses another input or
// other options under the same ID (jobstore.ErrSpecMismatch). A derived job
// ID already names its input's fingerprint: only an explicit --job needs it.
func restoreJob(ctx context.Context, store *jobstore.Store, out, id string) error {
	if id == "" {
		return nil
	}
	saved, path, err := readJobFile(out, id)
	if err != nil || saved == nil {
		return err
	}
	if saved.ID != id {
		return fmt.Errorf("%s is the record of job %q, not %s: move it away", path, saved.ID, id)
	}
	_, _, err = store.CreateJob(ctx, saved.Spec)
	return err
}

// saveJob writes the spec of job id and the target of its calls next to its
// journal, before anything is journaled, for restoreJob. A journal written
// for another target is refused: replaying it would report numbers as
// checked by an API that never saw them.
func saveJob(ctx context.Context, store *jobstore.Store, out, id, target string) error {
	saved, path, err := readJobFile(out, id)
	if err != nil {
		return err
	}
	if saved != nil && saved.Target != "" && saved.Target != target && journalHasAnswers(filepath.Join(outfiles.Dir(out, id), jobstore.JournalName)) {
		return usageErrorf("%s holds job %s as checked against %s, not %s: pass another --out (or --job), or move %s away",
			outfiles.Dir(out, id), id, saved.Target, target, outfiles.Dir(out, id))
	}
	j, err := store.Job(ctx, id)
	if err != nil {
		return err
	}
	return outfiles.WriteAtomic(path, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(journalJob{Spec: j.Spec, Target: target})
	})
}

// journalHasAnswers reports whether a journal records numbers the API
// accepted or rejected: one that holds only failures (a wrong --api-url, say)
// may be resumed against another target, since failures are sent again.
func journalHasAnswers(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e jobstore.JournalEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Outcome != nil && e.Outcome.Final() && e.Outcome.Status != jobstore.Failed {
			return true
		}
	}
	return false
}

// readJobFile reads jobFile of job id; nil when there is none.
func readJobFile(out, id string) (*journalJob, string, error) {
	path := filepath.Join(outfiles.Dir(out, id), jobFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("reading the job of an earlier run: %w", err)
	}
	var saved journalJob
	if err := json.Unmarshal(b, &saved); err != nil {
		return nil, path, fmt.Errorf("reading %s: %w (move it away)", path, err)
	}
	return &saved, path, nil
}

// lockOutDir keeps two runs on embedded Redis from working in one output
// folder at once: each would have its own Redis and send every number again.
func lockOutDir(out string) (unlock func(), err error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("creating --out %s: %w", out, err)
	}
	path := filepath.Join(out, ".run.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(f, 256))
		f.Close()
		return nil, fmt.Errorf("another 'capcheck run' on an embedded Redis is using --out %s (%s); "+
			"wait for it to finish, or run both on a shared Redis (--redis) where they work as one fleet", out, holder)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+" since "+time.Now().Format(time.RFC3339)), 0)
	return func() { f.Close() }, nil
}

// startDemoAPI serves the API simulator on a loopback port and points cfg's
// API options at it.
func startDemoAPI(ctx context.Context, cfg *configs.Config, log *slog.Logger) (stop func(), err error) {
	srv, err := mockapi.New(mockapi.Config{
		SID: demoSID, APIKey: demoKey, RejectSuffix: demoRejectSuffix,
		Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond, FailRate: 0.05, Seed: 1,
		Logger: log,
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
