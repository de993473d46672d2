package enqueue

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/capcheck/capcheck/listreader"
)

// FuzzProcess feeds arbitrary bytes through the reader and the pipeline: it
// must never panic, and every record the reader yields must come out of the
// pipeline exactly once, as a number or as a reject, in row order, the same
// with any number of workers. (listreader.FuzzReader fuzzes the reader
// alone.)
//
//	go test -fuzz FuzzProcess -fuzztime 60s ./enqueue/
func FuzzProcess(f *testing.F) {
	for _, s := range []string{
		"",
		"phone\n+919876543210\n",
		"+91 98765 43210\n9876543210\r\n\r\nn/a\n",
		"\xef\xbb\xbfid,Phone Number\r\n1,\"+91 98765, 43210\"\r\n2,\"a\nb\"\r\n",
		"phone,name\n+911,\"Bob\n+912,Alice\n+913,\"Carol\"\n",
		"\x1f\x8b\x08\x00\x00\x00\x00\x00",
	} {
		f.Add([]byte(s), uint16(0), uint8(2))
		f.Add([]byte(s), uint16(3), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, span uint16, workers uint8) {
		// A hang is a bug too: make it a crash, so the fuzzer keeps the input.
		watchdog := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("stuck on %q", data)) })
		defer watchdog.Stop()
		cfg := listreader.Config{MaxQuotedSpan: int(span)}
		rd, err := listreader.New(bytes.NewReader(data), cfg)
		if err != nil {
			return // e.g. a corrupt gzip header: an error, not a panic
		}
		var direct []listreader.Record
		for {
			r, err := rd.Next()
			if err != nil {
				break // listreader.FuzzReader checks the reader's errors
			}
			direct = append(direct, r)
		}

		rd, err = listreader.New(bytes.NewReader(data), cfg)
		if err != nil {
			t.Fatalf("second read: %v", err)
		}
		var c collect
		counts, err := Process(context.Background(), rd, PipelineConfig{ChunkSize: 2, BatchSize: 3, Workers: int(workers%4) + 1}, &c)
		if err != nil && !rd.Format().Gzip {
			t.Fatalf("Process: %v", err)
		}
		if err != nil {
			return
		}
		got := c.all(t, 2)
		if len(got) != len(direct) || counts.Rows != int64(len(direct)) {
			t.Fatalf("pipeline gave %d records (counts %d), reader %d", len(got), counts.Rows, len(direct))
		}
		if counts.Valid+counts.Rejected() != counts.Rows {
			t.Fatalf("counts do not add up: %+v", counts)
		}
		for i, r := range got {
			d := direct[i]
			if r.Row != d.Row || r.Input != d.Input {
				t.Fatalf("record %d: pipeline %+v, reader %+v", i, r, d)
			}
			if d.Reason != "" && r.Reason != d.Reason {
				t.Fatalf("row %d: reader said %q, pipeline %q", r.Row, d.Reason, r.Reason)
			}
			if (r.Number == "") == (r.Reason == "") {
				t.Fatalf("row %d: number %q with reason %q", r.Row, r.Number, r.Reason)
			}
		}
	})
}
