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

// The records of a bucket stay sorted by field through inserts at the
// start, the end and the middle, updates in place and deletes, down to
// none; each is found by the scripts and by search.
func TestBucketEdits(t *testing.T) {
	t.Parallel()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) { testBucketEdits(t, s) })
	}
}

func testBucketEdits(t *testing.T, s *Store) {
	ctx := context.Background()
	const b = 4242
	at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	// Fields whose numbers are valid (below MaxNumber): small ones.
	num := func(f uint64) uint64 { return inBucket(t, b, f) }
	fld := func(f uint64) uint64 { return mix(num(f)) >> bucketBits }
	raw := func() string {
		v, err := s.rdb.Get(ctx, s.memKey(b)).Result()
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
		v := raw()
		if len(v) != len(want)*recordLen {
			t.Fatalf("%s: bucket of %d bytes, want %d records", step, len(v), len(want))
		}
		var fields []uint64
		for i := 0; i < len(v); i += recordLen {
			fields = append(fields, fieldAt(v, i))
		}
		if !slices.IsSorted(fields) || len(slices.Compact(slices.Clone(fields))) != len(fields) {
			t.Fatalf("%s: fields %v not sorted and unique", step, fields)
		}
		for f, r := range want {
			if got := search(v, f); got != r {
				t.Fatalf("%s: search(%d) = %+v, want %+v", step, f, got, r)
			}
		}
		got := map[uint64]Record{}
		if err := eachRecord(b, v, func(n uint64, r Record) error { got[mix(n)>>bucketBits] = r; return nil }); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s: records (-want +got):\n%s", step, diff)
		}
	}
	remember := func(f uint64, c Capability, at time.Time) {
		t.Helper()
		if err := s.Remember(ctx, []Answer{{Number: num(f), Capability: c, At: at, Code: "E1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := search("", 5); !got.IsZero() {
		t.Fatalf("search of an empty bucket = %+v", got)
	}
	recs, err := s.Lookup(ctx, []uint64{num(50)})
	if err != nil || !recs[0].IsZero() {
		t.Fatalf("Lookup in an empty bucket = %+v, %v", recs, err)
	}
	remember(50, Capable, at) // a bucket of one
	want[fld(50)] = Record{Capability: Capable, At: at}
	check("one")
	if got := search(raw(), fld(50)-1); !got.IsZero() {
		t.Fatalf("search of an absent field before the only one = %+v", got)
	}
	if got := search(raw(), fld(50)+1); !got.IsZero() {
		t.Fatalf("search of an absent field after the only one = %+v", got)
	}
	remember(10, NotCapable, at) // first
	want[fld(10)] = Record{Capability: NotCapable, At: at}
	check("first")
	remember(90, Unknown, at) // last
	want[fld(90)] = Record{Capability: Unknown, At: at}
	check("last")
	remember(30, Capable, at) // middle
	remember(70, Capable, at)
	want[fld(30)] = Record{Capability: Capable, At: at}
	want[fld(70)] = Record{Capability: Capable, At: at}
	check("middle")
	// In place: newer wins, older does not, a rejection keeps its
	// reference and a callback after it clears it.
	remember(30, Rejected, at.Add(time.Second))
	want[fld(30)] = Record{Capability: Rejected, At: at.Add(time.Second), Reason: 1}
	remember(70, NotCapable, at.Add(-time.Second))
	check("update")
	if _, err := s.Ingest(ctx, []Callback{{Number: num(30), Capability: NotCapable, At: at.Add(2 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	want[fld(30)] = Record{Capability: NotCapable, At: at.Add(2 * time.Second)}
	check("callback over a rejection")
	// Deletes: the middle, the first, the last, then the only one left.
	for _, f := range []uint64{30, 10, 90, 70} {
		n, err := s.Forget(ctx, []uint64{num(f), num(f + 1), num(f)})
		if err != nil || n != 1 {
			t.Fatalf("Forget(%d) = %d, %v; want 1", f, n, err)
		}
		delete(want, fld(f))
		check("forget " + strconv.FormatUint(f, 10))
	}
	if n, err := s.Forget(ctx, []uint64{num(50)}); err != nil || n != 1 {
		t.Fatalf("Forget of the last record = %d, %v", n, err)
	}
	if n := s.rdb.Exists(ctx, s.memKey(b)).Val(); n != 0 {
		t.Fatal("an emptied bucket is still a key")
	}
}

// A sweep moves a bucket of the old layout (a hash of 4- or 6-byte
// records) into the string bucket, newer wins, deletes the hash, and drops
// what is older than its cutoff.
func TestSweepMovesOldBuckets(t *testing.T) {
	t.Parallel()
	for name, s := range stores(t) {
		if name == "miniredis" {
			continue // the embedded Redis is never swept (its memory is the file's)
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			const b = 77
			at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
			num := func(f uint64) uint64 { return inBucket(t, b, f) }
			field := func(f uint64) string { return slotOf(num(f)).field }
			// Already in the new layout: 20 (newer than the hash's), 40.
			if err := s.Remember(ctx, []Answer{
				{Number: num(20), Capability: Capable, At: at.Add(time.Hour)},
				{Number: num(40), Capability: Capable, At: at.Add(-time.Hour)},
			}); err != nil {
				t.Fatal(err)
			}
			old := map[string]any{
				field(10): packRecord(NotCapable, at, 0)[:4],
				field(20): packRecord(NotCapable, at, 0)[:4],
				field(40): packRecord(Rejected, at, 3),                       // newer than the string's
				field(60): packRecord(Capable, at.Add(-48*time.Hour), 0)[:4], // stale
			}
			if err := s.rdb.HSet(ctx, s.oldKey(b), old).Err(); err != nil {
				t.Fatal(err)
			}
			dropped, moved, err := s.Sweep(ctx, at.Add(-24*time.Hour))
			if err != nil || dropped != 1 || moved != 1 {
				t.Fatalf("Sweep = %d dropped, %d moved, %v; want 1, 1", dropped, moved, err)
			}
			if s.rdb.Exists(ctx, s.oldKey(b)).Val() != 0 {
				t.Fatal("the old hash is still there")
			}
			got, err := s.Lookup(ctx, []uint64{num(10), num(20), num(40), num(60)})
			if err != nil {
				t.Fatal(err)
			}
			want := []Record{{Capability: NotCapable, At: at}, {Capability: Capable, At: at.Add(time.Hour)},
				{Capability: Rejected, At: at, Reason: 3}, {}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("after the sweep (-want +got):\n%s", diff)
			}
			if v := s.rdb.Get(ctx, s.memKey(b)).Val(); len(v) != 3*recordLen || !(fieldAt(v, 0) < fieldAt(v, 11) && fieldAt(v, 11) < fieldAt(v, 22)) {
				t.Fatalf("bucket %q: not 3 sorted records", v)
			}
			// Nothing more to move; forget all counts old hashes too.
			if err := s.rdb.HSet(ctx, s.oldKey(b+1), field(10), packRecord(Capable, at, 0)[:4]).Err(); err != nil {
				t.Fatal(err)
			}
			n, err := s.ForgetAll(ctx)
			if err != nil || n != 4 {
				t.Fatalf("ForgetAll = %d, %v; want 4", n, err)
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

// TestSearch finds every record of buckets of 0 to 40 records, and none of
// the fields between, before and after them.
func TestSearch(t *testing.T) {
	at := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	for n := range 41 {
		var s []byte
		for i := range n {
			f := uint64(10 + 3*i) // 10, 13, 16, ...
			s = append(s, byte(f>>32), byte(f>>24), byte(f>>16), byte(f>>8), byte(f))
			p := Record{Capability: Capable, At: at.Add(time.Duration(i) * time.Second)}.Pack()
			s = append(s, p[:]...)
		}
		for f := uint64(0); f < uint64(10+3*n+3); f++ {
			got := search(s, f)
			if f >= 10 && (f-10)%3 == 0 && f < uint64(10+3*n) {
				want := Record{Capability: Capable, At: at.Add(time.Duration((f-10)/3) * time.Second)}
				if got != want {
					t.Errorf("%d records: search(%d) = %+v, want %+v", n, f, got, want)
				}
			} else if !got.IsZero() {
				t.Errorf("%d records: search(%d) = %+v, want none", n, f, got)
			}
		}
	}
}

// TestMemKey: a bucket's key is mem:{b mod 1024}:{b / 1024} under the
// prefix, as the layout in docs/design.md and the keys already stored have it.
func TestMemKey(t *testing.T) {
	s := &Store{prefix: "capcheck"}
	for _, b := range []uint32{0, 1, 1023, 1024, 4242, buckets - 1} {
		if got, want := s.memKey(b), fmt.Sprintf("capcheck:mem:{%d}:%d", b%1024, b/1024); got != want {
			t.Errorf("memKey(%d) = %q, want %q", b, got, want)
		}
	}
}
