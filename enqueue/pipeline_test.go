package enqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/numgen"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/phonenorm"
)

// collect is a Sink that keeps everything.
type collect struct {
	chunks  [][]Record
	rejects []Record
}

func (c *collect) Chunk(_ context.Context, index int, recs []Record) error {
	if index != len(c.chunks) {
		return fmt.Errorf("chunk %d after %d chunks", index, len(c.chunks))
	}
	c.chunks = append(c.chunks, slices.Clone(recs))
	return nil
}

func (c *collect) Reject(_ context.Context, r Record) error {
	c.rejects = append(c.rejects, r)
	return nil
}

// all returns every record the sink saw, in row order, and checks that the
// sink saw each kind in row order.
func (c *collect) all(t *testing.T, chunkSize int) []Record {
	t.Helper()
	var out []Record
	for i, ch := range c.chunks {
		if len(ch) == 0 || len(ch) > chunkSize || (i < len(c.chunks)-1 && len(ch) != chunkSize) {
			t.Errorf("chunk %d has %d records (chunk size %d)", i, len(ch), chunkSize)
		}
		out = append(out, ch...)
	}
	for _, list := range [][]Record{out, c.rejects} {
		if !slices.IsSortedFunc(list, func(a, b Record) int { return int(a.Row - b.Row) }) {
			t.Errorf("records out of row order")
		}
	}
	out = append(out, c.rejects...)
	slices.SortFunc(out, func(a, b Record) int { return int(a.Row - b.Row) })
	return out
}

func process(t *testing.T, input string, rcfg listreader.Config, pcfg PipelineConfig) ([]Record, Counts) {
	t.Helper()
	rd, err := listreader.New(strings.NewReader(input), rcfg)
	if err != nil {
		t.Fatal(err)
	}
	var c collect
	counts, err := Process(t.Context(), rd, pcfg, &c)
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return c.all(t, cmp.Or(pcfg.ChunkSize, ChunkSizeDefault)), counts
}

// messyInput mixes every input trouble the reader must survive, and returns
// the records it must yield.
func messyInput() (string, []Record) {
	big := strings.Repeat("notes ", 600_000) // 3.6 MB
	bigQuoted := strings.Repeat("a, \"\"b\"\"\n", 250_000)
	var b strings.Builder
	var want []Record
	row := func(line string, rec Record) {
		b.WriteString(line)
		rec.Row = int64(len(want) + 1)
		want = append(want, rec)
	}
	ok := func(input, number string) Record { return Record{Input: input, Number: number} }
	rej := func(input, reason string) Record { return Record{Input: input, Reason: reason} }

	b.WriteString("\xef\xbb\xbfid,name,Phone Number,note\r\n\r\n")
	row("1,Alice,+91 98765 43210,ok\r\n", ok("+91 98765 43210", "+919876543210"))
	b.WriteString("\r\n   \r\n")
	row("2,\"Bob, Jr.\",098765 43211,\"line1\r\nline2, with comma\"\r\n", ok("098765 43211", "+919876543211"))
	row("3,\xff\xfeCaf\xe9,+1 415 555 2671,\r\n", ok("+1 415 555 2671", "+14155552671"))
	row("4,Dan\r\n", rej("", phonenorm.ReasonMissing))
	row("5,Eve,,x\r\n", rej("", phonenorm.ReasonMissing))
	row("6,Fay,+919876543210,dup\r\n", rej("+919876543210", "duplicate of row 1"))
	row("7,Gus,12345,\r\n", rej("12345", phonenorm.ReasonInvalid))
	row("8,\"Hal,+919876543212,x\r\n", rej("8,\"Hal,+919876543212,x", listreader.ReasonMalformed))
	row("9,Ivy,9876543213,"+big+"\r\n", ok("9876543213", "+919876543213"))
	row("10,Jo,\"+44 7911 123456\",\""+bigQuoted+"\"\r\n", ok("+44 7911 123456", "+447911123456"))
	row("11,Kim,+447911123456,dup2\r\n", rej("+447911123456", "duplicate of row 10"))
	row("12,Lee,\"n/a\",\r\n", rej("n/a", phonenorm.ReasonInvalid))
	long := "+91" + strings.Repeat("9", 100)
	row("13,Mo,"+long+",\r\n", rej(long, phonenorm.ReasonInvalid))
	row("14,Ned,  09876543211 ,\r\n", rej("  09876543211 ", "duplicate of row 2"))
	row("15,\"O\"\"Neil\",9876543214,\"unclosed\r\n", rej("15,\"O\"\"Neil\",9876543214,\"unclosed", listreader.ReasonMalformed))
	row("16,Pat,+49 30 901820,\r\n", ok("+49 30 901820", "+4930901820"))
	row("17,Quo,\"+91 98765 43215\"\"\",\r\n", rej("+91 98765 43215\"", phonenorm.ReasonInvalid))
	long2 := big + big // 7 MB in the number column: invalid, reported cut
	row("18,Ray,"+long2+"\r\n", rej(long2[:listreader.MaxInputLen], phonenorm.ReasonInvalid))
	row("19,Sam,+919876543216", ok("+919876543216", "+919876543216"))
	return b.String(), want
}

