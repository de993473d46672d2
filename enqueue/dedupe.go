package enqueue

import "math"

// seenSet maps a number (its E.164 digits as an integer, never 0) to the row
// it was first seen on. It is an open-addressing table with linear probing
// over two flat arrays: 12 bytes a slot, no pointers for the GC to scan, and
// half the memory of a Go map[uint64]uint32 (whose slots are padded to 16
// bytes); see BenchmarkSeenSet for the figures that chose it.
type seenSet struct {
	keys  []uint64 // 0 marks a free slot
	rows  []uint32 // first row, when it fits
	n     int      // keys stored
	limit int      // grow past this many keys
	shift uint     // 64 - log2(len(keys))
	// far holds first rows past 2^32-1, should a list ever be that long.
	far map[uint64]int64
}

const (
	seenMinSlots = 1 << 10
	seenLoadNum  = 13 // grow at 13/16 = 81% full: linear probing is fine up to there
	seenLoadDen  = 16
)

func newSeenSet() *seenSet {
	s := &seenSet{}
	s.alloc(seenMinSlots)
	return s
}

func (s *seenSet) alloc(slots int) {
	s.keys = make([]uint64, slots)
	s.rows = make([]uint32, slots)
	s.limit = slots / seenLoadDen * seenLoadNum
	s.shift = 64 - uint(log2(slots))
}

// hash spreads decimal-looking keys over the table (murmur3's finalizer).
func (s *seenSet) slot(k uint64) int {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	return int(k >> s.shift)
}

// firstSeen returns the row key was first seen on, recording row when key is
// new (dup is then false). key must not be 0.
func (s *seenSet) firstSeen(key uint64, row int64) (first int64, dup bool) {
	mask := len(s.keys) - 1
	for i := s.slot(key); ; i = (i + 1) & mask {
		switch s.keys[i] {
		case key:
			if r := s.rows[i]; r != math.MaxUint32 {
				return int64(r), true
			}
			return s.far[key], true
		case 0:
			s.keys[i] = key
			if row < math.MaxUint32 {
				s.rows[i] = uint32(row)
			} else {
				s.rows[i] = math.MaxUint32
				if s.far == nil {
					s.far = make(map[uint64]int64)
				}
				s.far[key] = row
			}
			s.n++
			if s.n > s.limit {
				s.grow()
			}
			return row, false
		}
	}
}

func (s *seenSet) grow() {
	keys, rows := s.keys, s.rows
	s.alloc(2 * len(keys))
	mask := len(s.keys) - 1
	for j, k := range keys {
		if k == 0 {
			continue
		}
		i := s.slot(k)
		for s.keys[i] != 0 {
			i = (i + 1) & mask
		}
		s.keys[i], s.rows[i] = k, rows[j]
	}
}

// Len returns the number of keys.
func (s *seenSet) Len() int { return s.n }

// Bytes returns the memory held by the table.
func (s *seenSet) Bytes() int { return len(s.keys) * 12 }

func log2(n int) int {
	b := 0
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}
