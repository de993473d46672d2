package enqueue

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/nyaruka/phonenumbers"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/tasks"
)

// Defaults of Config.
const (
	OutDirDefault  = "out"
	LockTTLDefault = 30 * time.Second
	// MaxChunkSize bounds ChunkSize: a chunk is one Redis value and one task.
	MaxChunkSize = 100_000
)

// rejectBlobSize is the size a blob of rejects grows to before it is stored.
const rejectBlobSize = 64 << 10

// Config configures Run.
type Config struct {
	// Input is the path of the list, "-" for standard input. A gzip file
	// (by its magic bytes) is read decompressed. Required unless Reader is
	// set.
	Input string
	// Reader, when set, is read instead of opening Input, which then only
	// names it. Defaults to none.
	Reader io.Reader
	// Stdin is what Input "-" reads. Defaults to os.Stdin.
	Stdin io.Reader

	// Column selects the CSV column: a header name or a 1-based index.
	// Defaults to the first column that looks like a phone column (see
	// ReaderConfig.Column).
	Column string
	// DefaultRegion is the region of numbers without a country code.
	// Defaults to DefaultRegionDefault ("IN").
	DefaultRegion string
	// JobID names the job. Defaults to an ID derived from the input file
	// and the options, "<name>-<mtime YYYYMMDD>-<8 hex>", so that the same
	// nightly command on the same file resumes the same job; standard input
	// gets a fresh ID (and a warning: a re-run cannot resume it). A job given
	// here for standard input is resumed only with the same content (see
	// Run).
	JobID string
	// ChunkSize is the number of numbers per chunk task. Defaults to
	// ChunkSizeDefault (1000).
	ChunkSize int
	// OutDir is where {job}/rejects.csv is written. Defaults to
	// OutDirDefault ("out").
	OutDir string

	// Store keeps the job in Redis. Required.
	Store *jobstore.Store
	// Client enqueues the chunk tasks. Required.
	Client *asynq.Client

	// Logger receives the summary and warnings. Defaults to slog.Default().
	Logger *slog.Logger
	// Progress is where a progress line is drawn, when it is a terminal.
	// Defaults to none.
	Progress io.Writer
	// Workers is the number of normalizing goroutines. Defaults to
	// GOMAXPROCS.
	Workers int
	// LockTTL is how long the job's lock outlives a process killed without
	// releasing it. Defaults to LockTTLDefault (30s).
	LockTTL time.Duration
	// LockWait is how long to wait for a job held by another process (for
	// instance one just killed, whose lock has not expired yet). Defaults
	// to LockTTL.
	LockWait time.Duration
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Stdin == nil {
		c.Stdin = os.Stdin
	}
	c.DefaultRegion = strings.ToUpper(cmp.Or(c.DefaultRegion, DefaultRegionDefault))
	c.ChunkSize = cmp.Or(c.ChunkSize, ChunkSizeDefault)
	c.OutDir = cmp.Or(c.OutDir, OutDirDefault)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.LockTTL = cmp.Or(c.LockTTL, LockTTLDefault)
	c.LockWait = cmp.Or(c.LockWait, c.LockTTL)
	return c
}

