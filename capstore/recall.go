package capstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// recallBuckets is how many buckets one pipelined round trip of Recall
// reads.
const recallBuckets = 4096

// Recall reads the remembered record of each number into out[i] (a zero
// Record when the memory holds none, or the number is out of range). The
// numbers are grouped by bucket, one HMGET per bucket, recallBuckets
// buckets per pipelined round trip: a large batch reads each bucket once
// however many of its numbers it asks for. It reads records as they are;
// [Record.Stale] tells which are past the memory's horizon.
func (s *Store) Recall(ctx context.Context, numbers []uint64, out []Record) error {
	if len(out) < len(numbers) {
		return fmt.Errorf("recalling %d numbers into %d records", len(numbers), len(out))
	}
	clear(out[:len(numbers)])
	// Sorted by bucket then position: bucket<<32 | position.
	order := make([]uint64, 0, len(numbers))
	fields := make([]string, len(numbers))
	for i, n := range numbers {
		if n == 0 || n > MaxNumber {
			continue
		}
		sl := slotOf(n)
		fields[i] = sl.field
		order = append(order, uint64(sl.bucket)<<32|uint64(i))
	}
	slices.Sort(order)
	for len(order) > 0 {
		var err error
		if order, err = s.recallBatch(ctx, order, numbers, fields, out); err != nil {
			return fmt.Errorf("recalling capabilities: %w", err)
		}
	}
	return nil
}

// recallBatch reads the first recallBuckets buckets of order in one
// pipeline and returns the rest of order.
func (s *Store) recallBatch(ctx context.Context, order []uint64, numbers []uint64, fields []string, out []Record) ([]uint64, error) {
	pipe := s.rdb.Pipeline()
	type read struct {
		cmd *redis.SliceCmd
		pos []uint64 // entries of order: the positions asked, in args order
	}
	reads := make([]read, 0, min(len(order), recallBuckets))
	i := 0
	for i < len(order) && len(reads) < recallBuckets {
		b := uint32(order[i] >> 32)
		j := i
		args := make([]any, 0, 4)
		args = append(args, "hmget", s.capKey(b))
		for ; j < len(order) && uint32(order[j]>>32) == b; j++ {
			args = append(args, fields[uint32(order[j])])
		}
		cmd := redis.NewSliceCmd(ctx, args...)
		_ = pipe.Process(ctx, cmd)
		reads = append(reads, read{cmd: cmd, pos: order[i:j]})
		i = j
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for _, r := range reads {
		vals, err := r.cmd.Result()
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // nil: not remembered
			}
			p := uint32(r.pos[k])
			if out[p], err = unpackRecord(str); err != nil {
				return nil, fmt.Errorf("number %s: %w", Digits(numbers[p]), err)
			}
		}
	}
	return order[i:], nil
}
