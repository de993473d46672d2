package outfiles_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

func TestCell(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                         "",
		"9876543210":               "9876543210",
		"+919876543210":            "+919876543210",
		"+91 98765 43210":          "+91 98765 43210",
		"+1 (415) 555-0123":        "+1 (415) 555-0123",
		"-5":                       "-5",
		"Invalid input":            "Invalid input",
		"duplicate of row 3":       "duplicate of row 3",
		"=1+1":                     "'=1+1",
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")",
		"@SUM(A1)":                 "'@SUM(A1)",
		"\t=1":                     "'\t=1",
		"\r=1":                     "'\r=1",
		"+cmd|' /C calc'!A0":       "'+cmd|' /C calc'!A0",
		"-2+3+cmd|' /C calc'!A0":   "'-2+3+cmd|' /C calc'!A0",
		"+1+SUM(A1)":               "'+1+SUM(A1)",
		"+":                        "'+",
		"-":                        "'-",
		" =1+1":                    " =1+1", // a leading space is text to a spreadsheet
	}
	for in, want := range tests {
		if got := outfiles.Cell(in); got != want {
			t.Errorf("Cell(%q) = %q, want %q", in, got, want)
		}
	}
}

// newJob stores a finished job of one chunk of entries, each settled by the
// outcome at the same index, and returns its ID.
func newJob(t *testing.T, s *jobstore.Store, entries []jobstore.Entry, outs []jobstore.Outcome) string {
	t.Helper()
	ctx := context.Background()
	id := redistest.NewPrefix(t)
	if _, _, err := s.CreateJob(ctx, jobstore.Spec{ID: id, Input: "in.csv", Fingerprint: "fp", ChunkSize: len(entries)}); err != nil {
		t.Fatal(err)
	}
	must(t, s.PutChunk(ctx, id, 0, entries))
	n := int64(len(entries))
	if _, err := s.FinishEnqueue(ctx, id, jobstore.Counts{Rows: n, Valid: n}, 1, 0); err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		o.Lo, o.Hi, o.Attempts = i, i+1, 1
		must(t, s.Record(ctx, id, 0, 0, o, jobstore.Counters{Requests: 1}))
	}
	return id
}

// results.csv: free text that a spreadsheet would run is written as text;
// the number stays plain E.164. results.jsonl is not for spreadsheets.
func TestResultsCellsAreText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := jobstore.New(redistest.Shared(t).Client(t))
	id := newJob(t, s,
		[]jobstore.Entry{{Row: 1, Number: "+919876543210", Input: "=1+1"}, {Row: 2, Number: "+919876543211", Input: "+91 98765 43211"}},
		[]jobstore.Outcome{
			{Status: jobstore.Rejected, Code: "@x", Message: "=HYPERLINK(\"http://x\")"},
			{Status: jobstore.Accepted, Code: "MSG402", Message: "-ok"},
		})
	out := t.TempDir()
	if _, err := outfiles.Write(ctx, s, id, out); err != nil {
		t.Fatal(err)
	}
	rows := filetest.ReadCSV(t, filepath.Join(out, id, outfiles.ResultsCSV))
	want := [][]string{
		{"1", "'=1+1", "+919876543210", "rejected", "'@x", "'=HYPERLINK(\"http://x\")"},
		{"2", "+91 98765 43211", "+919876543211", "accepted", "MSG402", "'-ok"},
	}
	for i, w := range want {
		if diff := cmp.Diff(w, rows[i+1][:6]); diff != "" {
			t.Errorf("results.csv line %d (-want +got):\n%s", i+2, diff)
		}
	}
	if _, err := outfiles.Export(ctx, s, id, out, outfiles.JSONL); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, id, outfiles.ResultsJSONL))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"input":"=1+1"`) {
		t.Errorf("results.jsonl changed the input:\n%s", data)
	}
}
