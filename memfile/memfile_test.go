package memfile_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/memfile"
)

var t0 = time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)

func rec(c capstore.Capability, at time.Time) capstore.Record {
	return capstore.Record{Capability: c, At: at}
}

// write merges add into base and maps the result from a file of its own.
func write(t testing.TB, base *memfile.File, add *memfile.Answers, o memfile.MergeOptions) (*memfile.File, memfile.MergeStats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := memfile.Merge(&buf, base, add, o)
	if err != nil {
		t.Fatal(err)
	}
	return mapBytes(t, buf.Bytes()), st
}

func mapBytes(t testing.TB, b []byte) *memfile.File {
	t.Helper()
	f, err := mapFile(t, b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mapFile(t testing.TB, b []byte) (*memfile.File, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "memory")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := memfile.Map(f)
	if err == nil {
		t.Cleanup(func() { m.Close() })
	}
	return m, err
}

func all(t *testing.T, m *memfile.File) map[uint64]capstore.Record {
	t.Helper()
	out := map[uint64]capstore.Record{}
	if err := m.Each(func(n uint64, r capstore.Record) error { out[n] = r; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func recall(t *testing.T, m *memfile.File, nums ...uint64) []capstore.Record {
	t.Helper()
	out := make([]capstore.Record, len(nums))
	for i := range out {
		out[i] = rec(capstore.Capable, t0) // Recall must clear what it does not find
	}
	if err := m.Recall(context.Background(), nums, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	want := map[uint64]capstore.Record{
		1:                    rec(capstore.Capable, t0),
		14155552671:          rec(capstore.NotCapable, t0.Add(-time.Hour)),
		919876543210:         rec(capstore.Unknown, t0.Add(time.Second)),
		919876543211:         {Capability: capstore.Rejected, At: t0, Reason: 2},
		capstore.MaxNumber:   rec(capstore.Capable, capstore.Epoch),
		33612345678:          {Capability: capstore.Rejected, At: t0.Add(48 * time.Hour), Reason: 1},
		33612345679:          rec(capstore.NotCapable, t0),
		919876543210 + 1<<20: rec(capstore.Capable, t0),
	}
	reasons := map[uint16]capstore.Reason{1: {Code: "E21", Message: "not a mobile number"}, 2: {Code: "E30", Message: ""}}
	var add memfile.Answers
	for n, r := range want {
		add.Add(n, r)
	}
	m, st := write(t, nil, &add, memfile.MergeOptions{Now: t0, Reasons: reasons})
	if st.Numbers != len(want) || st.Added != len(want) || m.Len() != len(want) {
		t.Fatalf("stats %+v, Len %d; want %d numbers", st, m.Len(), len(want))
	}
	if m.Size() != int64(len(want)*memfile.RecordSize+32+(6+3+19)+(6+3)) || !m.SavedAt().Equal(t0) {
		t.Errorf("Size %d, SavedAt %v", m.Size(), m.SavedAt())
	}
	if diff := cmp.Diff(want, all(t, m)); diff != "" {
		t.Fatalf("Each (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(reasons, m.Reasons()); diff != "" {
		t.Fatalf("Reasons (-want +got):\n%s", diff)
	}
	// Ascending, descending and mixed batches, with numbers not remembered.
	for _, nums := range [][]uint64{
		{1, 2, 14155552671, 33612345678, 33612345679, 33612345680, 919876543210, 919876543211, capstore.MaxNumber},
		{capstore.MaxNumber, 919876543211, 919876543210, 33612345680, 14155552671, 1, 0},
		{919876543210, 5, 919876543210 + 1<<20, 1, 33612345678, 999, 14155552671},
	} {
		got := recall(t, m, nums...)
		for i, n := range nums {
			if got[i] != want[n] {
				t.Errorf("Recall(%d) = %+v, want %+v", n, got[i], want[n])
			}
		}
	}
	// An empty memory, and a nil one, remember nothing.
	empty, _ := write(t, nil, nil, memfile.MergeOptions{Now: t0})
	for _, m := range []*memfile.File{empty, nil} {
		if got := recall(t, m, 1, 14155552671); !got[0].IsZero() || !got[1].IsZero() || m.Len() != 0 {
			t.Errorf("empty memory recalls %+v", got)
		}
	}
}

func TestMergeNewerWins(t *testing.T) {
	t.Parallel()
	const a, b, c, d, e = 33600000001, 33600000002, 33600000003, 33600000004, 33600000005
	var first memfile.Answers
	first.Add(a, rec(capstore.Capable, t0))
	first.Add(b, rec(capstore.NotCapable, t0))
	first.Add(c, rec(capstore.Capable, t0))
	first.Add(e, rec(capstore.Capable, t0))
	base, _ := write(t, nil, &first, memfile.MergeOptions{Now: t0})

	var next memfile.Answers
	next.Add(a, rec(capstore.NotCapable, t0.Add(-time.Hour))) // older: a late answer changes nothing
	next.Add(b, rec(capstore.Capable, t0.Add(time.Hour)))     // newer: replaces
	next.Add(c, rec(capstore.NotCapable, t0))                 // the same second, received later: replaces
	next.Add(d, rec(capstore.Unknown, t0.Add(2*time.Hour)))   // new
	next.Add(d, rec(capstore.Capable, t0.Add(time.Hour)))     // an older one given later loses
	m, st := write(t, base, &next, memfile.MergeOptions{Now: t0.Add(3 * time.Hour)})
	want := map[uint64]capstore.Record{
		a: rec(capstore.Capable, t0),
		b: rec(capstore.Capable, t0.Add(time.Hour)),
		c: rec(capstore.NotCapable, t0),
		d: rec(capstore.Unknown, t0.Add(2*time.Hour)),
		e: rec(capstore.Capable, t0),
	}
	if diff := cmp.Diff(want, all(t, m)); diff != "" {
		t.Fatalf("merged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(memfile.MergeStats{Numbers: 5, Added: 1, Replaced: 2}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestMergeForgets(t *testing.T) {
	t.Parallel()
	var add memfile.Answers
	want := map[uint64]capstore.Record{}
	for i := range uint64(100) {
		r := rec(capstore.Capable, t0.Add(-time.Duration(i)*time.Hour))
		add.Add(33600000000+i, r)
		want[33600000000+i] = r
	}
	base, _ := write(t, nil, &add, memfile.MergeOptions{Now: t0})
	if diff := cmp.Diff(want, all(t, base)); diff != "" {
		t.Fatalf("base (-want +got):\n%s", diff)
	}
	// An answer as old as --forget-after is dropped (rows 24..99), and the
	// numbers listed to forget (one not remembered).
	var newer memfile.Answers
	newer.Add(33600000099, rec(capstore.NotCapable, t0)) // renewed: kept
	m, st := write(t, base, &newer, memfile.MergeOptions{Now: t0, ForgetAfter: 24 * time.Hour,
		Forget: []uint64{33600000003, 44000000000, 33600000001}})
	for i := uint64(24); i < 99; i++ {
		delete(want, 33600000000+i)
	}
	delete(want, 33600000001)
	delete(want, 33600000003)
	want[33600000099] = rec(capstore.NotCapable, t0)
	if diff := cmp.Diff(want, all(t, m)); diff != "" {
		t.Fatalf("merged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(memfile.MergeStats{Numbers: 23, Replaced: 1, Expired: 75, Forgotten: 2}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestMergeRefusesOutOfRange(t *testing.T) {
	t.Parallel()
	for _, n := range []uint64{0, capstore.MaxNumber + 1} {
		var add memfile.Answers
		add.Add(n, rec(capstore.Capable, t0))
		if _, err := memfile.Merge(new(bytes.Buffer), nil, &add, memfile.MergeOptions{}); err == nil {
			t.Errorf("number %d merged", n)
		}
	}
}

// No part of a file is taken for a memory file, and a file changed on
// disk fails the pass that reads it whole (a merge: nothing damaged is
// carried on).
func TestTornOrDamagedFile(t *testing.T) {
	t.Parallel()
	var add memfile.Answers
	for i := range uint64(50) {
		add.Add(33600000000+i*7, capstore.Record{Capability: capstore.Rejected, At: t0, Reason: 1})
	}
	var buf bytes.Buffer
	if _, err := memfile.Merge(&buf, nil, &add, memfile.MergeOptions{Now: t0,
		Reasons: map[uint16]capstore.Reason{1: {Code: "E1", Message: "bad"}}}); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	for n := range len(whole) {
		if _, err := mapFile(t, whole[:n]); !errors.Is(err, memfile.ErrCorrupt) {
			t.Fatalf("the first %d of %d bytes mapped: %v", n, len(whole), err)
		}
	}
	for _, at := range []int{0, 13*20 + 3, 13 * 50} { // a number, a record, a reason
		bad := bytes.Clone(whole)
		bad[at] ^= 0x40
		m, err := mapFile(t, bad)
		if err != nil {
			t.Fatalf("byte %d changed: %v", at, err)
		}
		if _, err := memfile.Merge(new(bytes.Buffer), m, nil, memfile.MergeOptions{}); !errors.Is(err, memfile.ErrCorrupt) {
			t.Errorf("byte %d changed: merge error %v, want ErrCorrupt", at, err)
		}
	}
}

// Recall at 1M remembered numbers reads the mapping in place: the heap does
// not grow with the file, and a batch allocates nothing.
func TestRecallHeapAtOneMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 1M-number file (13 MB); run without -short")
	}
	const n = 1_000_000
	const first = 919800000000
	var add memfile.Answers
	for i := range uint64(n) {
		add.Add(first+3*i, rec(capstore.Capability(1+i%3), t0))
	}
	path := filepath.Join(t.TempDir(), "memory")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := memfile.Merge(out, nil, &add, memfile.MergeOptions{Now: t0}); err != nil {
		t.Fatal(err)
	}
	out.Close()
	add = memfile.Answers{}

	before := heapInUse()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := memfile.Map(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	batch := make([]uint64, 4096)
	recs := make([]capstore.Record, len(batch))
	found := 0
	for start := uint64(0); start < 3*n; start += uint64(len(batch)) {
		for i := range batch {
			batch[i] = first + start + uint64(i)
		}
		if err := m.Recall(ctx, batch, recs); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if want := (batch[i]-first)%3 == 0 && batch[i] < first+3*n; r.IsZero() == want {
				t.Fatalf("Recall(%d) = %+v", batch[i], r)
			}
			if !r.IsZero() {
				found++
			}
		}
	}
	if found != n {
		t.Fatalf("found %d of %d numbers", found, n)
	}
	grown := heapInUse() - before
	t.Logf("file %d bytes (%.1f a number); heap grew %d bytes", m.Size(), float64(m.Size())/n, grown)
	if grown > 256<<10 {
		t.Errorf("heap grew %d bytes for a %d-byte file", grown, m.Size())
	}
	if m.Size() > 16*n {
		t.Errorf("file of %d bytes: more than 16 a number", m.Size())
	}
	for i := range batch { // unsorted, as enqueue might ask
		batch[i] = first + uint64((i*7919)%(3*n))
	}
	if a := testing.AllocsPerRun(20, func() { _ = m.Recall(ctx, batch, recs) }); a != 0 {
		t.Errorf("Recall allocates %.0f times a batch", a)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func BenchmarkRecall(b *testing.B) {
	const n = 1_000_000
	var add memfile.Answers
	for i := range uint64(n) {
		add.Add(919800000000+3*i, rec(capstore.Capable, t0))
	}
	m, _ := write(b, nil, &add, memfile.MergeOptions{Now: t0})
	batch := make([]uint64, 4096)
	for i := range batch {
		batch[i] = 919800000000 + uint64(i)*700
	}
	recs := make([]capstore.Record, len(batch))
	b.ResetTimer()
	for b.Loop() {
		_ = m.Recall(context.Background(), batch, recs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/number")
}
