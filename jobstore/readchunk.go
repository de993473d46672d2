package jobstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/capstore"
)

// ChunkRead is what the output files need of a chunk: its entries, its
// outcomes as recorded, what the memory held of its numbers before the
// job (nil when nothing was noted), and the numbers the memory answered that come before its end.
type ChunkRead struct {
	Entries  []Entry
	Outcomes []Outcome
	Before   []capstore.Record
	Cached   CachedBlob
}

// ReadChunk reads chunk i of the job as Chunk, Outcomes, Before and, when
// cached, CachedNumbers do, in one round trip instead of four (finalize
// waited on them: about 1.2 ms a chunk on a loaded host). Past the last
// chunk (i == chunks) there are only cached numbers.
func (s *Store) ReadChunk(ctx context.Context, job string, i, chunks int, cached bool) (ChunkRead, error) {
	var r ChunkRead
	l, err := s.layoutOf(ctx, job)
	if err != nil && !errors.Is(err, errNoJob) {
		return r, err
	}
	var blob, before, cachedBlob *redis.StringCmd
	var outs *redis.StringSliceCmd
	// Each command's answer is read on its own: a key that is not there
	// (redis.Nil) is an answer too.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if i < chunks {
			blob = p.Get(ctx, chunkKey(job, i))
			outs = p.LRange(ctx, outKey(job, l.k, i), 0, -1)
			before = p.Get(ctx, beforeKey(job, i))
		}
		if cached {
			cachedBlob = p.Get(ctx, cachedKey(job, i))
		}
		return nil
	})
	if i < chunks {
		b, err := blob.Bytes()
		if r.Entries, err = s.decodeChunkBlob(ctx, job, i, b, err); err != nil {
			return r, err
		}
		if r.Outcomes, err = decodeOutcomeList(job, i, outs.Val(), outs.Err()); err != nil {
			return r, err
		}
		// Nothing noted is the usual: Before stays nil, not n zero records.
		if b, err := before.Bytes(); !errors.Is(err, redis.Nil) {
			if r.Before, err = decodeBeforeBlob(job, i, len(r.Entries), b, err); err != nil {
				return r, err
			}
		}
	}
	if cached {
		b, err := cachedBlob.Bytes()
		if r.Cached, err = decodeCachedBlob(job, i, b, err); err != nil {
			return r, err
		}
	}
	return r, nil
}

// HeadAndChunk returns the job's record as Head does and the entries of
// chunk i as Chunk does, in one round trip: what a worker reads of a chunk
// before its first request, while it takes the chunk's hold. The record's
// layout of the job's keys is noted as well, so that Outcomes then reads
// only the chunk's list. A job with no record is ErrNotFound (and no
// record), whatever the chunk; a chunk that cannot be read is an error
// with the record, which may say why (an earlier generation's task).
func (s *Store) HeadAndChunk(ctx context.Context, job string, i int) (*Job, []Entry, error) {
	if err := ValidateJobID(job); err != nil {
		return nil, nil, err
	}
	var h *redis.MapStringStringCmd
	var n *redis.IntCmd
	var blob *redis.StringCmd
	// Each command's answer is read on its own (a missing chunk is
	// redis.Nil).
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, jobKey(job))
		n = p.SCard(ctx, doneKey(job))
		blob = p.Get(ctx, chunkKey(job, i))
		return nil
	})
	if err := errors.Join(h.Err(), n.Err()); err != nil {
		return nil, nil, wrap("reading", job, err)
	}
	if len(h.Val()) == 0 {
		return nil, nil, fmt.Errorf("job %s: %w", job, ErrNotFound)
	}
	j := parseJob(h.Val())
	j.ID = job
	j.ChunksDone = int(n.Val())
	j.Counters, j.StartedAt = Counters{}, time.Time{}
	if created, ok := h.Val()[fCreated]; ok {
		s.noteLayout(job, h.Val()[fGroupChunks], created)
	}
	b, err := blob.Bytes()
	entries, err := s.decodeChunkBlob(ctx, job, i, b, err)
	if err != nil {
		return j, nil, err
	}
	return j, entries, nil
}