func TestProcessMessyInput(t *testing.T) {
	t.Parallel()
	input, want := messyInput()
	for _, cfg := range []PipelineConfig{
		{},
		{ChunkSize: 1, Workers: 1, BatchSize: 1},
		{ChunkSize: 2, Workers: 4, BatchSize: 3},
		{ChunkSize: 3, Workers: 3, BatchSize: 2},
	} {
		t.Run(fmt.Sprintf("chunk=%d,workers=%d,batch=%d", cfg.ChunkSize, cfg.Workers, cfg.BatchSize), func(t *testing.T) {
			t.Parallel()
			got, counts := process(t, input, listreader.Config{}, cfg)
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			// Library: row 17's stray quote is no shape the fast path decides.
			wantCounts := Counts{Counts: jobstore.Counts{Rows: 19, Valid: 7, Invalid: 5, Missing: 2, Malformed: 2, Duplicates: 3}, Library: 1}
			cs := cmp.Or(cfg.ChunkSize, ChunkSizeDefault)
			wantCounts.Chunks = int((wantCounts.Valid + int64(cs) - 1) / int64(cs))
			if diff := gocmp.Diff(wantCounts, counts); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProcessOrder checks re-sequencing and first-seen dedupe on a long list
// cut into many small batches for many workers.
func TestProcessOrder(t *testing.T) {
	t.Parallel()
	nums := numgen.Sample(5_000, 3)
	input := "phone\n" + strings.Join(nums, "\n") + "\n"
	want, wantCounts := process(t, input, listreader.Config{}, PipelineConfig{ChunkSize: 100, Workers: 1, BatchSize: 5_000})
	got, counts := process(t, input, listreader.Config{}, PipelineConfig{ChunkSize: 100, Workers: 8, BatchSize: 7})
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("8 workers differ from 1 (-want +got):\n%s", diff)
	}
	if counts != wantCounts {
		t.Errorf("counts %+v, want %+v", counts, wantCounts)
	}
	if wantCounts.Duplicates < 200 || wantCounts.Invalid == 0 {
		t.Errorf("sample has %+v: want duplicates and invalid numbers", wantCounts)
	}
	// Every record is accounted for; the first of each number goes on.
	seen := map[string]int64{}
	for i, r := range want {
		if r.Row != int64(i+1) {
			t.Fatalf("record %d has row %d", i, r.Row)
		}
		if r.Number != "" {
			if first, ok := seen[r.Number]; ok {
				t.Fatalf("row %d: %s already sent from row %d", r.Row, r.Number, first)
			}
			seen[r.Number] = r.Row
		}
	}
}

// failSink fails on its nth call.
type failSink struct {
	n     atomic.Int64
	after int64
}

var errSink = errors.New("sink failed")

func (f *failSink) Chunk(context.Context, int, []Record) error { return f.call() }
func (f *failSink) Reject(context.Context, Record) error       { return f.call() }
func (f *failSink) call() error {
	if f.n.Add(1) > f.after {
		return errSink
	}
	return nil
}

func TestProcessStops(t *testing.T) {
	t.Parallel()
	input := "phone\n" + strings.Repeat("n/a\n+919876543210\n", 50_000)
	t.Run("sink error", func(t *testing.T) {
		t.Parallel()
		rd := newReader(t, strings.NewReader(input))
		_, err := Process(t.Context(), rd, PipelineConfig{ChunkSize: 10, BatchSize: 16}, &failSink{after: 500})
		if !errors.Is(err, errSink) {
			t.Errorf("err = %v, want errSink", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		rd := newReader(t, strings.NewReader(input))
		var c collect
		counts, err := Process(ctx, rd, PipelineConfig{BatchSize: 16, Progress: func(rows int64) {
			if rows > 1000 {
				cancel()
			}
		}}, &c)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if counts.Rows >= 100_000 {
			t.Errorf("read all %d rows despite the cancel", counts.Rows)
		}
	})
	t.Run("read error", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("disk on fire")
		rd := newReader(t, io.MultiReader(strings.NewReader(input), errReader{boom}))
		var c collect
		_, err := Process(t.Context(), rd, PipelineConfig{}, &c)
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
	})
}

// newReader returns a reader of r with the default options.
func newReader(t *testing.T, r io.Reader) *listreader.Reader {
	t.Helper()
	rd, err := listreader.New(r, listreader.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func BenchmarkPipeline(b *testing.B) {
	const n = 100_000
	nums := numgen.Sample(n, 11)
	input := "id,name,phone\n"
	var sb strings.Builder
	sb.WriteString(input)
	for i, s := range nums {
		fmt.Fprintf(&sb, "%d,Name %d,%s\n", i, i, s)
	}
	data := sb.String()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd, err := listreader.New(strings.NewReader(data), listreader.Config{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Process(b.Context(), rd, PipelineConfig{}, discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
}

type discard struct{}

func (discard) Chunk(context.Context, int, []Record) error { return nil }
func (discard) Reject(context.Context, Record) error       { return nil }

// startSink notes, at its first chunk, how many rows the pipeline had read
// and how many numbers it had asked the memory for.
type startSink struct {
	collect
	rows, mem    *atomic.Int64
	rowsAtChunk0 [2]int64 // when Chunk 0 is called and when it returns
	memAtChunk0  int64
	events       []string
}

func (s *startSink) Chunk(ctx context.Context, index int, recs []Record) error {
	if index == 0 {
		s.rowsAtChunk0[0], s.memAtChunk0 = s.rows.Load(), s.mem.Load()
		s.events = append(s.events, "chunk 0")
		runtime.Gosched() // a reader that was not held would read on
		s.rowsAtChunk0[1] = s.rows.Load()
	}
	return s.collect.Chunk(ctx, index, recs)
}

// startMemory counts the numbers recalled and notes when its background
// read is held and started.
type startMemory struct {
	n      *atomic.Int64
	held   atomic.Bool
	early  atomic.Bool // a Recall before HoldPrefetch
	events *[]string   // appended to by the consumer's goroutine only
}

func (m *startMemory) Recall(_ context.Context, numbers []uint64, out []capstore.Record) error {
	if !m.held.Load() {
		m.early.Store(true)
	}
	m.n.Add(int64(len(numbers)))
	clear(out[:len(numbers)])
	return nil
}

func (m *startMemory) HoldPrefetch()              { m.held.Store(true) }
func (m *startMemory) Prefetch(_ context.Context) { *m.events = append(*m.events, "prefetch") }

// TestProcessStart: until the first chunk is out, the pipeline reads and
// recalls that chunk's rows and a quarter more, no further; then the
// memory's background read starts and Started is called, once. A list
// that starts with more rows than that without a chunk opens after 4 times
// as many.
func TestProcessStart(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, input string) (*startSink, Counts) {
		t.Helper()
		var rows, mem atomic.Int64
		s := &startSink{rows: &rows, mem: &mem}
		m := &startMemory{n: &mem, events: &s.events}
		cfg := PipelineConfig{ChunkSize: 1000, Workers: 2, Memory: m, Progress: rows.Store,
			Started: func() { s.events = append(s.events, "started") }}
		counts, err := Process(t.Context(), newReader(t, strings.NewReader(input)), cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		if m.early.Load() {
			t.Error("the memory was read before its background read was held")
		}
		return s, counts
	}
	var sb strings.Builder
	sb.WriteString("phone\n")
	for i := range 20_000 {
		fmt.Fprintf(&sb, "+9198%08d\n", i)
	}
	valid := sb.String()

	s, counts := run(t, valid)
	if s.rowsAtChunk0 != [2]int64{1250, 1250} || s.memAtChunk0 != 1250 {
		t.Errorf("at the first chunk: rows read %v, numbers recalled %d; want 1250 each", s.rowsAtChunk0, s.memAtChunk0)
	}
	if want := []string{"chunk 0", "prefetch", "started"}; !slices.Equal(s.events, want) {
		t.Errorf("events %q, want %q", s.events, want)
	}
	if counts.Valid != 20_000 || counts.Chunks != 20 {
		t.Errorf("counts %+v", counts)
	}

	// 6,000 rows without a number first: the start ends after 5,000.
	s, counts = run(t, "phone\n"+strings.Repeat("n/a\n", 6_000)+valid[len("phone\n"):])
	if want := []string{"prefetch", "started", "chunk 0"}; !slices.Equal(s.events, want) {
		t.Errorf("events %q, want %q", s.events, want)
	}
	if counts.Invalid != 6_000 || counts.Valid != 20_000 || len(s.chunks) != 20 {
		t.Errorf("counts %+v, %d chunks", counts, len(s.chunks))
	}
}
