package jobstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// jobKeys returns every key of job j.
func jobKeys(j *Job) []string {
	id, k := j.ID, j.GroupChunks
	keys := []string{jobKey(id), doneKey(id), rejectsKey(id), rpsKey(id, -1), seriesKey(id, -1), reportKey(id),
		// capstore's callback counts of the job
		jobKey(id) + ":cb", jobKey(id) + ":cbgot", jobKey(id) + ":cbraw"}
	for g := range j.groups() {
		keys = append(keys, groupKey(id, g), rpsKey(id, g), seriesKey(id, g))
	}
	for i := range j.Chunks {
		keys = append(keys, chunkKey(id, i), oldChunkKey(id, i), outKey(id, k, i), settledKey(id, k, i),
			cachedKey(id, i), beforeKey(id, i))
	}
	keys = append(keys, cachedKey(id, j.Chunks))
	for b := range j.RejectBlobs {
		keys = append(keys, rejectsBlobKey(id, b))
	}
	return keys
}

// Expire makes every key of a finished job expire after ttl, so that Redis
// does not fill up night after night (about 25 bytes per number). A re-drive
// makes them permanent again until the job finishes once more.
func (s *Store) Expire(ctx context.Context, id string, ttl time.Duration) error {
	j, err := s.Head(ctx, id) // the keys need the record alone, not the groups' counts
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
	keys := jobKeys(j)
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
