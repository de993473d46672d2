package enqueue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/tasks"
)

// Run reads a list, stores its unique valid numbers as chunks in the job
// store, enqueues one task per chunk and writes {OutDir}/{job}/rejects.csv.
// It prints nothing on stdout.
//
// Run is idempotent per job ID: the job record remembers how many chunks are
// enqueued, task IDs are deterministic (tasks.Chunk.ID), and the input is
// read again in the same order, so a run that resumes a job killed at any
// point enqueues each chunk exactly once in total; a run of a job already
// enqueued does nothing and says so (Result.AlreadyEnqueued). A job is held
// by one process at a time (jobstore.Lock).
//
// A resumed run checks that the input is the one the job was started with:
// the chunks and blobs of rejects it rebuilds must be the ones an earlier run
// stored (a GET each). When they are not, as when a cron re-run feeds another
// list on standard input under the same --job, Run refuses (ErrConfig) rather
// than mix two lists in one job. A job read from a stream and already
// enqueued is checked the same way: its input is read again.
func Run(ctx context.Context, cfg Config) (Result, error) {
	r, err := open(cfg)
	if err != nil {
		return Result{}, err
	}
	defer r.in.Close()
	if err := r.readHeader(); err != nil {
		return r.res, err
	}
	unlock, err := r.lock(ctx)
	if err != nil {
		return r.res, err
	}
	defer unlock()
	if err := r.createJob(ctx); err != nil {
		return r.res, err
	}
	if r.job.State != jobstore.Enqueuing {
		err := r.enqueuedBefore(ctx)
		return r.res, err
	}
	if err := r.resume(ctx); err != nil {
		return r.res, err
	}
	defer r.prev.close()
	blobs, err := r.enqueueList(ctx)
	if err != nil {
		return r.res, err
	}
	c := r.res.Counts
	if err := finish(ctx, r.cfg, r.job, c.Counts, c.Chunks, blobs); err != nil {
		return r.res, err
	}
	r.report()
	return r.res, nil
}

// run is one call of Run: what each stage finds for the next ones.
type run struct {
	cfg   Config
	log   *slog.Logger
	start time.Time
	in    *input
	rd    *listreader.Reader
	job   *jobstore.Job
	prev  *earlier // what earlier runs stored of the job; nil on a first run
	res   Result
}

// open checks the configuration, opens the input and names the job.
func open(cfg Config) (*run, error) {
	r := &run{start: time.Now(), cfg: cfg.WithDefaults()}
	if err := r.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	r.log = r.cfg.Logger
	in, err := openInput(r.cfg, r.start)
	if err != nil {
		return nil, err
	}
	r.in = in
	if r.cfg.JobID == "" {
		r.cfg.JobID = in.jobID
		if in.stream {
			r.log.Warn("reading a stream without a job ID: a re-run cannot resume this job; name the job to make it resumable", "job", r.cfg.JobID)
		}
	}
	r.res.JobID = r.cfg.JobID
	return r, nil
}

