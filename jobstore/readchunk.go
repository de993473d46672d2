package jobstore

import (
	"context"
	"errors"

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
