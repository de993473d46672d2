package capstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Snapshot reads the memory a bucket at a time and keeps what it read: a
// bucket is read once, whole, the first time a number of it is asked (and
// every bucket in the background from the first call on). A large list
// thus costs Redis at most one command per bucket (131,072 in all) instead
// of one per number, which is what makes reading the memory cheap at
// enqueue; the heap holds the buckets read, about 12 bytes a remembered
// number. It answers as the memory was when each bucket was read. It is
// safe for concurrent use, and reads take no lock.
type Snapshot struct {
	s        *Store
	prefetch sync.Once
	// buckets[b] is bucket b's records packed (per number its 5-byte
	// field, the record's length in 1 byte, the record); nil until read.
	buckets []atomic.Pointer[string]
}

// Snapshot returns a new, empty snapshot of the memory.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{s: s, buckets: make([]atomic.Pointer[string], buckets)}
}

// Recall is Store.Recall, from the buckets read so far and those it reads.
// The first call also starts reading every bucket in the background, in
// large pipelines, until its ctx ends: a large list soon finds every
// bucket read, while a small one ends (and cancels ctx) before much is.
func (sn *Snapshot) Recall(ctx context.Context, numbers []uint64, out []Record) error {
	if len(out) < len(numbers) {
		return fmt.Errorf("recalling %d numbers into %d records", len(numbers), len(out))
	}
	sn.prefetch.Do(func() { go sn.readAll(ctx) })
	// A number's slot as its mixed value: bucket in the low bits, field
	// above (slotOf without the field's string).
	mixed := make([]uint64, len(numbers))
	var missing []uint32
	for i, n := range numbers {
		if n == 0 || n > MaxNumber {
			continue
		}
		mixed[i] = mix(n)
		if b := uint32(mixed[i] & (buckets - 1)); sn.buckets[b].Load() == nil {
			missing = append(missing, b)
		}
	}
	slices.Sort(missing)
	if err := sn.read(ctx, slices.Compact(missing), recallBuckets); err != nil {
		return fmt.Errorf("recalling capabilities: %w", err)
	}
	for i, n := range numbers {
		out[i] = Record{}
		if n == 0 || n > MaxNumber {
			continue
		}
		x := mixed[i]
		v, ok := find(*sn.buckets[uint32(x&(buckets-1))].Load(), x>>bucketBits)
		if !ok {
			continue
		}
		r, err := unpackRecord(v)
		if err != nil {
			return fmt.Errorf("number %s: %w", Digits(n), err)
		}
		out[i] = r
	}
	return nil
}

// find returns the record of a field (its 40 bits, as slotOf writes them
// big-endian) in a packed bucket.
func find(packed string, field uint64) (string, bool) {
	for len(packed) >= 6 {
		l := int(packed[5])
		if len(packed) < 6+l {
			return "", false
		}
		f := uint64(packed[0])<<32 | uint64(packed[1])<<24 | uint64(packed[2])<<16 | uint64(packed[3])<<8 | uint64(packed[4])
		if f == field {
			return packed[6 : 6+l], true
		}
		packed = packed[6+l:]
	}
	return "", false
}

// prefetchBuckets is how many buckets a pipeline of readAll reads.
const prefetchBuckets = 16384

// readAll reads every bucket not read yet, in order, until ctx ends. A
// failure is left to the calls that need the bucket.
func (sn *Snapshot) readAll(ctx context.Context) {
	for first := uint32(0); first < buckets && ctx.Err() == nil; first += prefetchBuckets {
		var todo []uint32
		for b := first; b < first+prefetchBuckets; b++ {
			if sn.buckets[b].Load() == nil {
				todo = append(todo, b)
			}
		}
		if sn.read(ctx, todo, prefetchBuckets) != nil {
			return
		}
	}
}

// read reads buckets, per pipelined round trip at most batch, and keeps
// them.
func (sn *Snapshot) read(ctx context.Context, buckets []uint32, batch int) error {
	for len(buckets) > 0 {
		n := min(len(buckets), batch)
		pipe := sn.s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, n)
		for i, b := range buckets[:n] {
			cmds[i] = pipe.HGetAll(ctx, sn.s.capKey(b))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		var buf []byte
		for i, c := range cmds {
			kv, err := c.Result()
			if err != nil {
				return err
			}
			buf = buf[:0]
			for f, v := range kv {
				if len(f) != 5 || len(v) > 255 {
					continue // not a record
				}
				buf = append(buf, f...)
				buf = append(buf, byte(len(v)))
				buf = append(buf, v...)
			}
			packed := string(buf)
			sn.buckets[buckets[i]].Store(&packed)
		}
		buckets = buckets[n:]
	}
	return nil
}
