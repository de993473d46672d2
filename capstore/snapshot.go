package capstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Snapshot reads the memory a bucket at a time and keeps what it read: a
// bucket is read once, whole, the first time a number of it is asked (and
// every bucket in the background from the first call on). A large list
// thus costs Redis at most one command per bucket (131,072 in all) instead
// of one per number, which is what makes reading the memory cheap at
// enqueue; the heap holds the buckets read, 16 bytes a remembered number.
// It answers as the memory was when each bucket was read. It is safe for
// concurrent use, and lookups take no lock.
type Snapshot struct {
	s        *Store
	prefetch sync.Once
	// where[b] locates bucket b's records once read: 1 + the index in
	// reads of the records of the read that read it, << 32 | the offset
	// there of the bucket's count of records, which follow as pairs of
	// field (40 bits, as slotOf writes them big-endian) and value
	// (recordValue). Two loads reach a bucket's records.
	where []atomic.Uint64
	reads []atomic.Pointer[[]uint64]
	nread atomic.Uint32
	// claims[b] is the read that reads bucket b, so that each is read
	// once; cleared again when that read fails.
	claims []atomic.Pointer[fetch]
	// hgetall: the server does not DUMP (miniredis, an ACL) or not in an
	// encoding parseDump knows; buckets are read with HGETALL.
	hgetall atomic.Bool
}

// fetch is one read of buckets; done is closed when it ends.
type fetch struct{ done chan struct{} }

// Snapshot returns a new, empty snapshot of the memory.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{s: s, where: make([]atomic.Uint64, buckets), reads: make([]atomic.Pointer[[]uint64], buckets),
		claims: make([]atomic.Pointer[fetch], buckets)}
}

// Recall is Store.Recall, from the buckets read so far and those it reads.
// The first call to return also starts reading every bucket in the
// background, in large pipelines, until its ctx ends: a large list soon
// finds every bucket read, while a small one ends (and cancels ctx) before
// much is. It starts after the first read, which would otherwise queue
// behind it: the list's first chunk waits for that read.
func (sn *Snapshot) Recall(ctx context.Context, numbers []uint64, out []Record) error {
	if len(out) < len(numbers) {
		return fmt.Errorf("recalling %d numbers into %d records", len(numbers), len(out))
	}
	defer sn.prefetch.Do(func() { go sn.readAll(ctx) })
	if err := sn.load(ctx, numbers); err != nil {
		return fmt.Errorf("recalling capabilities: %w", err)
	}
	// Where each number's records are, and their count: the count's load
	// is the one that reaches far memory, so all of them are issued in
	// one short loop, where they overlap, before the search.
	at := make([]uint64, 2*len(numbers))
	for i, n := range numbers {
		if n == 0 || n > MaxNumber {
			continue
		}
		// A number's slot as its mixed value: bucket in the low bits,
		// field above (slotOf without the field's string).
		x := mix(n)
		w := sn.where[uint32(x&(buckets-1))].Load()
		at[2*i], at[2*i+1] = w, (*sn.reads[w>>32-1].Load())[uint32(w)]
	}
	for i, n := range numbers {
		out[i] = Record{}
		w, count := at[2*i], uint32(at[2*i+1])
		if w == 0 {
			continue
		}
		rs := *sn.reads[w>>32-1].Load()
		f, first := mix(n)>>bucketBits, uint32(w)+1
		for j := first; j < first+2*count; j += 2 {
			if rs[j] == f {
				r, err := recordOf(rs[j+1])
				if err != nil {
					return fmt.Errorf("number %s: %w", Digits(n), err)
				}
				out[i] = r
				break
			}
		}
	}
	return nil
}

// recordOf is unpackRecord of a value as recordValue packs it.
func recordOf(v uint64) (Record, error) {
	if l := v >> 48; l != 4 && l != PackedSize {
		return Record{}, fmt.Errorf("capability record of %d bytes, want 4 or 6", l)
	}
	return recordFrom(uint32(v>>16), uint16(v)), nil
}