// Validate says what to fix in c, if anything.
func (c Config) Validate() error {
	var errs []error
	if c.Input == "" && c.Reader == nil {
		errs = append(errs, errors.New("no input: give a path, or - for standard input"))
	}
	if !phonenumbers.GetSupportedRegions()[c.DefaultRegion] {
		errs = append(errs, fmt.Errorf("default region %q: use a 2-letter ISO 3166 code such as IN, US or GB", c.DefaultRegion))
	}
	if c.ChunkSize < 1 || c.ChunkSize > MaxChunkSize {
		errs = append(errs, fmt.Errorf("chunk size %d: use 1 to %d", c.ChunkSize, MaxChunkSize))
	}
	if c.JobID != "" {
		if err := jobstore.ValidateJobID(c.JobID); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Store == nil || c.Client == nil {
		errs = append(errs, errors.New("enqueue needs a job store and an asynq client"))
	}
	if c.Workers < 0 || c.LockTTL < time.Second {
		errs = append(errs, errors.New("workers must be >= 0 and the lock TTL at least 1s"))
	}
	return errors.Join(errs...)
}

// ErrConfig is wrapped by Run's errors about its configuration or options
// (a bad column, region or job ID; another input under the same job ID):
// the operator has to change the command.
var ErrConfig = errors.New("bad enqueue configuration")

// Result says what Run did.
type Result struct {
	JobID string
	// Created is true when this run created the job.
	Created bool
	// AlreadyEnqueued is true when every chunk had been enqueued before:
	// this run enqueued nothing.
	AlreadyEnqueued bool
	// Counts are the per-record counts of the input.
	Counts Counts
	// ChunksEnqueued is the number of chunk tasks this run enqueued.
	ChunksEnqueued int
	// RejectsPath is the rejects.csv written, "" when none was.
	RejectsPath string
	// Format tells how the input was read (zero when it was not read).
	Format Format
	// Elapsed is the time Run took.
	Elapsed time.Duration
}

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
	start := time.Now()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log := cfg.Logger

	in, err := openInput(cfg, start)
	if err != nil {
		return Result{}, err
	}
	defer in.Close()
	if cfg.JobID == "" {
		cfg.JobID = in.jobID
		if in.stream {
			log.Warn("reading a stream without --job: a re-run cannot resume this job; pass --job to make it resumable", "job", cfg.JobID)
		}
	}
	res := Result{JobID: cfg.JobID}

	rd, err := NewReader(in.r, ReaderConfig{Column: cfg.Column, DefaultRegion: cfg.DefaultRegion})
	if err != nil {
		if errors.Is(err, ErrColumn) {
			err = fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return res, fmt.Errorf("%s: %w", in.name, err)
	}
	res.Format = rd.Format()

	lock, err := takeLock(ctx, cfg, log)
	if err != nil {
		return res, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Release(rctx)
	}()

	job, created, err := cfg.Store.CreateJob(ctx, jobstore.Spec{
		ID: cfg.JobID, Input: in.name, Fingerprint: in.fingerprint, ChunkSize: cfg.ChunkSize,
	})
	if errors.Is(err, jobstore.ErrSpecMismatch) {
		err = fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err != nil {
		return res, err
	}
	res.Created = created
	if job.Redriving {
		// Its chunks are being re-enqueued by 'capcheck retry': enqueueing
		// would mark it enqueued with chunks missing.
		return res, fmt.Errorf("job %s is being retried and the retry did not finish: run 'capcheck retry %s' again", job.ID, job.ID)
	}
	if job.State != jobstore.Enqueuing {
		// Enqueued before. A file is known by its fingerprint; a stream
		// only by what it holds: read it again, it must rebuild the stored
		// job (a cron re-run with another list under the same --job).
		if in.stream {
			if err := verifyEnqueued(ctx, cfg, job, rd); err != nil {
				return res, err
			}
		}
		// Make sure a job whose chunks all settled in the meantime gets
		// its finalize task (FinishEnqueue says so).
		if err := finish(ctx, cfg, job, job.Counts, job.Chunks, job.RejectBlobs); err != nil {
			return res, err
		}
		res.AlreadyEnqueued = true
		res.Counts = fromStore(job.Counts, job.Chunks)
		res.Elapsed = time.Since(start)
		log.Info("already enqueued: nothing left to do", "job", job.ID, "state", string(job.State),
			"chunks", job.Chunks, "chunks_done", job.ChunksDone)
		return res, nil
	}
	var prev *earlier
	if !created {
		log.Info("resuming job", "job", job.ID, "chunks_enqueued", job.ChunksEnqueued)
		if prev, err = resumeOf(ctx, cfg.Store, job); err != nil {
			return res, err
		}
		defer prev.close()
	}

	dir := outfiles.Dir(cfg.OutDir, cfg.JobID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("creating output folder: %w", err)
	}
	path := filepath.Join(dir, outfiles.RejectsCSV)

	var prog *progress
	if cfg.Progress != nil && isTerminal(cfg.Progress) {
		prog = startProgress(cfg.Progress, start)
	}
	w := newWriter(ctx, cfg, job, prev)
	defer w.close()
	var counts Counts
	var blobs int
	var runErr error // the pipeline's, reported without WriteAtomic's "writing rejects.csv"
	err = outfiles.WriteAtomic(path, func(f io.Writer) error {
		if _, err := io.WriteString(f, "row,input,reason\n"); err != nil {
			return err
		}
		var progress func(int64)
		if prog != nil {
			progress = prog.rows.Store
		}
		counts, blobs, runErr = feed(ctx, cfg, rd, w, f, progress)
		if runErr == nil && prev != nil {
			runErr = prev.end(counts.Chunks)
		}
		return runErr
	})
	if runErr != nil {
		err = runErr
	}
	prog.stop()
	res.Counts = counts
	res.ChunksEnqueued = w.enqueued
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("enqueue of job %s stopped after %d rows (%d chunks enqueued; run again to resume): %w",
				cfg.JobID, counts.Rows, w.enqueued, err)
		}
		return res, err
	}
	res.RejectsPath = path

	if err := finish(ctx, cfg, job, toStore(counts), counts.Chunks, blobs); err != nil {
		return res, err
	}
	res.AlreadyEnqueued = w.enqueued == 0 && !created
	res.Elapsed = time.Since(start)
	secs := res.Elapsed.Seconds()
	msg := "enqueued"
	if res.AlreadyEnqueued {
		msg = "already enqueued: nothing left to do"
	}
	column := "(plain text)"
	if !res.Format.Plain {
		column = fmt.Sprintf("%d %q", res.Format.Column+1, res.Format.ColumnName)
	}
	log.Info(msg, "job", cfg.JobID, "column", column, "rows", counts.Rows, "valid", counts.Valid,
		"invalid", counts.Invalid, "missing", counts.Missing, "malformed", counts.Malformed,
		"duplicates", counts.Duplicates, "chunks", counts.Chunks, "chunks_enqueued_now", w.enqueued,
		"rejects", path, "seconds", round2(secs), "rows_per_s", int64(float64(counts.Rows)/max(secs, 1e-9)))
	switch {
	case counts.Rows == 0:
		// Often a truncated or failed upstream export: say so loudly.
		log.Warn("the input has no data records: nothing to check", "input", in.name)
	case counts.Valid == 0:
		log.Warn("no valid number in the input: nothing to check; see rejects.csv", "input", in.name, "column", column)
	}
	return res, nil
}

