package capstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// recallBuckets is how many buckets one pipelined round trip of Recall
// reads.
const recallBuckets = 4096

// Recall reads the remembered record of each number into out[i] (a zero
// Record when the memory holds none, or the number is out of range). It
// reads the buckets of the numbers, each once however many of its numbers
// are asked, recallBuckets per round trip (one MGET, or one per hash tag
// on a Cluster), and searches them. It reads records as they are;
// [Record.Stale] tells which are past the memory's horizon.
func (s *Store) Recall(ctx context.Context, numbers []uint64, out []Record) error {
	if len(out) < len(numbers) {
		return fmt.Errorf("recalling %d numbers into %d records", len(numbers), len(out))
	}
	clear(out[:len(numbers)])
	// Sorted by bucket then position: bucket<<32 | position.
	order := make([]uint64, 0, len(numbers))
	for i, n := range numbers {
		if n == 0 || n > MaxNumber {
			continue
		}
		order = append(order, mix(n)&(memBuckets-1)<<32|uint64(i))
	}
	slices.Sort(order)
	var bs []uint32
	for len(order) > 0 {
		bs = bs[:0]
		end := 0
		for ; end < len(order); end++ {
			b := uint32(order[end] >> 32)
			if len(bs) == 0 || bs[len(bs)-1] != b {
				if len(bs) == recallBuckets {
					break
				}
				bs = append(bs, b)
			}
		}
		vals, err := s.readBuckets(ctx, bs)
		if err != nil {
			return fmt.Errorf("recalling capabilities: %w", err)
		}
		k := -1
		for j, o := range order[:end] {
			if j == 0 || o>>32 != order[j-1]>>32 {
				k++
			}
			i := uint32(o)
			out[i] = search(vals[k], memField(mix(numbers[i])))
		}
		order = order[end:]
	}
	return nil
}

// readBuckets reads buckets in one pipelined round trip, one MGET per hash
// tag on a Cluster (all its keys in one slot), one for all off it, and
// returns each bucket's records ("" when none).
func (s *Store) readBuckets(ctx context.Context, bs []uint32) ([]string, error) {
	type read struct {
		args []any // MGET and the keys
		pos  []int // in bs
		cmd  *redis.StringSliceCmd
	}
	// The keys, one string cut into each: one allocation for all.
	buf := make([]byte, 0, len(bs)*s.memKeyMax())
	ends := make([]int, len(bs))
	for i, b := range bs {
		buf = s.appendMemKey(buf, b)
		ends[i] = len(buf)
	}
	keys := string(buf)
	var reads []*read
	byTag := map[uint32]*read{}
	for i, b := range bs {
		t := uint32(0)
		if s.cluster {
			t = b & (tags - 1)
		}
		r := byTag[t]
		if r == nil {
			n := len(bs) // off a Cluster, one read of all
			if s.cluster {
				n = 0
			}
			r = &read{args: append(make([]any, 0, 1+n), "mget"), pos: make([]int, 0, n)}
			byTag[t] = r
			reads = append(reads, r)
		}
		start := 0
		if i > 0 {
			start = ends[i-1]
		}
		r.args = append(r.args, keys[start:ends[i]])
		r.pos = append(r.pos, i)
	}
	// A StringSliceCmd reads each bucket as a string ("" when none), with
	// no boxing of it in an interface as MGet's SliceCmd does.
	pipe := s.rdb.Pipeline()
	for _, r := range reads {
		r.cmd = redis.NewStringSliceCmd(ctx, r.args...)
		_ = pipe.Process(ctx, r.cmd)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	for _, r := range reads {
		if n := len(r.cmd.Val()); n != len(r.pos) {
			return nil, fmt.Errorf("MGET of %d buckets answered %d", len(r.pos), n)
		}
	}
	if len(reads) == 1 {
		return reads[0].cmd.Val(), nil
	}
	out := make([]string, len(bs))
	for _, r := range reads {
		for j, v := range r.cmd.Val() {
			out[r.pos[j]] = v
		}
	}
	return out, nil
}
