package phonenorm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestSet(t *testing.T) {
	t.Parallel()
	s := NewSet()
	defer s.Free()
	ref := map[uint64]int64{}
	rng := rand.New(rand.NewPCG(1, 2))
	for row := int64(1); row <= 200_000; row++ {
		k := 910_000_000_000 + rng.Uint64N(150_000) // many repeats
		first, dup := s.FirstSeen(k, row)
		want, seen := ref[k]
		if !seen {
			ref[k] = row
			want = row
		}
		if dup != seen || first != want {
			t.Fatalf("row %d key %d: got (%d, %v), want (%d, %v)", row, k, first, dup, want, seen)
		}
	}
	if s.Len() != len(ref) {
		t.Errorf("Len = %d, want %d", s.Len(), len(ref))
	}

	// Rows past uint32 still come back exact.
	big := int64(math.MaxUint32) + 5
	if _, dup := s.FirstSeen(42, big); dup {
		t.Fatal("new key reported as duplicate")
	}
	if first, dup := s.FirstSeen(42, big+1); !dup || first != big {
		t.Errorf("got (%d, %v), want (%d, true)", first, dup, big)
	}
}

// seenKeys returns n realistic keys (E.164 digits of mobile numbers of a few
// countries) with 10% repeats.
func seenKeys(n int) []uint64 {
	rng := rand.New(rand.NewPCG(7, 8))
	bases := []uint64{91_60000_00000, 1_200_000_0000, 44_7000_000000, 49_1500_0000000, 55_11_900000000}
	keys := make([]uint64, n)
	for i := range keys {
		if i > 0 && rng.IntN(10) == 0 {
			keys[i] = keys[rng.IntN(i)]
			continue
		}
		keys[i] = bases[rng.IntN(len(bases))] + rng.Uint64N(4_000_000_000)
	}
	return keys
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkSet compares the dedupe table with a Go map (swiss tables
// since Go 1.24) at list sizes: ns per row and bytes per unique number held
// at the end. Run with -benchtime 1x; the 10M case takes a few seconds.
func BenchmarkSet(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		if testing.Short() && n > 1_000_000 {
			continue
		}
		keys := seenKeys(n)
		b.Run(fmt.Sprintf("table/%dM", n/1_000_000), func(b *testing.B) {
			for b.Loop() {
				s := NewSet()
				for i, k := range keys {
					s.FirstSeen(k, int64(i+1))
				}
				b.ReportMetric(float64(s.Bytes())/float64(s.Len()), "B/unique")
				s.Free()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
		b.Run(fmt.Sprintf("map/%dM", n/1_000_000), func(b *testing.B) {
			for b.Loop() {
				before := heapInUse()
				m := map[uint64]uint32{}
				for i, k := range keys {
					if _, ok := m[k]; !ok {
						m[k] = uint32(i + 1)
					}
				}
				b.ReportMetric(float64(heapInUse()-before)/float64(len(m)), "B/unique")
				runtime.KeepAlive(m)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}

func TestTableMemory(t *testing.T) {
	t.Parallel()
	for _, slots := range []int{seenMinSlots, 1 << 16} { // heap, then mapped
		mem := allocTable(slots)
		keys, rows := tableSlices(mem, slots)
		for i := range keys {
			if keys[i] != 0 || rows[i] != 0 {
				t.Fatalf("%d slots: slot %d not zeroed", slots, i)
			}
			keys[i], rows[i] = uint64(i)+1, uint32(i)
		}
		for i := range keys {
			if keys[i] != uint64(i)+1 || rows[i] != uint32(i) {
				t.Fatalf("%d slots: slot %d overlaps another", slots, i)
			}
		}
		freeTable(mem)
	}
}
