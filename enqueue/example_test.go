package enqueue_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/listreader"
)

// printer is a Sink that prints what it gets.
type printer struct{}

func (printer) Chunk(_ context.Context, index int, recs []enqueue.Record) error {
	for _, r := range recs {
		fmt.Printf("chunk %d: row %d %s (from %q)\n", index, r.Row, r.Number, r.Input)
	}
	return nil
}

func (printer) Reject(_ context.Context, r enqueue.Record) error {
	fmt.Printf("reject: row %d %q: %s\n", r.Row, r.Input, r.Reason)
	return nil
}

func Example() {
	list := "name,Phone Number,city\n" +
		"Asha,098765 43210,Pune\n" +
		"\n" + // blank lines are not rows
		"Ravi,+91 98765 43210,Pune\n" +
		"Meera,n/a,Goa\n" +
		"John,+1 415 555 2671,\"San Francisco, CA\"\n" +
		"Li\n"
	rd, err := listreader.New(strings.NewReader(list), listreader.Config{DefaultRegion: "IN"})
	if err != nil {
		fmt.Println(err)
		return
	}
	f := rd.Format()
	fmt.Printf("column %d %q, delimiter %q\n", f.Column+1, f.ColumnName, f.Delimiter)

	counts, err := enqueue.Process(context.Background(), rd, enqueue.PipelineConfig{ChunkSize: 2}, printer{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d rows: %d valid in %d chunk(s), %d rejected\n", counts.Rows, counts.Valid, counts.Chunks, counts.Rejected())
	// Output:
	// column 2 "Phone Number", delimiter ','
	// reject: row 2 "+91 98765 43210": duplicate of row 1
	// reject: row 3 "n/a": invalid
	// chunk 0: row 1 +919876543210 (from "098765 43210")
	// chunk 0: row 4 +14155552671 (from "+1 415 555 2671")
	// reject: row 5 "": missing
	// 5 rows: 2 valid in 1 chunk(s), 3 rejected
}
