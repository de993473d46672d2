package jobstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// jobKeys returns every key of a job of n chunks and rejectBlobs blobs of
// rejects.
func jobKeys(id string, chunks, rejectBlobs int) []string {
	keys := []string{jobKey(id), doneKey(id), rejectsKey(id), rpsKey(id), seriesKey(id), reportKey(id),
		// capstore's callback counts of the job
		jobKey(id) + ":cb", jobKey(id) + ":cbgot", jobKey(id) + ":cbraw"}
	for i := range chunks {
		keys = append(keys, chunkKey(id, i), oldChunkKey(id, i), outKey(id, i), settledKey(id, i),
			cachedKey(id, i), beforeKey(id, i))
	}
	keys = append(keys, cachedKey(id, chunks))
	for k := range rejectBlobs {
		keys = append(keys, rejectsBlobKey(id, k))
	}
	return keys
}

// Expire makes every key of a finished job expire after ttl, so that Redis
// does not fill up night after night (about 25 bytes per number). A re-drive
// makes them permanent again until the job finishes once more.
func (s *Store) Expire(ctx context.Context, id string, ttl time.Duration) error {
	j, err := s.Job(ctx, id)
	if err != nil {
		return err
	}
	return s.eachKey(ctx, j, func(p redis.Pipeliner, k string) { p.Expire(ctx, k, ttl) })
}

// persist removes the expiry that Expire set.
func (s *Store) persist(ctx context.Context, j *Job) error {
	return s.eachKey(ctx, j, func(p redis.Pipeliner, k string) { p.Persist(ctx, k) })
}

// eachKey calls fn for every key of the job in pipelines of a bounded size.
func (s *Store) eachKey(ctx context.Context, j *Job, fn func(redis.Pipeliner, string)) error {
	id := j.ID
	keys := jobKeys(id, j.Chunks, j.RejectBlobs)
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		p := s.rdb.Pipeline()
		for _, k := range keys[:n] {
			fn(p, k)
		}
		if _, err := p.Exec(ctx); err != nil {
			return fmt.Errorf("setting the expiry of job %s: %w", id, err)
		}
		keys = keys[n:]
	}
	return nil
}
