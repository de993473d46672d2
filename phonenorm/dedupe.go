package phonenorm

import "math"

// Set maps a number (its key: E.164 digits as an integer, never 0; see
// Result.Key) to the row it was first seen on. It is open addressing with linear probing over flat
// arrays, 12 bytes a slot with no pointers, split into seenShards tables
// that grow one at a time. BenchmarkSet has the figures that chose it
// over a Go map[uint64]uint32, whose slots are padded to 16 bytes.
//
// Memory: the tables live outside the Go heap where the platform allows it
// (see seen_mem_unix.go). On the heap, a set of hundreds of megabytes would
// let the GC's heap goal (twice the live heap) fill with the parser's
// garbage, doubling the process's RSS; off the heap, RSS stays close to the
// set itself. Sharding bounds the extra memory of a growth to one shard's.
// Call Free when done. A Set is not safe for concurrent use.
type Set struct {
	shards [seenShards]seenShard
	// far holds first rows past 2^32-1, should a list ever be that long.
	far map[uint64]int64
}

type seenShard struct {
	mem   []byte   // backing memory of keys and rows
	keys  []uint64 // 0 marks a free slot
	rows  []uint32 // first row, or MaxUint32 when it is in far
	n     int      // keys stored
	limit int      // grow past this many keys
	shift uint     // 64 - log2(len(keys))
}

const (
	seenShardBits = 6
	seenShards    = 1 << seenShardBits
	seenMinSlots  = 1 << 8 // 3 KiB a shard: a short list costs little
	seenLoadNum   = 13     // grow at 13/16 = 81% full: linear probing is fine up to there
	seenLoadDen   = 16
)

// NewSet returns an empty set.
func NewSet() *Set {
	s := &Set{}
	for i := range s.shards {
		s.shards[i].alloc(seenMinSlots)
	}
	return s
}

func (t *seenShard) alloc(slots int) {
	t.mem = allocTable(slots)
	t.keys, t.rows = tableSlices(t.mem, slots)
	t.limit = slots / seenLoadDen * seenLoadNum
	t.shift = 64 - uint(log2(slots))
}

// hash spreads decimal-looking keys over the tables (murmur3's finalizer).
// Its top bits pick the shard, the next ones the slot.
func hash(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// FirstSeen returns the row key was first seen on, recording row when key is
// new (dup is then false). key must not be 0.
func (s *Set) FirstSeen(key uint64, row int64) (first int64, dup bool) {
	h := hash(key)
	t := &s.shards[h>>(64-seenShardBits)]
	h <<= seenShardBits
	mask := len(t.keys) - 1
	for i := int(h >> t.shift); ; i = (i + 1) & mask {
		switch t.keys[i] {
		case key:
			if r := t.rows[i]; r != math.MaxUint32 {
				return int64(r), true
			}
			return s.far[key], true
		case 0:
			t.keys[i] = key
			if row < math.MaxUint32 {
				t.rows[i] = uint32(row)
			} else {
				t.rows[i] = math.MaxUint32
				if s.far == nil {
					s.far = make(map[uint64]int64)
				}
				s.far[key] = row
			}
			t.n++
			if t.n > t.limit {
				t.grow()
			}
			return row, false
		}
	}
}

func (t *seenShard) grow() {
	mem, keys, rows := t.mem, t.keys, t.rows
	t.alloc(2 * len(keys))
	mask := len(t.keys) - 1
	for j, k := range keys {
		if k == 0 {
			continue
		}
		i := int((hash(k) << seenShardBits) >> t.shift)
		for t.keys[i] != 0 {
			i = (i + 1) & mask
		}
		t.keys[i], t.rows[i] = k, rows[j]
	}
	freeTable(mem)
}

// Free returns the tables' memory; the set is unusable afterwards.
func (s *Set) Free() {
	for i := range s.shards {
		freeTable(s.shards[i].mem)
		s.shards[i] = seenShard{}
	}
}

// Len returns the number of keys.
func (s *Set) Len() int {
	n := 0
	for i := range s.shards {
		n += s.shards[i].n
	}
	return n
}

// Bytes returns the memory held by the tables.
func (s *Set) Bytes() int {
	n := 0
	for i := range s.shards {
		n += len(s.shards[i].mem)
	}
	return n
}

func log2(n int) int {
	b := 0
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}
