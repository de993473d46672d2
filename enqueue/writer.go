package enqueue

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/outfiles"
	"github.com/capcheck/capcheck/tasks"
)

// rejectBlobSize is the size a blob of rejects grows to before it is stored.
const rejectBlobSize = 64 << 10

// feed runs the pipeline on rd into w, writes the rejects to file, closes w
// and returns the counts, the number of blobs of rejects and the error that
// stopped it, if any.
func feed(ctx context.Context, cfg Config, rd *listreader.Reader, w *writer, file io.Writer, progress func(int64)) (Counts, int, error) {
	s := &sink{w: w, file: file, memory: cfg.Memory != nil}
	s.csv = csv.NewWriter(&s.blob)
	if s.memory {
		s.fresh = newFreshness(w.job.CreatedAt, cfg.RecheckAfter, cfg.ForgetAfter)
		if w.prev != nil {
			s.decided = &decisions{store: cfg.Store, job: w.job.ID}
		}
	}
	pcfg := PipelineConfig{DefaultRegion: cfg.DefaultRegion, ChunkSize: cfg.ChunkSize, Workers: cfg.Workers,
		Progress: progress, Memory: cfg.Memory, Started: cfg.Started}
	counts, err := Process(w.ctx, rd, pcfg, s)
	if err == nil {
		err = s.flushRejects(w.ctx)
	}
	if err == nil && s.memory {
		// The numbers answered after the last chunk.
		err = w.send(w.ctx, op{chunk: counts.Chunks, tail: true,
			cached: jobstore.CachedBlob{Through: counts.Rows, Numbers: s.cached}})
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

// sink hands chunks and blobs of rejects to the writer and writes the
// rejects file. It runs on the pipeline's ordering goroutine.
type sink struct {
	w     *writer
	file  io.Writer
	blob  bytes.Buffer
	csv   *csv.Writer
	blobs int
	rec   [3]string

	memory  bool                    // the job reads the capability memory
	fresh   freshness               // a remembered answer good enough not to send
	decided *decisions              // what earlier runs decided; nil on a first run
	cached  []jobstore.CachedNumber // answered since the last chunk
}

func (s *sink) Chunk(ctx context.Context, index int, recs []Record) error {
	// A chunk stored and enqueued by an earlier run goes on too: the
	// writer compares it with the stored one.
	entries := make([]jobstore.Entry, len(recs))
	for i, r := range recs {
		entries[i] = jobstore.Entry{Row: r.Row, Number: r.Number, Input: r.Input}
	}
	o := op{chunk: index, entries: entries}
	if s.memory {
		o.before = make([]capstore.Record, len(recs))
		for i, r := range recs {
			o.before[i] = r.Known
		}
		o.cached = jobstore.CachedBlob{Through: recs[len(recs)-1].Row, Numbers: s.cached}
		s.cached = s.w.spare(len(s.cached))
	}
	if index > 0 {
		return s.w.send(ctx, o)
	}
	// The pipeline waits for the first chunk to be stored and its task
	// enqueued and announced: until then it reads no further (see
	// Process), so that nothing competes with it.
	o.done = make(chan struct{})
	if err := s.w.send(ctx, o); err != nil {
		return err
	}
	select {
	case <-o.done:
	case <-ctx.Done():
	}
	return context.Cause(ctx)
}

// Cache takes a number as answered when the memory's answer is fresh
// enough; for the rows an earlier run of the job decided, it decides as
// that run did.
func (s *sink) Cache(ctx context.Context, r *Record) (bool, error) {
	if !s.memory {
		return false, nil
	}
	if s.decided != nil {
		covered, known, cached, err := s.decided.find(ctx, r.Row)
		if err != nil {
			return false, err
		}
		if covered {
			if cached {
				r.Known = known
				s.cached = append(s.cached, jobstore.CachedNumber{Entry: jobstore.Entry{Row: r.Row, Number: r.Number, Input: r.Input}, Known: known})
			}
			return cached, nil
		}
	}
	if !s.fresh.fresh(&r.Known) {
		return false, nil
	}
	s.cached = append(s.cached, jobstore.CachedNumber{Entry: jobstore.Entry{Row: r.Row, Number: r.Number, Input: r.Input}, Known: r.Known})
	return true, nil
}

func (s *sink) Reject(ctx context.Context, r Record) error {
	s.rec = [3]string{strconv.FormatInt(r.Row, 10), outfiles.Cell(r.Input), outfiles.Cell(r.Reason)}
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

// op is one write for the writer goroutine: a chunk (chunk >= 0), with
// the numbers the memory answered before it and what it held of the
// chunk's; the numbers answered after the last chunk (tail); or a blob of
// rejects.
type op struct {
	chunk   int
	entries []jobstore.Entry
	before  []capstore.Record
	cached  jobstore.CachedBlob
	tail    bool
	blob    int
	data    []byte
	done    chan struct{} // when set, closed once the op is done (or failed)
}

// writer does the Redis writes on its own goroutine, so Redis latency
// overlaps parsing instead of stalling it. The queue is short: when Redis
// is slower than parsing, the pipeline waits rather than buffering the list.
type writer struct {
	cfg      Config
	job      *jobstore.Job
	prev     *earlier // what earlier runs stored; nil on a first run
	ops      chan op
	free     chan []jobstore.CachedNumber // cached numbers' slices stored, for reuse
	ctx      context.Context              // cancelled when the writer fails
	cancel   context.CancelCauseFunc
	wg       sync.WaitGroup
	enqueued int // read after close
	// announced is when enqueued tasks were last announced to idle
	// workers, unannounced whether some were enqueued since.
	announced   time.Time
	unannounced bool
	err         error
	closed      atomic.Bool
}

func newWriter(ctx context.Context, cfg Config, job *jobstore.Job, prev *earlier) *writer {
	w := &writer{cfg: cfg, job: job, prev: prev, ops: make(chan op, 8),
		free: make(chan []jobstore.CachedNumber, 10)}
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

// spare returns an empty slice for the cached numbers up to the next
// chunk: one the writer is done with, or a new one about as large as the
// last (most numbers are cached, and growing the slice was much of their
// cost).
func (w *writer) spare(last int) []jobstore.CachedNumber {
	select {
	case c := <-w.free:
		return c[:0]
	default:
		return make([]jobstore.CachedNumber, 0, last+last/4)
	}
}

func (w *writer) run() {
	defer w.wg.Done()
	for o := range w.ops {
		if w.err == nil { // else drain
			if err := w.do(o); err != nil {
				w.err = err
				w.cancel(err)
			}
		}
		if o.done != nil {
			close(o.done)
		}
		if cap(o.cached.Numbers) > 0 {
			select {
			case w.free <- o.cached.Numbers:
			default:
			}
		}
	}
	if w.unannounced {
		tasks.Announce(w.ctx, w.cfg.Store.Redis())
	}
}

// announceEvery spaces the announcements of chunk tasks: one wakes every
// idle worker, and each takes tasks until the queue is empty.
const announceEvery = 20 * time.Millisecond

// announce tells idle workers about the tasks just enqueued: the first at
// once, later ones at most every announceEvery (the last when the writer
// closes).
func (w *writer) announce() {
	w.unannounced = true
	if now := time.Now(); now.Sub(w.announced) >= announceEvery {
		tasks.Announce(w.ctx, w.cfg.Store.Redis())
		w.announced, w.unannounced = now, false
	}
}

func (w *writer) do(o op) error {
	ctx, id := w.ctx, w.job.ID
	if o.tail {
		if w.prev != nil && w.prev.enqueued {
			return nil // a check: nothing is written
		}
		return w.cfg.Store.PutCached(ctx, id, o.chunk, o.cached, nil)
	}
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
	// The decisions of the memory first: a run that resumes after the
	// chunk was stored makes the same ones.
	if o.before != nil {
		if err := w.cfg.Store.PutCached(ctx, id, o.chunk, o.cached, o.before); err != nil {
			return err
		}
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
			w.announce()
		case errors.Is(err, asynq.ErrTaskIDConflict):
			// Enqueued by the run that was killed before it could
			// record so: the task is there, once.
		default:
			return fmt.Errorf("enqueueing task %s: %w", t.ID(), err)
		}
	}
	if err := w.cfg.Store.SetChunksEnqueued(ctx, id, o.chunk+1); err != nil {
		return err
	}
	if w.cfg.afterChunk != nil {
		w.cfg.afterChunk(o.chunk)
	}
	return nil
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