// feed runs the pipeline on rd into w, writes the rejects to file, closes w
// and returns the counts, the number of blobs of rejects and the error that
// stopped it, if any.
func feed(ctx context.Context, cfg Config, rd *Reader, w *writer, file io.Writer, progress func(int64)) (Counts, int, error) {
	s := &sink{w: w, file: file}
	s.csv = csv.NewWriter(&s.blob)
	pcfg := PipelineConfig{DefaultRegion: cfg.DefaultRegion, ChunkSize: cfg.ChunkSize, Workers: cfg.Workers, Progress: progress}
	counts, err := Process(w.ctx, rd, pcfg, s)
	if err == nil {
		err = s.flushRejects(w.ctx)
	}
	// When Run is cancelled, the writer's failure is a consequence (some
	// clients do not wrap context.Canceled); otherwise a writer's error is
	// the cause of a cancelled pipeline.
	werr := w.close()
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case werr != nil:
		err = werr
	}
	return counts, s.blobs, err
}

// finish moves the job to Enqueued and, when every chunk is already
// settled, enqueues its finalize task.
func finish(ctx context.Context, cfg Config, job *jobstore.Job, c jobstore.Counts, chunks, blobs int) error {
	allDone, err := cfg.Store.FinishEnqueue(ctx, job.ID, c, chunks, blobs)
	if err != nil {
		return err
	}
	if !allDone {
		return nil
	}
	_, err = tasks.Enqueue(ctx, cfg.Client, tasks.NewFinalize(tasks.Finalize{Job: job.ID, Gen: job.Gen}))
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

// input is an opened list and what identifies it.
type input struct {
	r           io.Reader
	name        string
	stream      bool   // stdin or a Reader: no file to identify it by
	jobID       string // the derived job ID
	fingerprint string
	io.Closer
}

func openInput(cfg Config, now time.Time) (*input, error) {
	opts := fmt.Sprintf("column=%q region=%s chunk=%d version=%s", cfg.Column, cfg.DefaultRegion, cfg.ChunkSize, codeVersion())
	in := &input{name: cmp.Or(cfg.Input, "-"), Closer: io.NopCloser(nil)}
	switch {
	case cfg.Reader != nil || cfg.Input == "-":
		in.r, in.stream = cfg.Reader, true
		if in.r == nil {
			in.r = cfg.Stdin
		}
		// A stream cannot be told apart from another one by its name: the
		// fingerprint covers the options only, and Run compares what the
		// stream rebuilds with what the job stored (see earlier).
		in.fingerprint = hexSum("stream", in.name, opts)
		in.jobID = "stdin-" + now.UTC().Format("20060102-150405") + "-" + randHex(4)
		return in, nil
	}
	f, err := os.Open(cfg.Input)
	if err != nil {
		return nil, fmt.Errorf("%w: opening input: %w", ErrConfig, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening input: %w", err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%w: input %s is a folder", ErrConfig, cfg.Input)
	}
	abs, _ := filepath.Abs(cfg.Input)
	in.r, in.Closer = f, f
	in.fingerprint = hexSum("file", abs, strconv.FormatInt(fi.Size(), 10), strconv.FormatInt(fi.ModTime().UnixNano(), 10), opts)
	in.jobID = jobName(cfg.Input) + "-" + fi.ModTime().UTC().Format("20060102") + "-" + in.fingerprint[:8]
	return in, nil
}

// jobName makes the start of a derived job ID from a file name: its base
// name without extensions, in the job ID alphabet.
func jobName(path string) string {
	base := filepath.Base(path)
	if i := strings.IndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "list"
	}
	return string(b)
}

