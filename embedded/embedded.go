package embedded

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/jobstore"
)

// Config is what an embedded run needs.
type Config struct {
	// Out is the output folder: the lock, and each job's journal and spec
	// file, live there. Created when missing.
	Out string
	// Target names what the job's numbers are checked against (an API URL
	// and account, or a simulator): a journal holding answers is replayed
	// only for the target it was written for.
	Target string
	// ForgetAfter: the capability memory file drops answers older than this
	// when the run saves it. Defaults to 0: it keeps every answer.
	ForgetAfter time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Run is an embedded Redis with its journal, holding the output folder.
type Run struct {
	cfg     Config
	log     *slog.Logger
	unlock  func()
	mr      *miniredis.Miniredis
	rdb     *redis.Client
	opt     asynq.RedisClientOpt
	journal *journal
	store   *jobstore.Store
	cbMu    sync.Mutex
	cbFile  *os.File // the callbacks journal, once a callback came
	memory  *Memory
	closed  sync.Once
	err     error // of Close
}

// Open takes the output folder (a *LockedError when another process holds
// it) and starts the embedded Redis. Close it when done.
func Open(cfg Config) (*Run, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	unlock, err := lockDir(cfg.Out)
	if err != nil {
		return nil, err
	}
	mr := miniredis.NewMiniRedis()
	// The password is nowhere but in this process: not in a flag, a log or
	// a file.
	password := rand.Text()
	mr.RequireAuth(password)
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		unlock()
		return nil, fmt.Errorf("starting the embedded Redis: %w", err)
	}
	r := &Run{
		cfg:     cfg,
		log:     log,
		unlock:  unlock,
		mr:      mr,
		rdb:     redis.NewClient(&redis.Options{Addr: mr.Addr(), Password: password}),
		opt:     asynq.RedisClientOpt{Addr: mr.Addr(), Password: password},
		journal: newJournal(cfg.Out),
	}
	r.store = jobstore.New(r.rdb, jobstore.OnRecord(r.journal.append))
	if err := r.openMemory(context.Background()); err != nil {
		r.rdb.Close()
		mr.Close()
		unlock()
		return nil, err
	}
	return r, nil
}

// Redis returns a client of the embedded Redis.
func (r *Run) Redis() redis.UniversalClient { return r.rdb }

// RedisConnOpt connects asynq to the embedded Redis.
func (r *Run) RedisConnOpt() asynq.RedisConnOpt { return r.opt }

// Store returns the job store on the embedded Redis; what it records is
// journaled.
func (r *Run) Store() *jobstore.Store { return r.store }

// Close saves the capability memory (what the run learned, merged into the
// file of earlier runs), closes the journal and the embedded Redis and gives
// the output folder up. Stop every user of the Redis first (the workers,
// the callback receiver). Closing twice is harmless.
func (r *Run) Close() error {
	r.closed.Do(func() {
		saved := r.saveMemory(context.Background())
		if saved != nil {
			r.log.Error("the answers of this run are not remembered", "err", saved)
		}
		r.cbMu.Lock()
		if r.cbFile != nil {
			r.err = r.cbFile.Close()
		}
		r.cbMu.Unlock()
		r.err = errors.Join(saved, r.err, r.memory.file.Close(), r.journal.Close(), r.rdb.Close())
		r.mr.Close()
		r.unlock()
	})
	return r.err
}

// Restore puts the record of job id that an earlier run left under the
// output folder back into the fresh Redis, as a shared Redis would still
// hold it: enqueue then resumes the job, or refuses another input or other
// options under the same ID (jobstore.ErrSpecMismatch). The job is created
// when the earlier run created it, and the memory hides the answers
// received since (the job's own, if that run saved them), so that enqueue
// decides which numbers the memory answers (--recheck-after counts from the
// job's creation) as that run did, and the journal's outcomes fall on the
// same chunks. Call it before enqueue, with the job's ID, explicit or
// derived from its input (enqueue.JobID); "" (a stream's job, named anew
// each run) restores nothing.
func (r *Run) Restore(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	saved, path, err := readJobFile(r.cfg.Out, id)
	if err != nil || saved == nil {
		return err
	}
	if saved.ID != id {
		return fmt.Errorf("%s is the record of job %q, not %s: move it away", path, saved.ID, id)
	}
	if _, _, err = r.store.CreateJob(ctx, saved.Spec); err != nil {
		return err
	}
	// Whole seconds, as records hold them: an answer of the job's first
	// second is the job's.
	r.memory.asOf = saved.Created.Truncate(time.Second)
	return r.store.Backdate(ctx, id, saved.Created)
}

// Resume prepares job id, once enqueued, for the workers: it writes the
// job's spec file, refusing (a *TargetError) a journal with answers of
// another target, then replays the journal so that recorded calls are not
// sent again. Call it before any worker starts.
func (r *Run) Resume(ctx context.Context, id string) error {
	created, err := r.saveJob(ctx, id)
	if err != nil {
		return err
	}
	f, err := openNoFollow(r.journal.path(id), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the journal of job %s: %w", id, err)
	}
	defer f.Close()
	n, err := replay(ctx, r.rdb, id, f)
	if err != nil {
		return fmt.Errorf("replaying %s: %w (move it away to start the job afresh)", f.Name(), err)
	}
	// The job began with its first run: callbacks that came then answer it.
	if err := r.store.Backdate(ctx, id, created); err != nil {
		return err
	}
	cbs, err := r.restoreCallbacks(ctx, id, created)
	if err != nil {
		return err
	}
	r.log.Info("resumed from the journal of an earlier run", "job", id, "entries", n, "callbacks", cbs)
	return nil
}
