package capstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
)

func TestLuaRecordLen(t *testing.T) {
	t.Parallel()
	if !strings.Contains(luaRecords, "local RL = "+strconv.Itoa(recordLen)+"\n") {
		t.Fatalf("the scripts' RL is not recordLen (%d)", recordLen)
	}
	if !strings.Contains(luaRecords, "local K = "+strconv.Itoa(tailSlots)+"\n") {
		t.Fatalf("the scripts' K is not tailSlots (%d)", tailSlots)
	}
	if !strings.Contains(luaRecords, "local TAIL = "+strconv.FormatUint(tailBit, 10)+"\n") {
		t.Fatalf("the scripts' TAIL is not tailBit (%d)", uint64(tailBit))
	}
}

// stores are a store on the shared Redis and one on miniredis (capcheck
// run's embedded Redis), whose Lua differs.
func stores(t *testing.T) map[string]*Store {
	rdb := redistest.Shared(t).Client(t)
	mr := miniredis.RunT(t)
	mrdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = mrdb.Close() })
	return map[string]*Store{"redis": New(rdb, Options{Prefix: redistest.NewPrefix(t)}), "miniredis": New(mrdb, Options{})}
}

// inBucket returns a number of bucket b whose field is between f*1000 and
// f*1000+999 (not every field is a number of at most 15 digits): numbers
// of increasing f have increasing fields.
func inBucket(t *testing.T, b uint32, f uint64) uint64 {
	t.Helper()
	for g := f * 1000; g < f*1000+1000; g++ {
		field := string([]byte{byte(g >> 32), byte(g >> 24), byte(g >> 16), byte(g >> 8), byte(g)})
		n, err := numberOf(b, field)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 && n <= MaxNumber {
			return n
		}
	}
	t.Fatalf("no number in bucket %d near field %d", b, f*1000)
	return 0
}

// checkBucket fails unless v is a bucket in the layout (sorted records,
// then a tail of tailSlots slots, the filled ones first) holding exactly
// want (memory field -> record) of memory bucket mb, each found by search.
func checkBucket(t *testing.T, step string, mb uint32, v string, want map[uint64]Record) {
	t.Helper()
	if len(want) == 0 {
		if v != "" {
			t.Fatalf("%s: a bucket of %d bytes holds none", step, len(v))
		}
		return
	}
	n := len(v) / recordLen
	if len(v)%recordLen != 0 || n < tailSlots {
		t.Fatalf("%s: bucket of %d bytes", step, len(v))
	}
	var fields []uint64
	for i := range n - tailSlots {
		fields = append(fields, fieldAt(v, i*recordLen))
	}
	if !slices.IsSorted(fields) || len(slices.Compact(slices.Clone(fields))) != len(fields) || (len(fields) > 0 && fields[len(fields)-1] >= tailBit) {
		t.Fatalf("%s: sorted fields %v not sorted, unique and unmarked", step, fields)
	}
	tail := v[(n-tailSlots)*recordLen:]
	filled := 0
	for filled < tailSlots && tail[filled*recordLen] >= 128 {
		filled++
	}
	if strings.Trim(tail[filled*recordLen:], "\x00") != "" {
		t.Fatalf("%s: tail %x: an empty slot before a filled one", step, tail)
	}
	if len(fields)+filled != len(want) || countRecords(v) != int64(len(want)) {
		t.Fatalf("%s: %d sorted + %d in the tail (count %d), want %d", step, len(fields), filled, countRecords(v), len(want))
	}
	for f, r := range want {
		if got := search(v, f); got != r {
			t.Fatalf("%s: search(%d) = %+v, want %+v", step, f, got, r)
		}
	}
	got := map[uint64]Record{}
	if err := eachRecord(mb, v, func(n uint64, r Record) error { got[memField(mix(n))] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s: records (-want +got):\n%s", step, diff)
	}
}

// The records of a bucket stay sorted by field, and its tail filled first,
// through inserts at the start, the end and the middle, into the tail and
// past it (merged into the sorted part), updates in place in either part,
// and deletes from either, down to none; each is found by the scripts and
// by search.
func TestBucketEdits(t *testing.T) {
	t.Parallel()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) { testBucketEdits(t, s) })
	}
}

