package outfiles_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func TestWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := jobstore.New(redistest.Shared(t).Client(t))
	id := redistest.NewPrefix(t)
	out := t.TempDir()
	if _, _, err := s.CreateJob(ctx, jobstore.Spec{ID: id, Input: "in.csv", Fingerprint: "fp", ChunkSize: 2}); err != nil {
		t.Fatal(err)
	}
	must(t, s.PutChunk(ctx, id, 0, []jobstore.Entry{
		{Row: 1, Number: "+919876543210", Input: "9876543210"},
		{Row: 3, Number: "+14155550123", Input: `"(415) 555-0123", home`},
	}))
	must(t, s.PutChunk(ctx, id, 1, []jobstore.Entry{{Row: 4, Number: "+442071838750", Input: "+442071838750"}}))
	must(t, s.PutRejects(ctx, id, 0, []byte("2,abc,invalid\n5,9876543210,duplicate of row 1\n")))
	if _, err := s.FinishEnqueue(ctx, id, jobstore.Counts{Rows: 5, Valid: 3, Invalid: 1, Duplicates: 1}, 2, 1); err != nil {
		t.Fatal(err)
	}
	must(t, s.Record(ctx, id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 2, Split: true, Attempts: 1}, jobstore.Counters{Requests: 1}))
	must(t, s.Record(ctx, id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted, Code: "MSG402", Message: "Request Successfully Processed", Attempts: 2, CheckedAt: 1795855256000}, jobstore.Counters{Requests: 1, Accepted: 1}))

	if _, err := outfiles.Write(ctx, s, id, out); !errors.Is(err, outfiles.ErrUnsettled) {
		t.Fatalf("Write with an unsettled number: err = %v, want ErrUnsettled", err)
	}
	if _, err := os.Stat(filepath.Join(out, id, outfiles.ResultsCSV)); !os.IsNotExist(err) {
		t.Fatalf("a failed Write left results.csv behind (stat err %v)", err)
	}

	must(t, s.Record(ctx, id, 0, 0, jobstore.Outcome{Lo: 1, Hi: 2, Status: jobstore.Rejected, Code: "RBC529", Message: "Invalid input or validation error!", Attempts: 2, CheckedAt: 1795855256100}, jobstore.Counters{Requests: 1, Rejected: 1}))
	must(t, s.Record(ctx, id, 0, 1, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Failed, Message: "503 Service Unavailable", Attempts: 5, CheckedAt: 1795855257000}, jobstore.Counters{Requests: 5, Retries: 4, Failed: 1}))

	sum, err := outfiles.Write(ctx, s, id, out)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(out, id, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	wantResults := `row,input,number,status,code,message,attempts,checked_at,capability,capability_at
1,9876543210,+919876543210,accepted,MSG402,Request Successfully Processed,2,2026-11-28T08:40:56Z,,
3,"""(415) 555-0123"", home",+14155550123,rejected,RBC529,Invalid input or validation error!,2,2026-11-28T08:40:56.1Z,,
4,+442071838750,+442071838750,failed,,503 Service Unavailable,5,2026-11-28T08:40:57Z,,
`
	if diff := cmp.Diff(wantResults, read(outfiles.ResultsCSV)); diff != "" {
		t.Errorf("results.csv (-want +got):\n%s", diff)
	}
	wantRejects := "row,input,reason\n2,abc,invalid\n5,9876543210,duplicate of row 1\n"
	if diff := cmp.Diff(wantRejects, read(outfiles.RejectsCSV)); diff != "" {
		t.Errorf("rejects.csv (-want +got):\n%s", diff)
	}
	var got outfiles.Summary
	if err := json.Unmarshal([]byte(read(outfiles.SummaryJSON)), &got); err != nil {
		t.Fatal(err)
	}
	wantCounts := map[string]int64{"accepted": 1, "rejected": 1, "failed": 1}
	if diff := cmp.Diff(wantCounts, got.Results); diff != "" {
		t.Errorf("summary results (-want +got):\n%s", diff)
	}
	if got.Attempts != 9 || got.Requests != 8 || got.Rejects["duplicates"] != 1 || got.State != "done" || sum.Rows != 5 {
		t.Errorf("summary = %+v", got)
	}

	if _, err := outfiles.Export(ctx, s, id, out, outfiles.JSONL); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(read(outfiles.ResultsJSONL)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"status":"failed"`) {
		t.Errorf("results.jsonl = %q", lines)
	}
	// A crashed writer's temporary file goes at the next write, once stale.
	stale := filepath.Join(out, id, ".results.csv.tmp-123")
	must(t, os.WriteFile(stale, []byte("partial"), 0o644))
	old := time.Now().Add(-7 * time.Hour)
	must(t, os.Chtimes(stale, old, old))
	if _, err := outfiles.Write(ctx, s, id, out); err != nil {
		t.Fatal(err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, id, ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// CheckWritable creates a missing folder, leaves nothing in it, and refuses
// a path that is no folder.
func TestCheckWritable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "out")
	if err := outfiles.CheckWritable(dir); err != nil {
		t.Fatalf("CheckWritable(a missing folder) = %v", err)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("the folder after the check: %v, %v; want it empty", ents, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(file, "out")} {
		if err := outfiles.CheckWritable(p); err == nil {
			t.Errorf("CheckWritable(%s) = nil, want an error", p)
		}
	}
	if os.Geteuid() != 0 { // root writes in a read-only folder
		ro := t.TempDir()
		if err := os.Chmod(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		if err := outfiles.CheckWritable(ro); err == nil {
			t.Errorf("CheckWritable(a read-only folder) = nil, want an error")
		}
	}
}

// A write removes the temporary files of the same output that writers
// killed before their rename left, and only those: older than an hour, not
// a fresh one (a live writer's whose lock is per host on NFS), not a locked
// one, not another output's. They stayed for 6 hours.
func TestWriteAtomicRemovesDeadTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	put := func(name string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("part of a file"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := []string{put(".results.csv.tmp-1a2b", old), put(".results.csv.tmp-3c4d", old)}
	kept := []string{
		put(".results.csv.tmp-fresh", time.Now().Add(-50*time.Minute)),
		put(".rejects.csv.tmp-5e6f", old),
		put("results.csv.tmp-not-ours", old),
	}
	live := put(".results.csv.tmp-live", old)
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, live)

	if err := outfiles.WriteAtomic(filepath.Join(dir, outfiles.ResultsCSV), func(w io.Writer) error {
		_, err := io.WriteString(w, "row\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range dead {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a dead writer's temporary file is still there (%v)", filepath.Base(p), err)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: removed (%v); want it kept", filepath.Base(p), err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, outfiles.ResultsCSV)); err != nil || string(b) != "row\n" {
		t.Errorf("results.csv = %q, %v", b, err)
	}
}

// Writers of one file at once (a worker and a wait sharing --out) never
// remove each other's temporary file: every write succeeds, none is left.
func TestWriteAtomicConcurrentWriters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, outfiles.ResultsCSV)
	errs := make(chan error, 8*20)
	for range 8 {
		go func() {
			for range 20 {
				errs <- outfiles.WriteAtomic(path, func(w io.Writer) error {
					_, err := io.WriteString(w, strings.Repeat("row\n", 1000))
					return err
				})
			}
		}()
	}
	for range 8 * 20 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Errorf("files left: %v, %v; want results.csv alone", ents, err)
	}
}
