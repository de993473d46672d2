package capstore

import (
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"
)

func TestSlotRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	nums := []uint64{1, 10_000_000, 919876543210, 14155552671, MaxNumber}
	for range 10000 {
		nums = append(nums, 1+rng.Uint64N(MaxNumber))
	}
	seen := map[slot]uint64{}
	for _, n := range nums {
		sl := slotOf(n)
		if sl.bucket >= buckets || len(sl.field) != 5 {
			t.Fatalf("slotOf(%d) = %+v out of range", n, sl)
		}
		if prev, dup := seen[sl]; dup && prev != n {
			t.Fatalf("numbers %d and %d share slot %+v", prev, n, sl)
		}
		seen[sl] = n
		got, err := numberOf(sl.bucket, sl.field)
		if err != nil || got != n {
			t.Fatalf("numberOf(slotOf(%d)) = %d, %v", n, got, err)
		}
		// The memory field: the bucket's bits above memBits, then the
		// 33-bit field; the memory bucket, the bucket's low bits.
		f := fieldAt(sl.field, 0)
		if f >= 1<<36 || uint32(f>>fieldBits) != sl.bucket>>memBits {
			t.Fatalf("slotOf(%d): memory field %x of bucket %d", n, f, sl.bucket)
		}
		if got := memNumber(sl.bucket%memBuckets, f); got != n {
			t.Fatalf("memNumber of slotOf(%d) = %d", n, got)
		}
	}
}

// Consecutive numbers (a typical list) spread evenly over the buckets.
func TestBucketsEven(t *testing.T) {
	t.Parallel()
	const n = 76 * buckets / 8 // an eighth of 10M numbers
	counts := make([]int, buckets)
	for i := range uint64(n) {
		counts[slotOf(919800000000+i).bucket]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	if most > 32 { // mean 9.5
		t.Errorf("fullest bucket holds %d numbers, mean %d", most, n/buckets)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 6, 45, 12, 0, time.UTC)
	for _, c := range []Capability{Capable, NotCapable, Unknown, Rejected} {
		v := packRecord(c, at.Add(300*time.Millisecond), 7)
		r := recordAt("fffff"+v, 0)
		if len(v) != PackedSize || r.Capability != c || !r.At.Equal(at) || r.Reason != 7 {
			t.Errorf("recordAt(packRecord(%v, %v)) = %+v", c, at, r)
		}
	}
	rej := Record{Capability: Rejected, At: at, Reason: 65_000}
	if got := UnpackRecord(rej.Pack()); got != rej {
		t.Errorf("UnpackRecord(Pack(%+v)) = %+v", rej, got)
	}
}

// TestRecordSize: a Record is its time and one word more, 32 bytes on 64
// bits (an enqueue holds one a number).
func TestRecordSize(t *testing.T) {
	want := unsafe.Sizeof(time.Time{}) + unsafe.Alignof(time.Time{})
	if n := unsafe.Sizeof(Record{}); n != want {
		t.Errorf("Record is %d bytes, want %d", n, want)
	}
}