func testBucketEdits(t *testing.T, s *Store) {
	ctx := context.Background()
	const mb = 4242
	at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	// Fields whose numbers are valid (below MaxNumber): small ones, of the
	// bucket of 2^17 mb + hi << memBits.
	numIn := func(hi uint32, f uint64) uint64 { return inBucket(t, mb|hi<<memBits, f) }
	num := func(f uint64) uint64 { return numIn(5, f) }
	fld := func(n uint64) uint64 { return memField(mix(n)) }
	raw := func() string {
		v, err := s.rdb.Get(ctx, s.memKey(mb)).Result()
		if err == redis.Nil {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := map[uint64]Record{}
	check := func(step string) {
		t.Helper()
		checkBucket(t, step, mb, raw(), want)
		if len(want) == 0 {
			return
		}
		var nums []uint64
		var recs []Record
		for f, r := range want {
			nums, recs = append(nums, memNumber(mb, f)), append(recs, r)
		}
		got, err := s.Lookup(ctx, nums)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(recs, got); diff != "" {
			t.Fatalf("%s: Lookup (-want +got):\n%s", step, diff)
		}
	}
	rememberN := func(n uint64, c Capability, at time.Time) {
		t.Helper()
		if err := s.Remember(ctx, []Answer{{Number: n, Capability: c, At: at, Code: "E1"}}); err != nil {
			t.Fatal(err)
		}
	}
	remember := func(f uint64, c Capability, at time.Time) { t.Helper(); rememberN(num(f), c, at) }
	forget := func(n uint64) {
		t.Helper()
		got, err := s.Forget(ctx, []uint64{n, n + 1, n})
		if err != nil || got != 1 {
			t.Fatalf("Forget(%d) = %d, %v; want 1", n, got, err)
		}
		delete(want, fld(n))
	}
	if got := search("", 5); !got.IsZero() {
		t.Fatalf("search of an empty bucket = %+v", got)
	}
	recs, err := s.Lookup(ctx, []uint64{num(50)})
	if err != nil || !recs[0].IsZero() {
		t.Fatalf("Lookup in an empty bucket = %+v, %v", recs, err)
	}
	remember(50, Capable, at) // a bucket of one
	want[fld(num(50))] = Record{Capability: Capable, At: at}
	check("one")
	if got := search(raw(), fld(num(50))-1); !got.IsZero() {
		t.Fatalf("search of an absent field before the only one = %+v", got)
	}
	remember(10, NotCapable, at)
	want[fld(num(10))] = Record{Capability: NotCapable, At: at}
	remember(90, Unknown, at)
	want[fld(num(90))] = Record{Capability: Unknown, At: at}
	remember(30, Capable, at)
	remember(70, Capable, at)
	want[fld(num(30))] = Record{Capability: Capable, At: at}
	want[fld(num(70))] = Record{Capability: Capable, At: at}
	check("in the tail")
	// In place: newer wins, older does not, a rejection keeps its
	// reference and a callback after it clears it.
	remember(30, Rejected, at.Add(time.Second))
	want[fld(num(30))] = Record{Capability: Rejected, At: at.Add(time.Second), Reason: 1}
	remember(70, NotCapable, at.Add(-time.Second))
	check("update in the tail")
	if _, err := s.Ingest(ctx, []Callback{{Number: num(30), Capability: NotCapable, At: at.Add(2 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	want[fld(num(30))] = Record{Capability: NotCapable, At: at.Add(2 * time.Second)}
	check("callback over a rejection")
	// Numbers of every bucket of 2^17 that shares the memory bucket, one
	// insert each: the tail fills, is merged, fills again.
	var more []uint64
	for i := range uint64(2*tailSlots + 5) {
		more = append(more, numIn(uint32(i%oldPerMem), 100+i*7%40))
	}
	for i, n := range more {
		rememberN(n, Capable, at.Add(time.Duration(i)*time.Second))
		want[fld(n)] = Record{Capability: Capable, At: at.Add(time.Duration(i) * time.Second)}
		check("insert " + strconv.Itoa(i))
	}
	if v := raw(); len(v) >= (len(want)+tailSlots)*recordLen {
		t.Fatalf("%d records in a bucket of %d bytes: the tail was never merged", len(want), len(v))
	}
	// Updates in the sorted part and in the tail.
	for _, n := range []uint64{more[0], more[len(more)-1]} {
		rememberN(n, Unknown, at.Add(time.Hour))
		want[fld(n)] = Record{Capability: Unknown, At: at.Add(time.Hour)}
		check("update")
	}
	// Deletes: from the tail, from the sorted part, then everything.
	forget(more[len(more)-1])
	check("forget in the tail")
	forget(more[0])
	check("forget in the sorted part")
	for _, n := range append(more[1:len(more)-1], num(10), num(30), num(50), num(70), num(90)) {
		forget(n)
		check("forget " + strconv.FormatUint(n, 10))
	}
	if n := s.rdb.Exists(ctx, s.memKey(mb)).Val(); n != 0 {
		t.Fatal("an emptied bucket is still a key")
	}
}

// A sweep moves the buckets of the layouts before (strings of sorted
// records of 2^17 buckets, and hashes of 4- or 6-byte records) into the
// memory bucket they map to, newer wins, deletes them, and drops what is
// older than its cutoff; Forget and ForgetAll reach them before.
func TestSweepMovesOldBuckets(t *testing.T) {
	t.Parallel()
	for name, s := range stores(t) {
		if name == "miniredis" {
			continue // the embedded Redis is never swept (its memory is the file's)
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			const mb = 77
			b1, b2 := uint32(mb|3<<memBits), uint32(mb|6<<memBits) // two old buckets of mb
			at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
			num := func(b uint32, f uint64) uint64 { return inBucket(t, b, f) }
			// The old layouts' fields: 33 bits.
			field := func(n uint64) string { f := slotOf(n).field; return string(f[0]&1) + f[1:] }
			oldString := func(recs ...string) string { slices.Sort(recs); return strings.Join(recs, "") }
			// Already in the new layout: 20 (newer than the old ones), 40.
			if err := s.Remember(ctx, []Answer{
				{Number: num(b1, 20), Capability: Capable, At: at.Add(time.Hour)},
				{Number: num(b1, 40), Capability: Capable, At: at.Add(-time.Hour)},
			}); err != nil {
				t.Fatal(err)
			}
			hash := map[string]any{
				field(num(b1, 10)): packRecord(NotCapable, at, 0)[:4],
				field(num(b1, 20)): packRecord(NotCapable, at, 0)[:4],
				field(num(b1, 40)): packRecord(Rejected, at, 3),                       // newer than the new layout's
				field(num(b1, 60)): packRecord(Capable, at.Add(-48*time.Hour), 0)[:4], // stale
			}
			if err := s.rdb.HSet(ctx, s.oldKey(b1), hash).Err(); err != nil {
				t.Fatal(err)
			}
			str1 := oldString(field(num(b1, 10))+packRecord(Capable, at.Add(time.Minute), 0), // newer than the hash's
				field(num(b1, 80))+packRecord(Unknown, at, 0))
			str2 := oldString(field(num(b2, 10))+packRecord(NotCapable, at, 0),
				field(num(b2, 30))+packRecord(Capable, at.Add(-48*time.Hour), 0), // stale
				field(num(b2, 50))+packRecord(Rejected, at, 2))
			if err := s.rdb.MSet(ctx, s.oldMemKey(b1), str1, s.oldMemKey(b2), str2).Err(); err != nil {
				t.Fatal(err)
			}
			// Forget reaches every layout.
			if n, err := s.Forget(ctx, []uint64{num(b2, 50), num(b1, 60)}); err != nil || n != 2 {
				t.Fatalf("Forget = %d, %v; want 2", n, err)
			}
			dropped, moved, err := s.Sweep(ctx, at.Add(-24*time.Hour))
			if err != nil || dropped != 1 || moved != 3 {
				t.Fatalf("Sweep = %d dropped, %d moved, %v; want 1, 3", dropped, moved, err)
			}
			if n := s.rdb.Exists(ctx, s.oldKey(b1), s.oldMemKey(b1), s.oldMemKey(b2)).Val(); n != 0 {
				t.Fatalf("%d old keys are still there", n)
			}
			nums := []uint64{num(b1, 10), num(b1, 20), num(b1, 40), num(b1, 60), num(b1, 80), num(b2, 10), num(b2, 30), num(b2, 50)}
			want := []Record{{Capability: Capable, At: at.Add(time.Minute)}, {Capability: Capable, At: at.Add(time.Hour)},
				{Capability: Rejected, At: at, Reason: 3}, {}, {Capability: Unknown, At: at}, {Capability: NotCapable, At: at}, {}, {}}
			got, err := s.Lookup(ctx, nums)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("after the sweep (-want +got):\n%s", diff)
			}
			wantBucket := map[uint64]Record{}
			for i, n := range nums {
				if !want[i].IsZero() {
					wantBucket[memField(mix(n))] = want[i]
				}
			}
			checkBucket(t, "swept", mb, s.rdb.Get(ctx, s.memKey(mb)).Val(), wantBucket)
			// Nothing more to move; in a bucket of records only in its
			// tail (inserted in descending order), one stale: the sweep
			// drops it and sorts the rest.
			const mb2 = mb + 1
			tailOnly := []uint64{num(mb2, 90), num(mb2, 50), num(mb2, 20)}
			if err := s.Remember(ctx, []Answer{{Number: tailOnly[0], Capability: Capable, At: at},
				{Number: tailOnly[1], Capability: Capable, At: at.Add(-48 * time.Hour)},
				{Number: tailOnly[2], Capability: NotCapable, At: at}}); err != nil {
				t.Fatal(err)
			}
			if dropped, moved, err := s.Sweep(ctx, at.Add(-24*time.Hour)); err != nil || dropped != 1 || moved != 0 {
				t.Fatalf("second Sweep = %d dropped, %d moved, %v; want 1, 0", dropped, moved, err)
			}
			v := s.rdb.Get(ctx, s.memKey(mb2)).Val()
			checkBucket(t, "tail swept", mb2, v, map[uint64]Record{
				memField(mix(tailOnly[0])): {Capability: Capable, At: at}, memField(mix(tailOnly[2])): {Capability: NotCapable, At: at}})
			if len(v) != (2+tailSlots)*recordLen {
				t.Fatalf("swept bucket of %d bytes, want 2 sorted records and an empty tail", len(v))
			}
			// ForgetAll counts the old layouts' keys too.
			if err := s.rdb.HSet(ctx, s.oldKey(b1+1), field(num(b1+1, 10)), packRecord(Capable, at, 0)[:4]).Err(); err != nil {
				t.Fatal(err)
			}
			if err := s.rdb.Set(ctx, s.oldMemKey(b2+1), field(num(b2+1, 10))+packRecord(Capable, at, 0), 0).Err(); err != nil {
				t.Fatal(err)
			}
			n, err := s.ForgetAll(ctx)
			if err != nil || n != 9 {
				t.Fatalf("ForgetAll = %d, %v; want 9", n, err)
			}
			if n := s.rdb.Exists(ctx, s.memKey(mb), s.oldKey(b1+1), s.oldMemKey(b2+1)).Val(); n != 0 {
				t.Fatalf("%d keys left after ForgetAll", n)
			}
		})
	}
}

// In a Cluster, the reads (one MGET per hash tag) and the scripts reach
// each bucket's node.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	s := New(c.Client(t), Options{Prefix: redistest.NewPrefix(t)})
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	var ans []Answer
	var nums []uint64
	for i := range uint64(5000) {
		n := 919_800_000_000 + i*7919
		nums = append(nums, n)
		if i%4 != 0 {
			ans = append(ans, Answer{Number: n, Capability: Capable + Capability(i%3), At: at.Add(time.Duration(i) * time.Second)})
		}
	}
	if err := s.Remember(ctx, ans); err != nil {
		t.Fatal(err)
	}
	want := make([]Record, len(nums))
	for i := range nums {
		if i%4 != 0 {
			want[i] = Record{Capability: Capable + Capability(i%3), At: at.Add(time.Duration(i) * time.Second)}
		}
	}
	got := make([]Record, len(nums))
	if err := s.Recall(ctx, nums, got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Recall (-want +got):\n%s", diff)
	}
	sn := s.Snapshot()
	if err := sn.Recall(ctx, nums, got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Snapshot.Recall (-want +got):\n%s", diff)
	}
	count := 0
	if err := s.Each(ctx, func(uint64, Record) error { count++; return nil }); err != nil || count != len(ans) {
		t.Fatalf("Each = %d records, %v; want %d", count, err, len(ans))
	}
	if n, err := s.Forget(ctx, nums[:8]); err != nil || n != 6 {
		t.Fatalf("Forget = %d, %v; want 6", n, err)
	}
	if dropped, _, err := s.Sweep(ctx, at.Add(100*time.Second)); err != nil || dropped == 0 {
		t.Fatalf("Sweep = %d, %v", dropped, err)
	}
}

// BenchmarkSnapshot looks up a memory of 900,000 numbers in a snapshot
// that has read it, a batch of 2,048 numbers an op as enqueue asks them.
//
//	go test -run '^$' -bench Snapshot -cpuprofile cpu.out ./capstore
func BenchmarkSnapshot(b *testing.B) {
	s := New(redistest.Shared(b).Client(b), Options{Prefix: redistest.NewPrefix(b)})
	ctx := context.Background()
	nums := make([]uint64, 900_000)
	ans := make([]Answer, 0, 10_000)
	at := time.Now().Add(-time.Hour)
	for i := range nums {
		nums[i] = 919_000_000_000 + uint64(i)*7919
		ans = append(ans, Answer{Number: nums[i], Capability: Capable, At: at})
		if len(ans) == cap(ans) || i == len(nums)-1 {
			if err := s.Remember(ctx, ans); err != nil {
				b.Fatal(err)
			}
			ans = ans[:0]
		}
	}
	out := make([]Record, 2048)
	sn := s.Snapshot()
	recall := func(first int) int {
		if err := sn.Recall(ctx, nums[first:min(first+len(out), len(nums))], out); err != nil {
			b.Fatal(err)
		}
		return (first + len(out)) % len(nums)
	}
	for first := 0; first < len(nums); first += len(out) {
		recall(first)
	}
	b.ResetTimer()
	first := 0
	for range b.N {
		first = recall(first)
	}
}

// TestSearch finds every record of buckets of 0 to 40 sorted records and
// 0 to tailSlots in the tail, and none of the fields between, before and
// after them.
func TestSearch(t *testing.T) {
	at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	rec := func(f uint64, i int) []byte {
		p := Record{Capability: Capable, At: at.Add(time.Duration(i) * time.Second)}.Pack()
		return append([]byte{byte(f >> 32), byte(f >> 24), byte(f >> 16), byte(f >> 8), byte(f)}, p[:]...)
	}
	for n := range 41 {
		for filled := range tailSlots + 1 {
			var s []byte
			want := map[uint64]Record{}
			for i := range n {
				f := uint64(10 + 3*i) // 10, 13, 16, ...
				s = append(s, rec(f, i)...)
				want[f] = Record{Capability: Capable, At: at.Add(time.Duration(i) * time.Second)}
			}
			for i := range tailSlots {
				if i >= filled {
					s = append(s, make([]byte, recordLen)...)
					continue
				}
				f := uint64(11 + 3*(tailSlots-1-i)) // between the sorted ones, descending
				s = append(s, rec(f|tailBit, 100+i)...)
				want[f] = Record{Capability: Capable, At: at.Add(time.Duration(100+i) * time.Second)}
			}
			for f := uint64(0); f < uint64(10+3*(n+tailSlots)+3); f++ {
				if got := search(s, f); got != want[f] {
					t.Errorf("%d records, %d in the tail: search(%d) = %+v, want %+v", n, filled, f, got, want[f])
				}
			}
			if c := countRecords(string(s)); c != int64(len(want)) {
				t.Errorf("%d records, %d in the tail: count %d, want %d", n, filled, c, len(want))
			}
		}
	}
}

// TestMemKey: a memory bucket's key is m:{b mod 1024}:{b / 1024}, those of
// the layouts before mem:{b mod 1024}:{b / 1024} (a string) and
// cap:{b mod 1024}:{b / 1024} (a hash) of the 2^17 buckets, under the
// prefix, as the layout in docs/design.md and the keys already stored have
// it.
func TestMemKey(t *testing.T) {
	s := &Store{prefix: "capcheck"}
	for _, b := range []uint32{0, 1, 1023, 1024, 4242, memBuckets - 1, memBuckets + 5, buckets - 1} {
		mb := b % memBuckets
		if got, want := s.memKey(b), fmt.Sprintf("capcheck:m:{%d}:%d", mb%1024, mb/1024); got != want {
			t.Errorf("memKey(%d) = %q, want %q", b, got, want)
		}
		if got, want := s.oldMemKey(b), fmt.Sprintf("capcheck:mem:{%d}:%d", b%1024, b/1024); got != want {
			t.Errorf("oldMemKey(%d) = %q, want %q", b, got, want)
		}
		if got, want := s.oldKey(b), fmt.Sprintf("capcheck:cap:{%d}:%d", b%1024, b/1024); got != want {
			t.Errorf("oldKey(%d) = %q, want %q", b, got, want)
		}
	}
}

// TestMoveOldLayout: the first call moves the old layout's records, however
// old, and marks the Redis; later calls do nothing. A Redis without them is
// only marked.
func TestMoveOldLayout(t *testing.T) {
	t.Parallel()
	s := stores(t)["redis"]
	ctx := context.Background()
	fresh := New(s.rdb, Options{Prefix: redistest.NewPrefix(t)})
	if old, err := fresh.oldLayoutLeft(ctx); err != nil || old {
		t.Fatalf("oldLayoutLeft on a fresh memory = %v, %v; want false", old, err)
	}
	if moved, err := fresh.MoveOldLayout(ctx); err != nil || moved != 0 {
		t.Fatalf("MoveOldLayout on a fresh memory = %d, %v; want 0", moved, err)
	}
	if n := s.rdb.Exists(ctx, fresh.layoutKey()).Val(); n != 1 {
		t.Fatal("a fresh memory is not marked as in the current layout")
	}
	const mb = 123
	b := uint32(mb | 5<<memBits)
	num := func(f uint64) uint64 { return inBucket(t, b, f) }
	field := func(n uint64) string { f := slotOf(n).field; return string(f[0]&1) + f[1:] }
	old := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC) // older than any --forget-after
	if err := s.rdb.Set(ctx, s.oldMemKey(b), field(num(10))+packRecord(Capable, old, 0), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if old, err := s.oldLayoutLeft(ctx); err != nil || !old {
		t.Fatalf("oldLayoutLeft with an old bucket = %v, %v; want true", old, err)
	}
	if moved, err := s.MoveOldLayout(ctx); err != nil || moved != 1 {
		t.Fatalf("MoveOldLayout = %d, %v; want 1 key moved", moved, err)
	}
	got, err := s.Lookup(ctx, []uint64{num(10)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Record{{Capability: Capable, At: old}}; !cmp.Equal(want, got) {
		t.Fatalf("after the move: %v, want %v", got, want)
	}
	if err := s.rdb.Set(ctx, s.oldMemKey(b), field(num(20))+packRecord(Capable, old, 0), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if moved, err := s.MoveOldLayout(ctx); err != nil || moved != 0 {
		t.Fatalf("second MoveOldLayout = %d, %v; want nothing moved (the Redis is marked)", moved, err)
	}
}

// TestSnapshotHoldPrefetch: a snapshot's first Recall starts the read of
// every bucket, unless HoldPrefetch was called: then Prefetch starts it.
func TestSnapshotHoldPrefetch(t *testing.T) {
	t.Parallel()
	s := stores(t)["redis"]
	ctx := t.Context()
	nums := []uint64{919_800_000_001, 919_800_000_002}
	out := make([]Record, len(nums))
	started := func(sn *Snapshot) bool { // false also makes it never start
		ran := false
		sn.prefetch.Do(func() { ran = true })
		return !ran
	}
	sn := s.Snapshot()
	if err := sn.Recall(ctx, nums, out); err != nil {
		t.Fatal(err)
	}
	if !started(sn) {
		t.Error("the first Recall did not start the background read")
	}
	sn = s.Snapshot()
	sn.HoldPrefetch()
	if err := sn.Recall(ctx, nums, out); err != nil {
		t.Fatal(err)
	}
	if started(sn) {
		t.Error("the background read started despite HoldPrefetch")
	}
	sn = s.Snapshot()
	sn.HoldPrefetch()
	sn.Prefetch(ctx)
	if !started(sn) {
		t.Error("Prefetch did not start the background read")
	}
}