// readHeader reads the header of the list and chooses its column.
func (r *run) readHeader() error {
	rd, err := listreader.New(r.in.r, listreader.Config{Column: r.cfg.Column, DefaultRegion: r.cfg.DefaultRegion})
	if err != nil {
		if errors.Is(err, listreader.ErrColumn) || errors.Is(err, listreader.ErrTooManyFields) {
			err = fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return fmt.Errorf("%s: %w", r.in.name, err)
	}
	r.rd = rd
	r.res.Format = rd.Format()
	return nil
}

// lock takes the job's lock, waiting up to LockWait for another process to
// let go of it, and returns its release.
func (r *run) lock(ctx context.Context) (release func(), err error) {
	lock, err := takeLock(ctx, r.cfg, r.log)
	if err != nil {
		return nil, err
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Release(rctx) // it expires after LockTTL anyway
	}, nil
}

// createJob creates the job, or finds the one an earlier run created with
// the same spec.
func (r *run) createJob(ctx context.Context) error {
	cfg := r.cfg
	job, created, err := cfg.Store.CreateJob(ctx, jobstore.Spec{
		ID: cfg.JobID, Input: r.in.name, Fingerprint: r.in.fingerprint, ChunkSize: cfg.ChunkSize,
	})
	if errors.Is(err, jobstore.ErrSpecMismatch) {
		err = fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err != nil {
		return err
	}
	r.job, r.res.Created = job, created
	if err := awaitCallbacks(ctx, cfg, job.ID); err != nil {
		return err
	}
	if job.Redriving {
		// Its chunks are being re-enqueued by 'capcheck retry': enqueueing
		// would mark it enqueued with chunks missing.
		return fmt.Errorf("job %s: %w: retry it again", job.ID, ErrRetrying)
	}
	return nil
}

// enqueuedBefore handles a job enqueued by an earlier run: there is nothing
// to enqueue, but a stream must be the one it was read from, and a job
// whose chunks all settled in the meantime gets its finalize task.
func (r *run) enqueuedBefore(ctx context.Context) error {
	job := r.job
	// A file is known by its fingerprint; a stream only by what it holds:
	// read it again, it must rebuild the stored job (a cron re-run with
	// another list under the same --job).
	if r.in.stream {
		if err := verifyEnqueued(ctx, r.cfg, job, r.rd); err != nil {
			return err
		}
	}
	if err := finish(ctx, r.cfg, job, job.Counts, job.Chunks, job.RejectBlobs); err != nil {
		return err
	}
	r.res.AlreadyEnqueued = true
	r.res.Counts = Counts{Counts: job.Counts, Chunks: job.Chunks}
	r.res.Elapsed = time.Since(r.start)
	r.log.Info("already enqueued: nothing left to do", "job", job.ID, "state", string(job.State),
		"chunks", job.Chunks, "chunks_done", job.ChunksDone)
	return nil
}

// resume reads what earlier runs of a job created before stored, for the
// writer to check against and skip.
func (r *run) resume(ctx context.Context) error {
	if r.res.Created {
		return nil
	}
	r.log.Info("resuming job", "job", r.job.ID, "chunks_enqueued", r.job.ChunksEnqueued)
	prev, err := resumeOf(ctx, r.cfg.Store, r.job)
	if err != nil {
		return err
	}
	r.prev = prev
	return nil
}

// enqueueList reads the list through the pipeline: chunks go to the store
// and the queue, rejects to the store and to rejects.csv. It returns the
// number of blobs of rejects stored.
func (r *run) enqueueList(ctx context.Context) (blobs int, err error) {
	cfg := r.cfg
	dir := outfiles.Dir(cfg.OutDir, cfg.JobID)
	if err := os.MkdirAll(dir, outfiles.DirMode); err != nil {
		return 0, fmt.Errorf("creating output folder: %w", err)
	}
	path := filepath.Join(dir, outfiles.RejectsCSV)

	var prog *progress
	var progress func(int64)
	if cfg.Progress != nil && isTerminal(cfg.Progress) {
		prog = startProgress(cfg.Progress, r.start)
		progress = prog.rows.Store
	}
	w := newWriter(ctx, cfg, r.job, r.prev)
	defer w.close()
	var counts Counts
	var runErr error // the pipeline's, reported without WriteAtomic's "writing rejects.csv"
	err = outfiles.WriteAtomic(path, func(f io.Writer) error {
		if _, err := io.WriteString(f, outfiles.RejectsHeader); err != nil {
			return err
		}
		counts, blobs, runErr = feed(ctx, cfg, r.rd, w, f, progress)
		if runErr == nil && r.prev != nil {
			runErr = r.prev.end(counts.Chunks)
		}
		return runErr
	})
	if runErr != nil {
		err = runErr
	}
	prog.stop()
	r.res.Counts, r.res.ChunksEnqueued = counts, w.enqueued
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("enqueue of job %s stopped after %d rows (%d chunks enqueued; run again to resume): %w",
				cfg.JobID, counts.Rows, w.enqueued, err)
		}
		return 0, err
	}
	r.res.RejectsPath = path
	return blobs, nil
}