func hexSum(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// codeVersion changes when chunks could come out differently from the same
// input: the enqueue rules or the phone number metadata. A job resumed by
// another version would mix chunks of both, so it is refused instead.
func codeVersion() string {
	v := "enqueue/2" // 2: a lone CR ends a line, unescaped quotes in quoted fields are text
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nyaruka/phonenumbers" {
				v += " phonenumbers/" + d.Version
			}
		}
	}
	return v
}

func toStore(c Counts) jobstore.Counts {
	return jobstore.Counts{Rows: c.Rows, Valid: c.Valid, Invalid: c.Invalid, Missing: c.Missing,
		Malformed: c.Malformed, Duplicates: c.Duplicates}
}

func fromStore(c jobstore.Counts, chunks int) Counts {
	return Counts{Rows: c.Rows, Valid: c.Valid, Invalid: c.Invalid, Missing: c.Missing,
		Malformed: c.Malformed, Duplicates: c.Duplicates, Chunks: chunks}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// sink hands chunks and blobs of rejects to the writer and writes the
// rejects file. It runs on the pipeline's ordering goroutine.
type sink struct {
	w     *writer
	file  io.Writer
	blob  bytes.Buffer
	csv   *csv.Writer
	blobs int
	rec   [3]string
}

func (s *sink) Chunk(ctx context.Context, index int, recs []Record) error {
	// A chunk stored and enqueued by an earlier run goes on too: the
	// writer compares it with the stored one.
	entries := make([]jobstore.Entry, len(recs))
	for i, r := range recs {
		entries[i] = jobstore.Entry{Row: r.Row, Number: r.Number, Input: r.Input}
	}
	return s.w.send(ctx, op{chunk: index, entries: entries})
}

func (s *sink) Reject(ctx context.Context, r Record) error {
	s.rec = [3]string{strconv.FormatInt(r.Row, 10), r.Input, r.Reason}
	if err := s.csv.Write(s.rec[:]); err != nil {
		return err
	}
	if s.blob.Len() < rejectBlobSize-4096 {
		return nil
	}
	return s.flushRejects(ctx)
}

// flushRejects writes the pending rejects to the file and stores them as the
// next blob. Blobs are cut at the same rows on every run of a job, so a
// resumed run overwrites each with the same content.
func (s *sink) flushRejects(ctx context.Context) error {
	s.csv.Flush()
	if s.blob.Len() == 0 {
		return s.csv.Error()
	}
	b := bytes.Clone(s.blob.Bytes())
	s.blob.Reset()
	if _, err := s.file.Write(b); err != nil {
		return err
	}
	k := s.blobs
	s.blobs++
	return s.w.send(ctx, op{chunk: -1, blob: k, data: b})
}

// op is one write for the writer goroutine: a chunk (chunk >= 0) or a blob
// of rejects.
type op struct {
	chunk   int
	entries []jobstore.Entry
	blob    int
	data    []byte
}

// writer does the Redis writes on its own goroutine, so Redis latency
// overlaps parsing instead of stalling it. The queue is short: when Redis
// is slower than parsing, the pipeline waits rather than buffering the list.
type writer struct {
	cfg      Config
	job      *jobstore.Job
	prev     *earlier // what earlier runs stored; nil on a first run
	ops      chan op
	ctx      context.Context // cancelled when the writer fails
	cancel   context.CancelCauseFunc
	wg       sync.WaitGroup
	enqueued int // read after close
	err      error
	closed   atomic.Bool
}

func newWriter(ctx context.Context, cfg Config, job *jobstore.Job, prev *earlier) *writer {
	w := &writer{cfg: cfg, job: job, prev: prev, ops: make(chan op, 8)}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	w.wg.Add(1)
	go w.run()
	return w
}

func (w *writer) send(ctx context.Context, o op) error {
	select {
	case w.ops <- o:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (w *writer) run() {
	defer w.wg.Done()
	for o := range w.ops {
		if w.err != nil {
			continue // drain
		}
		if err := w.do(o); err != nil {
			w.err = err
			w.cancel(err)
		}
	}
}

func (w *writer) do(o op) error {
	ctx, id := w.ctx, w.job.ID
	if w.prev != nil {
		var stored bool
		var err error
		if o.chunk < 0 {
			stored, err = w.prev.blob(o.blob, o.data)
		} else {
			stored, err = w.prev.chunk(ctx, o.chunk, o.entries)
		}
		if err != nil || stored {
			return err
		}
	}
	if o.chunk < 0 {
		return w.cfg.Store.PutRejects(ctx, id, o.blob, o.data)
	}
	if err := w.cfg.Store.PutChunk(ctx, id, o.chunk, o.entries); err != nil {
		return err
	}
	// Only the chunk an earlier run was killed on can have been enqueued
	// past the mark, and if a worker settled it since, its task is gone
	// (retention 0): enqueuing it again would run it twice.
	settled := false
	if w.prev != nil {
		var err error
		if settled, err = w.cfg.Store.ChunkDone(ctx, id, o.chunk); err != nil {
			return err
		}
	}
	if !settled {
		t := tasks.Chunk{Job: id, Chunk: o.chunk, Gen: w.job.Gen}
		_, err := w.cfg.Client.EnqueueContext(ctx, tasks.NewChunk(t))
		switch {
		case err == nil:
			w.enqueued++
		case errors.Is(err, asynq.ErrTaskIDConflict):
			// Enqueued by the run that was killed before it could
			// record so: the task is there, once.
		default:
			return fmt.Errorf("enqueueing task %s: %w", t.ID(), err)
		}
	}
	return w.cfg.Store.SetChunksEnqueued(ctx, id, o.chunk+1)
}

// close waits for the queued writes and returns the first error.
func (w *writer) close() error {
	if w.closed.Swap(true) {
		return w.err
	}
	close(w.ops)
	w.wg.Wait()
	w.cancel(nil)
	return w.err
}
