package jobstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// ErrNothingToRedrive is returned by Redrive for a job with no failed numbers.
var ErrNothingToRedrive = errors.New("no failed numbers to retry")

var beginRedriveScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'done' or st == 'failed' then
  local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
  redis.call('HSET', KEYS[1], 'state', 'enqueuing', 'redrive', '1')
  redis.call('HDEL', KEYS[1], 'abort', 'finished_at')
  return gen
end
if st == 'enqueuing' and redis.call('HGET', KEYS[1], 'redrive') == '1' then
  return tonumber(redis.call('HGET', KEYS[1], 'gen'))
end
return -1`)

// Redrive prepares a finished job to send its failed numbers again: it drops
// their failed outcomes (and the bisection markers, whose attempts no longer
// count), bumps the generation and returns it with the chunks to enqueue again
// as tasks of that generation. Numbers accepted or rejected are kept. An
// interrupted Redrive can be called again. The job is left Enqueuing: the
// caller enqueues the chunks, then calls FinishRedrive.
func (s *Store) Redrive(ctx context.Context, id string) (gen int, chunks []int, err error) {
	j, err := s.Job(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	if j.State.Finished() && j.Failed == 0 {
		return 0, nil, fmt.Errorf("job %s: %w", id, ErrNothingToRedrive)
	}
	if err := s.persist(ctx, j); err != nil {
		return 0, nil, err
	}
	g, err := beginRedriveScript.Run(ctx, s.rdb, []string{jobKey(id)}).Int()
	if err != nil {
		return 0, nil, wrap("re-driving", id, err)
	}
	if g < 0 {
		return 0, nil, fmt.Errorf("job %s is %s: only a finished job can be retried", id, j.State)
	}
	// The groups take the new generation before any outcome is dropped:
	// from then on a task of an earlier one records nothing.
	if err := s.setGroupsGen(ctx, j, g); err != nil {
		return 0, nil, err
	}
	for i := range j.Chunks {
		if _, err := s.redriveChunk(ctx, j, i); err != nil {
			return 0, nil, err
		}
	}
	// Every chunk not done, not only those this call dropped outcomes of: an
	// interrupted Redrive dropped some already, and their tasks may be
	// missing. Enqueueing a task of this generation twice is harmless.
	done, err := s.rdb.SMembers(ctx, doneKey(id)).Result()
	if err != nil {
		return 0, nil, wrap("re-driving", id, err)
	}
	isDone := make(map[string]bool, len(done))
	for _, d := range done {
		isDone[d] = true
	}
	for i := range j.Chunks {
		if !isDone[strconv.Itoa(i)] {
			chunks = append(chunks, i)
		}
	}
	return g, chunks, nil
}

// redriveChunk drops chunk i's failed outcomes and reports how many numbers
// they settled; a chunk with none stays done.
func (s *Store) redriveChunk(ctx context.Context, j *Job, i int) (int, error) {
	id, k := j.ID, j.GroupChunks
	out, settledK, counters := outKey(id, k, i), settledKey(id, k, i), groupKey(id, groupOf(i, k))
	var dropped int
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		raw, err := tx.LRange(ctx, out, 0, -1).Result()
		if err != nil {
			return err
		}
		outs, err := decodeOutcomes(raw)
		if err != nil {
			return err
		}
		var settled []Outcome
		dropped = 0
		for _, o := range outs {
			switch {
			case !o.Redriven():
				settled = append(settled, o)
			case o.Final(): // failed
				dropped += o.Hi - o.Lo
			}
		}
		if dropped == 0 {
			// Splits alone are harmless; keep the list as it is.
			return nil
		}
		// Re-packed: an outcome may take its texts from the list's first.
		keep, err := encodeOutcomes(settled)
		if err != nil {
			return err
		}
		// The done mark goes first (it is in the job's slot, the rest in
		// the chunk's group's): a Redrive interrupted between the two finds
		// the outcomes still to drop, and the chunk among those to enqueue.
		if err := s.rdb.SRem(ctx, doneKey(id), i).Err(); err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, out, settledK)
			if len(keep) > 0 {
				p.RPush(ctx, out, keep...)
			}
			if bits := settledBits(settled); len(bits) > 0 {
				p.Set(ctx, settledK, bits, 0)
			}
			p.HIncrBy(ctx, counters, fFailed, int64(-dropped))
			return nil
		})
		return err
	}, out)
	if err != nil {
		return 0, fmt.Errorf("re-driving job %s chunk %d: %w", id, i, err)
	}
	return dropped, nil
}

var finishRedriveScript = doneScript(`
if redis.call('HGET', KEYS[1], 'state') == 'enqueuing' and redis.call('HGET', KEYS[1], 'redrive') == '1' then
  redis.call('HSET', KEYS[1], 'state', 'enqueued')
  redis.call('HDEL', KEYS[1], 'redrive')
end
if all_done() then return 1 end
return 0`)

// FinishRedrive moves a re-driven job back to Enqueued once its chunk tasks are
// enqueued. Like FinishEnqueue it reports whether every chunk is settled.
func (s *Store) FinishRedrive(ctx context.Context, id string) (bool, error) {
	r, err := finishRedriveScript.Run(ctx, s.rdb, []string{jobKey(id), doneKey(id)}).Int()
	if err != nil {
		return false, wrap("re-driving", id, err)
	}
	return r == 1, nil
}

// settledBits is the settled bitmap of outcomes, in Redis's bit order (offset
// 0 is the high bit of the first byte), to SET in one command.
func settledBits(outcomes []Outcome) []byte {
	var bits []byte
	for _, o := range outcomes {
		for k := max(o.Lo, 0); k < o.Hi; k++ {
			for len(bits) <= k/8 {
				bits = append(bits, 0)
			}
			bits[k/8] |= 0x80 >> (k % 8)
		}
	}
	return bits
}
