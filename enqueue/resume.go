package enqueue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
)

// earlier is what earlier runs of a job stored, for a run that reads the
// input again: a resume, or the check of a stream job already enqueued. The
// chunks and blobs of rejects it rebuilds must be the stored ones, or the
// input is another one, and the run is refused rather than mix two lists in
// one job (with --input - the fingerprint cannot tell them apart).
//
// Comparing what is stored is enough. The writer makes its writes in the
// order the pipeline hands them over (row order) and stops at the first
// failure, so what the runs of one input stored is a prefix of that order:
// chunks [0, mark) (job.ChunksEnqueued), maybe chunk mark (stored, perhaps
// enqueued, but not recorded: the run died in between), blobs [0, K), and
// nothing after the first write it did not make. A run of the same input
// therefore finds every stored chunk and blob equal to its own; makes no blob
// past K before it has seen the last stored chunk; makes no chunk past the
// stored ones before it has seen blob K-1; and has at least the stored chunks
// and blobs. Each check is made before the write that depends on it, so a
// refused run stores nothing new: the job can still be resumed with the
// right input.
//
// It costs a GET per stored chunk and blob, on resume only. The methods are
// called by the writer's goroutine, then by Run's once the writer is closed.
type earlier struct {
	store    *jobstore.Store
	job      string
	mark     int              // chunks [0, mark) are enqueued
	atMark   []jobstore.Entry // chunk mark, when stored
	chunks   int              // chunks stored: mark, +1 with atMark
	enqueued bool             // the whole job is stored: nothing may be written
	seen     int              // chunks compared or written so far
	nblob    int              // index of the next blob of rejects

	// The stored blobs, in order, read as they are needed.
	next    func() ([]byte, bool)
	stop    func()
	nextErr error
	peeked  []byte
	peekOK  bool
	hasPeek bool
}

// resumeOf returns what earlier runs stored of job, in state Enqueuing.
func resumeOf(ctx context.Context, store *jobstore.Store, job *jobstore.Job) (*earlier, error) {
	e := &earlier{store: store, job: job.ID, mark: job.ChunksEnqueued, chunks: job.ChunksEnqueued}
	entries, err := store.Chunk(ctx, job.ID, e.mark)
	switch {
	case err == nil:
		e.atMark, e.chunks = entries, e.chunks+1
	case !errors.Is(err, jobstore.ErrNotFound):
		return nil, err
	}
	e.pull(ctx, math.MaxInt)
	return e, nil
}

// pull starts reading the stored blobs, up to n of them. ctx outlives the
// writer's, which is cancelled when it closes.
func (e *earlier) pull(ctx context.Context, n int) {
	e.next, e.stop = iter.Pull(func(yield func([]byte) bool) {
		errStop := errors.New("stop")
		err := e.store.Rejects(ctx, e.job, n, func(b []byte) error {
			if !yield(b) {
				return errStop
			}
			return nil
		})
		if err != errStop && (e.enqueued || !errors.Is(err, redis.Nil)) {
			e.nextErr = err // a missing blob ends those of a job being enqueued
		}
	})
}

// close stops reading the stored blobs; a nil earlier does nothing.
func (e *earlier) close() {
	if e != nil {
		e.stop()
	}
}

// peek returns stored blob e.nblob, if there is one.
func (e *earlier) peek() ([]byte, bool, error) {
	if !e.hasPeek {
		e.peeked, e.peekOK = e.next()
		e.hasPeek = true
	}
	return e.peeked, e.peekOK, e.nextErr
}

// mismatch is the error of a run refused for another input.
func (e *earlier) mismatch(format string, args ...any) error {
	return fmt.Errorf("%w: job %s: %w: the input differs from the one the job was started with (%s); "+
		"enqueue it as a new job under another ID", ErrConfig, e.job, jobstore.ErrSpecMismatch, fmt.Sprintf(format, args...))
}

// chunk checks chunk i against the stored one. stored says it was stored
// and enqueued before: there is nothing to write.
func (e *earlier) chunk(ctx context.Context, i int, entries []jobstore.Entry) (stored bool, err error) {
	if i != e.seen {
		return false, fmt.Errorf("job %s: chunk %d out of order (want %d)", e.job, i, e.seen)
	}
	e.seen++
	if i < e.mark {
		got, err := e.store.Chunk(ctx, e.job, i)
		if errors.Is(err, jobstore.ErrNotFound) {
			return false, fmt.Errorf("job %s: chunk %d, stored by an earlier run, is gone from Redis: %w", e.job, i, err)
		}
		if err != nil {
			return false, err
		}
		if !slices.Equal(got, entries) {
			return false, e.mismatch("valid numbers of chunk %d", i)
		}
		return true, nil
	}
	if e.enqueued {
		return false, e.mismatch("more valid numbers: %d chunks or more, the job has %d", i+1, e.mark)
	}
	// A chunk to write: every stored blob must have come before it.
	if _, ok, err := e.peek(); err != nil || ok {
		if err != nil {
			return false, err
		}
		return false, e.mismatch("rejects block %d comes after chunk %d", e.nblob, i)
	}
	if i == e.mark && e.atMark != nil && !slices.Equal(e.atMark, entries) {
		return false, e.mismatch("valid numbers of chunk %d", i)
	}
	return false, nil
}

// blob checks blob k of rejects against the stored one. stored says it is
// stored already: there is nothing to write.
func (e *earlier) blob(k int, data []byte) (stored bool, err error) {
	if k != e.nblob {
		return false, fmt.Errorf("job %s: rejects block %d out of order (want %d)", e.job, k, e.nblob)
	}
	got, ok, err := e.peek()
	if err != nil {
		return false, err
	}
	e.nblob++
	e.hasPeek = false
	switch {
	case ok && !bytes.Equal(got, data):
		return false, e.mismatch("rejects block %d", k)
	case ok:
		return true, nil
	case e.enqueued:
		return false, e.mismatch("more rejects: %d blocks or more, the job has %d", k+1, k)
	case e.seen < e.chunks:
		return false, e.mismatch("rejects block %d comes before chunk %d", k, e.seen)
	}
	return false, nil
}

// end checks, once the input is read, that it held everything stored.
func (e *earlier) end(chunks int) error {
	if chunks < e.chunks {
		return e.mismatch("fewer valid numbers: %d chunks, the job has %d", chunks, e.chunks)
	}
	if _, ok, err := e.peek(); err != nil || ok {
		if err != nil {
			return err
		}
		return e.mismatch("fewer rejects: %d blocks, the job has more", e.nblob)
	}
	return nil
}

// verifyEnqueued reads the input of a job already enqueued again and checks
// that it rebuilds the stored job. It writes nothing.
func verifyEnqueued(ctx context.Context, cfg Config, job *jobstore.Job, rd *listreader.Reader) error {
	e := &earlier{store: cfg.Store, job: job.ID, mark: job.Chunks, chunks: job.Chunks, enqueued: true}
	e.pull(ctx, job.RejectBlobs)
	defer e.close()
	cfg.Logger.Info("already enqueued: checking that the input is the same", "job", job.ID)
	w := newWriter(ctx, cfg, job, e)
	defer w.close()
	counts, _, err := feed(ctx, cfg, rd, w, io.Discard, nil)
	if err != nil {
		return err
	}
	if err := e.end(counts.Chunks); err != nil {
		return err
	}
	if counts.Counts != job.Counts {
		return e.mismatch("counts %+v, the job has %+v", counts.Counts, job.Counts)
	}
	return nil
}
