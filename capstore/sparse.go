package capstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A memory that holds few numbers (a fresh embedded Redis: what one run
// learned) is cheaper to read by the buckets that exist than by walking all
// 131,072 of them. SCAN walks every key of the database: these are for a
// small database on one server, not for the fleet's Redis.

// presentBuckets returns the memory's buckets that hold records.
func (s *Store) presentBuckets(ctx context.Context) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	prefix := s.prefix + ":cap:{"
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, prefix+"*", 10_000).Result()
		if err != nil {
			return nil, fmt.Errorf("listing the memory's buckets: %w", err)
		}
		for _, k := range keys {
			tag, sub, ok := strings.Cut(strings.TrimPrefix(k, prefix), "}:")
			t, err1 := strconv.ParseUint(tag, 10, 32)
			u, err2 := strconv.ParseUint(sub, 10, 32)
			if ok && err1 == nil && err2 == nil && t < tags && u < buckets>>tagBits {
				out[uint32(u<<tagBits|t)] = true
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// EachSparse is [Store.Each] for a memory that holds few numbers: it reads
// only the buckets that SCAN finds.
func (s *Store) EachSparse(ctx context.Context, fn func(number uint64, r Record) error) error {
	present, err := s.presentBuckets(ctx)
	if err != nil {
		return err
	}
	list := slices.Sorted(maps.Keys(present))
	for len(list) > 0 {
		batch := list[:min(len(list), bucketBatch)]
		list = list[len(batch):]
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(batch))
		for i, b := range batch {
			cmds[i] = pipe.HGetAll(ctx, s.capKey(b))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("reading the memory: %w", err)
		}
		for i, c := range cmds {
			if err := eachField(batch[i], c.Val(), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// RecallSparse is [Store.Recall] for a memory that holds few numbers: it
// asks only for the numbers whose buckets SCAN finds, none when the memory
// is empty.
func (s *Store) RecallSparse(ctx context.Context, numbers []uint64, out []Record) error {
	if len(out) < len(numbers) {
		return fmt.Errorf("recalling %d numbers into %d records", len(numbers), len(out))
	}
	clear(out[:len(numbers)])
	present, err := s.presentBuckets(ctx)
	if err != nil || len(present) == 0 {
		return err
	}
	var pos []int
	var asked []uint64
	for i, n := range numbers {
		if n != 0 && n <= MaxNumber && present[slotOf(n).bucket] {
			pos, asked = append(pos, i), append(asked, n)
		}
	}
	got := make([]Record, len(asked))
	if err := s.Recall(ctx, asked, got); err != nil {
		return err
	}
	for k, i := range pos {
		out[i] = got[k]
	}
	return nil
}