// load returns once the buckets of numbers are read: it reads those no
// other read has claimed, and waits for the others.
func (sn *Snapshot) load(ctx context.Context, numbers []uint64) error {
	for {
		f := &fetch{done: make(chan struct{})}
		var mine []uint32
		var waits []*fetch
		again := false // a bucket neither read nor claimed: its read failed
		for _, n := range numbers {
			if n == 0 || n > MaxNumber {
				continue
			}
			b := uint32(mix(n) & (buckets - 1))
			if sn.where[b].Load() != 0 {
				continue
			}
			if sn.claims[b].CompareAndSwap(nil, f) {
				mine = append(mine, b)
			} else if c := sn.claims[b].Load(); c == nil {
				again = true
			} else if c != f && (len(waits) == 0 || waits[len(waits)-1] != c) {
				waits = append(waits, c)
			}
		}
		if err := sn.read(ctx, f, mine, recallBuckets); err != nil {
			return err
		}
		if len(waits) == 0 && !again {
			return nil
		}
		for _, c := range waits {
			select {
			case <-c.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// Buckets whose read failed are unclaimed again: claim them.
	}
}

// prefetchBuckets is how many buckets a pipeline of readAll reads.
const prefetchBuckets = 4096

// readAll reads every bucket no call has claimed, in order, until ctx
// ends. A failure is left to the calls that need the bucket.
func (sn *Snapshot) readAll(ctx context.Context) {
	for first := uint32(0); first < buckets && ctx.Err() == nil; first += prefetchBuckets {
		f := &fetch{done: make(chan struct{})}
		var todo []uint32
		for b := first; b < first+prefetchBuckets; b++ {
			if sn.where[b].Load() == 0 && sn.claims[b].CompareAndSwap(nil, f) {
				todo = append(todo, b)
			}
		}
		if sn.read(ctx, f, todo, prefetchBuckets) != nil {
			return
		}
	}
}

// read reads the buckets f claimed, per pipelined round trip at most
// batch, and keeps them; then it ends f, unclaiming what it did not read.
func (sn *Snapshot) read(ctx context.Context, f *fetch, bs []uint32, batch int) error {
	defer close(f.done)
	for i := 0; i < len(bs); i += batch {
		if err := sn.readBatch(ctx, bs[i:min(i+batch, len(bs))]); err != nil {
			for _, b := range bs[i:] {
				sn.claims[b].CompareAndSwap(f, nil)
			}
			return err
		}
	}
	return nil
}

// readBatch reads buckets in one pipelined round trip and keeps them. Each
// is read with DUMP and parsed, or with HGETALL when the server does not
// DUMP or a bucket's encoding is one parseDump does not know.
func (sn *Snapshot) readBatch(ctx context.Context, bs []uint32) error {
	if !sn.hgetall.Load() {
		odd, err := sn.dump(ctx, bs)
		var rerr redis.Error
		if errors.As(err, &rerr) { // a refusal, not a failure to talk
			sn.hgetall.Store(true)
			odd, err = bs, nil
		}
		if err != nil {
			return err
		}
		if len(odd) > len(bs)/2 {
			sn.hgetall.Store(true)
		}
		bs = odd
	}
	if len(bs) == 0 {
		return nil
	}
	return sn.hgetAll(ctx, bs)
}

// dump reads buckets with DUMP, keeps those it parsed and returns the
// others.
func (sn *Snapshot) dump(ctx context.Context, bs []uint32) ([]uint32, error) {
	pipe := sn.s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(bs))
	for i, b := range bs {
		cmds[i] = pipe.Dump(ctx, sn.s.capKey(b))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	size := 0
	for _, c := range cmds {
		size += len(c.Val())
	}
	// A record is ~10 bytes of payload, 16 here.
	rs := make([]uint64, 0, size/5+len(bs))
	offs := make([]int, 0, len(bs))
	var odd []uint32
	for i, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		start := len(rs)
		var ok bool
		if rs, ok = parseDump(c.Val(), append(rs, 0)); !ok && c.Err() == nil {
			rs = rs[:start]
			odd = append(odd, bs[i])
			offs = append(offs, -1)
			continue
		}
		rs[start] = uint64(len(rs)-start-1) / 2
		offs = append(offs, start)
	}
	sn.keep(bs, rs, offs)
	return odd, nil
}

// keep makes the buckets of one read found: bucket bs[i]'s count of
// records is at rs[offs[i]] (none read when offs[i] < 0).
func (sn *Snapshot) keep(bs []uint32, rs []uint64, offs []int) {
	id := sn.nread.Add(1)
	sn.reads[id-1].Store(&rs)
	for i, b := range bs {
		if offs[i] >= 0 {
			sn.where[b].Store(uint64(id)<<32 | uint64(offs[i]))
		}
	}
}

// hgetAll reads buckets with HGETALL and keeps them.
func (sn *Snapshot) hgetAll(ctx context.Context, bs []uint32) error {
	pipe := sn.s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(bs))
	for i, b := range bs {
		cmds[i] = pipe.HGetAll(ctx, sn.s.capKey(b))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	var rs []uint64
	offs := make([]int, len(bs))
	for i, c := range cmds {
		kv, err := c.Result()
		if err != nil {
			return err
		}
		offs[i] = len(rs)
		rs = append(rs, 0)
		for f, v := range kv {
			if len(f) == 5 && len(v) <= 255 { // else not a record
				rs = append(rs, fieldBits(f), recordValue(v))
				rs[offs[i]]++
			}
		}
	}
	sn.keep(bs, rs, offs)
	return nil
}
