package capstore

import (
	"context"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
)

// A bucket of six records as Redis 7.0 DUMPs it: a listpack, LZF-compressed.
const dumpLZF = "10c33f405518550000000c008501ece927c4068415ed61b00585003e0562bae0000c0353a44330e0000c03bc3af440e0000c03c0dc5c11e0000c033e10f7be800c0105ff0a00a356acd4ad516845"

func TestParseDump(t *testing.T) {
	t.Parallel()
	p, err := hex.DecodeString(dumpLZF)
	if err != nil {
		t.Fatal(err)
	}
	rs, ok := parseDump(string(p), nil)
	if !ok || len(rs) != 12 {
		t.Fatalf("parseDump = %d values, %v; want 6 records", len(rs), ok)
	}
	for i := 1; i < len(rs); i += 2 {
		if _, err := recordOf(rs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Cut short anywhere, or another type: not parsed, no panic.
	for n := range len(p) - 1 {
		if _, ok := parseDump(string(p[:n]), nil); ok && n < len(p)-dumpTrailer {
			t.Fatalf("parseDump of %d of %d bytes: ok", n, len(p))
		}
	}
	if _, ok := parseDump("\x04"+string(p[1:]), nil); ok {
		t.Fatal("parseDump of a hashtable: ok")
	}
}

func FuzzParseDump(f *testing.F) {
	p, _ := hex.DecodeString(dumpLZF)
	f.Add(p)
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, ok := parseDump(string(b), nil)
		if ok && len(rs)%2 != 0 {
			t.Fatalf("%d values", len(rs))
		}
	})
}

// A snapshot reads buckets whatever their encoding: compressed listpacks,
// values Redis keeps as integers, a bucket too large for a listpack; and
// with HGETALL on a server without DUMP.
func TestSnapshotEncodings(t *testing.T) {
	t.Parallel()
	rdb := redistest.Shared(t).Client(t)
	testSnapshotEncodings(t, New(rdb, Options{Prefix: redistest.NewPrefix(t)}), false)
	mr := miniredis.RunT(t)
	mrdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = mrdb.Close() })
	testSnapshotEncodings(t, New(mrdb, Options{}), true)
}

// In a Cluster, the pipelined DUMPs go to each bucket's node.
func TestSnapshotCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t)
	testSnapshotEncodings(t, New(c.Client(t), Options{Prefix: redistest.NewPrefix(t)}), false)
}

func testSnapshotEncodings(t *testing.T, s *Store, hgetall bool) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	var ans []Answer
	var nums []uint64
	add := func(n uint64, c Capability, at time.Time) {
		ans = append(ans, Answer{Number: n, Capability: c, At: at, Code: "E1", Message: "m"})
		nums = append(nums, n)
	}
	// "1234", a capable record of 2030, is kept as an integer; "-123"
	// starts a rejection of 2027.
	add(919800000001, Capable, Epoch.Add(time.Duration(0x31323334>>2)*time.Second))
	add(919800000002, Rejected, Epoch.Add(time.Duration(0x2d313233>>2)*time.Second))
	add(919800000003, NotCapable, t0)
	// 200 records in one bucket (compressible), 600 in another (more than
	// a listpack holds).
	for i, size := range []int{200, 600} {
		for f := range size {
			field := string([]byte{1, 9, byte(i), byte(f >> 8), byte(f)}) // 33 bits
			n, err := numberOf(uint32(1000+i), field)
			if err != nil || n == 0 || n > MaxNumber {
				continue
			}
			add(n, Capable+Capability(f%2), t0.Add(time.Duration(f/100)*time.Second))
		}
	}
	if err := s.Remember(ctx, ans); err != nil {
		t.Fatal(err)
	}
	want := make([]Record, len(nums))
	if err := s.Recall(ctx, nums, want); err != nil {
		t.Fatal(err)
	}
	sn := s.Snapshot()
	got := make([]Record, len(nums))
	if err := sn.Recall(ctx, nums, got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Snapshot.Recall (-Store.Recall +got):\n%s", diff)
	}
	if want[0].Capability != Capable || want[1].Capability != Rejected || len(nums) < 700 {
		t.Fatalf("records = %+v", want[:2])
	}
	if !hgetall { // the encodings this test means to cover
		lp, err := s.rdb.Dump(ctx, s.capKey(1000)).Result()
		if err != nil || lp[0] != rdbTypeHashListpack || lp[1] != 0xc3 {
			t.Fatalf("bucket 1000 not a compressed listpack: %q, %v", lp, err)
		}
		if enc := s.rdb.ObjectEncoding(ctx, s.capKey(1001)).Val(); enc != "hashtable" {
			t.Fatalf("bucket 1001 encoding %q, want hashtable", enc)
		}
	}
	if sn.hgetall.Load() != hgetall {
		t.Fatalf("read with HGETALL: %v, want %v", sn.hgetall.Load(), hgetall)
	}
}

// BenchmarkSnapshot looks up a memory of 900,000 numbers in a snapshot
// that has read it, a batch of 2,048 numbers an op as enqueue asks them.
//
//	go test -run '^$' -bench Snapshot -cpuprofile cpu.out ./capstore
func BenchmarkSnapshot(b *testing.B) {
	benchFill.Do(func() { benchStore, benchNums, benchErr = fillMemory(b, 900_000) })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	ctx := context.Background()
	out := make([]Record, 2048)
	recall := func(b *testing.B, sn *Snapshot, first int) int {
		batch := benchNums[first:min(first+len(out), len(benchNums))]
		if err := sn.Recall(ctx, batch, out); err != nil {
			b.Fatal(err)
		}
		return (first + len(out)) % len(benchNums)
	}
	b.Run("lookup", func(b *testing.B) {
		sn := benchStore.Snapshot()
		for first := 0; first < len(benchNums); first += len(out) {
			recall(b, sn, first)
		}
		b.ResetTimer()
		first := 0
		for range b.N {
			first = recall(b, sn, first)
		}
	})
}

var (
	benchFill  sync.Once
	benchStore *Store
	benchNums  []uint64
	benchErr   error
)

// fillMemory remembers n numbers in a store of its own.
func fillMemory(b *testing.B, n int) (*Store, []uint64, error) {
	s := New(redistest.Shared(b).Client(b), Options{Prefix: redistest.NewPrefix(b)})
	nums := make([]uint64, n)
	ans := make([]Answer, 0, 10_000)
	at := time.Now().Add(-time.Hour)
	for i := range nums {
		nums[i] = 919_000_000_000 + uint64(i)*7919
		ans = append(ans, Answer{Number: nums[i], Capability: Capable, At: at})
		if len(ans) == cap(ans) || i == n-1 {
			if err := s.Remember(context.Background(), ans); err != nil {
				return nil, nil, err
			}
			ans = ans[:0]
		}
	}
	return s, nums, nil
}
