package outfiles_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

// BenchmarkWrite measures finalize: results.csv of 100 chunks of 1000
// numbers, each settled in batches of 50, read from Redis. rows/s is the
// figure docs/benchmarks.md gives.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	s := jobstore.New(redistest.Shared(b).Client(b))
	id := redistest.NewPrefix(b)
	const chunks, size, batch = 100, 1000, 50
	if _, _, err := s.CreateJob(ctx, jobstore.Spec{ID: id, Input: "in.csv", Fingerprint: "fp", ChunkSize: size}); err != nil {
		b.Fatal(err)
	}
	row := int64(0)
	for i := range chunks {
		entries := make([]jobstore.Entry, size)
		for k := range entries {
			row++
			n := fmt.Sprintf("+9198%08d", row)
			entries[k] = jobstore.Entry{Row: row, Number: n, Input: n}
		}
		if err := s.PutChunk(ctx, id, i, entries); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.FinishEnqueue(ctx, id, jobstore.Counts{Rows: row, Valid: row}, chunks, 0); err != nil {
		b.Fatal(err)
	}
	for i := range chunks {
		for lo := 0; lo < size; lo += batch {
			o := jobstore.Outcome{Lo: lo, Hi: lo + batch, Status: jobstore.Accepted, Code: "MSG402",
				Message: "Request Successfully Processed", Attempts: 1, CheckedAt: 1795855256000 + int64(lo)}
			if err := s.Record(ctx, id, 0, i, o, jobstore.Counters{Requests: 1, Accepted: batch}); err != nil {
				b.Fatal(err)
			}
		}
	}
	out := b.TempDir()
	b.ResetTimer()
	for b.Loop() {
		if _, err := outfiles.Write(ctx, s, id, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(chunks*size)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
