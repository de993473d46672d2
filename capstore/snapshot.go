package capstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Snapshot reads the memory a bucket at a time and keeps what it read: a
// bucket is read once, whole, the first time a number of it is asked (and
// every bucket in the background from the first call on). A read of many
// buckets is one MGET (one per hash tag on a Cluster), so a large list
// costs Redis about 1,024 commands for the whole memory instead of one per
// number. The buckets of one read are kept as their bytes, one after the
// other in one array (11 bytes a remembered number and a bucket's tail on
// the heap, nothing for the collector to scan); a lookup is a search in
// its bucket's.
// It answers as the memory was when each bucket was read. It is safe for
// concurrent use, and lookups take no lock.
type Snapshot struct {
	s        *Store
	prefetch sync.Once
	held     atomic.Bool // the background read waits for Prefetch
	// where[b] locates bucket b's records once read: 1 + the index in
	// reads of the read that read it << whereReadShift | their offset in
	// its bytes << whereCountBits | their count. One load reaches them.
	where []atomic.Uint64
	reads []atomic.Pointer[[]byte]
	nread atomic.Uint32
	// claims[b] is the read that reads bucket b, so that each is read
	// once; cleared again when that read fails.
	claims []atomic.Pointer[fetch]
	// touched keeps Recall's loop that touches the buckets.
	touched atomic.Uint32
}

// A where value: 18 bits for 1 + the read (at most one per bucket), 29
// for the offset, 17 for the count of slots (records and tail).
const (
	whereCountBits = 17
	whereReadShift = whereCountBits + 29
	maxReadBytes   = 1 << 29
	maxBucketCount = 1<<whereCountBits - 1
)

// fetch is one read of buckets; done is closed when it ends.
type fetch struct{ done chan struct{} }

// Snapshot returns a new, empty snapshot of the memory.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{s: s, where: make([]atomic.Uint64, memBuckets), reads: make([]atomic.Pointer[[]byte], memBuckets),
		claims: make([]atomic.Pointer[fetch], memBuckets)}
}

// Recall is Store.Recall, from the buckets read so far and those it reads.
// The first call to return also starts reading every bucket in the
// background, in large pipelines, until its ctx ends: a large list soon
// finds every bucket read, while a small one ends (and cancels ctx) before
// much is. It starts after the first read, which would otherwise queue
// behind it: the list's first chunk waits for that read. After
// HoldPrefetch, it starts at Prefetch instead.
func (sn *Snapshot) Recall(ctx context.Context, numbers []uint64, out []Record) error {
	if len(out) < len(numbers) {
		return fmt.Errorf("recalling %d numbers into %d records", len(numbers), len(out))
	}
	defer func() {
		if !sn.held.Load() {
			sn.Prefetch(ctx)
		}
	}()
	// Each number's scrambled value (0 when out of range) and where its
	// bucket is, in passes whose loads from far memory (where, then the
	// buckets) are independent of one another and overlap, before the
	// searches that depend on them.
	mixed := make([]uint64, 2*len(numbers))
	at := mixed[len(numbers):]
	var unread []uint32
	for i, n := range numbers {
		if n == 0 || n > MaxNumber {
			continue
		}
		m := mix(n)
		mixed[i] = m
		if at[i] = sn.where[m&(memBuckets-1)].Load(); at[i] == 0 {
			unread = append(unread, uint32(m&(memBuckets-1)))
		}
	}
	if len(unread) > 0 {
		if err := sn.load(ctx, unread); err != nil {
			return fmt.Errorf("recalling capabilities: %w", err)
		}
		for i, m := range mixed[:len(numbers)] {
			if m != 0 && at[i] == 0 {
				at[i] = sn.where[m&(memBuckets-1)].Load()
			}
		}
	}
	// Touch each bucket's first, middle and last byte, so that its search
	// finds it in cache.
	var t byte
	for _, w := range at {
		if n := int(w&maxBucketCount) * recordLen; n > 0 {
			rs := *sn.reads[w>>whereReadShift-1].Load()
			off := int(w >> whereCountBits & (maxReadBytes - 1))
			t ^= rs[off] ^ rs[off+n/2] ^ rs[off+n-1]
		}
	}
	sn.touched.Store(uint32(t))
	for i, w := range at {
		out[i] = Record{}
		if w == 0 {
			continue
		}
		rs := *sn.reads[w>>whereReadShift-1].Load()
		off := int(w >> whereCountBits & (maxReadBytes - 1))
		out[i] = search(rs[off:off+int(w&maxBucketCount)*recordLen], memField(mixed[i]))
	}
	return nil
}

// HoldPrefetch keeps Recall from starting the background read of every
// bucket: it waits for Prefetch. A caller whose first lookups must not
// compete with it (enqueue, until its first chunk is enqueued) calls it
// before its first Recall.
func (sn *Snapshot) HoldPrefetch() { sn.held.Store(true) }

// Prefetch starts reading every bucket no Recall has read, in the
// background, until ctx ends, unless that read has started.
func (sn *Snapshot) Prefetch(ctx context.Context) {
	sn.prefetch.Do(func() { go sn.readAll(ctx) })
}

// load returns once buckets bs are read: it reads those no other read has
// claimed, and waits for the others.
func (sn *Snapshot) load(ctx context.Context, bs []uint32) error {
	for {
		f := &fetch{done: make(chan struct{})}
		var mine []uint32
		var waits []*fetch
		again := false // a bucket neither read nor claimed: its read failed
		for _, b := range bs {
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

// prefetchBuckets is how many buckets a pipeline of readAll reads: 256
// hash tags.
const prefetchBuckets = 4096

// readAll reads every bucket no call has claimed, in hash tag order, until
// ctx ends. A failure is left to the calls that need the bucket.
func (sn *Snapshot) readAll(ctx context.Context) {
	for first := uint32(0); first < memBuckets && ctx.Err() == nil; first += prefetchBuckets {
		f := &fetch{done: make(chan struct{})}
		var todo []uint32
		for i := first; i < first+prefetchBuckets; i++ {
			b := memBucketAt(i)
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
		part := bs[i:min(i+batch, len(bs))]
		vals, err := sn.s.readBuckets(ctx, part)
		if err == nil {
			err = sn.keep(part, vals)
		}
		if err != nil {
			for _, b := range bs[i:] {
				sn.claims[b].CompareAndSwap(f, nil)
			}
			return err
		}
	}
	return nil
}

var errBucketSize = errors.New("a bucket of the memory is too large to read")

// keep copies the records of buckets bs, read as vals, into one array and
// makes them found.
func (sn *Snapshot) keep(bs []uint32, vals []string) error {
	size := 0
	for _, v := range vals {
		size += len(v) / recordLen * recordLen
		if len(v)/recordLen > maxBucketCount {
			return errBucketSize
		}
	}
	if size >= maxReadBytes {
		return errBucketSize
	}
	rs := make([]byte, 0, size)
	ws := make([]uint64, len(bs))
	for i, v := range vals {
		n := len(v) / recordLen
		ws[i] = uint64(len(rs))<<whereCountBits | uint64(n)
		rs = append(rs, v[:n*recordLen]...)
	}
	id := uint64(sn.nread.Add(1))
	sn.reads[id-1].Store(&rs)
	for i, b := range bs {
		sn.where[b].Store(id<<whereReadShift | ws[i])
	}
	return nil
}