// report completes the result and logs it, with a warning when the list
// held nothing to check.
func (r *run) report() {
	res, counts := &r.res, r.res.Counts
	res.AlreadyEnqueued = res.ChunksEnqueued == 0 && !res.Created
	res.Elapsed = time.Since(r.start)
	secs := res.Elapsed.Seconds()
	msg := "enqueued"
	if res.AlreadyEnqueued {
		msg = "already enqueued: nothing left to do"
	}
	column := "(plain text)"
	if !res.Format.Plain {
		column = fmt.Sprintf("%d %q", res.Format.Column+1, res.Format.ColumnName)
	}
	r.log.Info(msg, "job", res.JobID, "column", column, "rows", counts.Rows, "valid", counts.Valid,
		"invalid", counts.Invalid, "missing", counts.Missing, "malformed", counts.Malformed,
		"duplicates", counts.Duplicates, "cached", counts.Cached, "chunks", counts.Chunks, "chunks_enqueued_now", res.ChunksEnqueued,
		"rejects", res.RejectsPath, "seconds", round2(secs), "rows_per_s", int64(float64(counts.Rows)/max(secs, 1e-9)))
	r.log.Debug("normalizer", "rows", counts.Rows, "parsed_by_library", counts.Library,
		"fast_path_share", round2(1-float64(counts.Library)/float64(max(counts.Rows, 1))))
	switch {
	case counts.Rows == 0:
		// Often a truncated or failed upstream export: say so loudly.
		r.log.Warn("the input has no data records: nothing to check", "input", r.in.name)
	case counts.Valid == 0:
		r.log.Warn("no valid number in the input: nothing to check; see rejects.csv", "input", r.in.name, "column", column)
	}
}

// finish moves the job to Enqueued and, when every chunk is already
// settled, enqueues its finalize task.
func finish(ctx context.Context, cfg Config, job *jobstore.Job, c jobstore.Counts, chunks, blobs int) error {
	allDone, err := cfg.Store.FinishEnqueue(ctx, job.ID, c, chunks, blobs)
	if err != nil {
		return err
	}
	_, err = tasks.FinalizeWhenDone(ctx, cfg.Client, allDone, tasks.Finalize{Job: job.ID, Gen: job.Gen})
	return err
}

func takeLock(ctx context.Context, cfg Config, log *slog.Logger) (*jobstore.Lock, error) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("enqueue %s:%d:%s", host, os.Getpid(), randHex(4))
	deadline := time.Now().Add(cfg.LockWait)
	warned := false
	for {
		lock, err := cfg.Store.Lock(ctx, cfg.JobID, owner, cfg.LockTTL)
		if !errors.Is(err, jobstore.ErrLocked) || time.Now().After(deadline) {
			return lock, err
		}
		if !warned {
			log.Warn("waiting for the job held by another process", "job", cfg.JobID, "err", err, "wait", cfg.LockWait)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// awaitCallbacks records the job's callback wait before any chunk is
// enqueued (a worker may settle the last chunk at once), and gives the job
// its number in the awaiting registry.
func awaitCallbacks(ctx context.Context, cfg Config, job string) error {
	if cfg.CallbackWait <= 0 {
		return nil
	}
	if err := cfg.Store.SetCallbackWait(ctx, job, cfg.CallbackWait); err != nil {
		return err
	}
	if _, err := capstore.New(cfg.Store.Redis(), capstore.Options{}).RegisterJob(ctx, job); err != nil {
		return fmt.Errorf("job %s: %w", job, err)
	}
	return nil
}
