package outfiles_test

import (
	"context"
	"testing"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/outfiles"
)

// Current: the files a finalize wrote under outDir are the finished job's;
// another folder's, or those of a job not finished, are not.
func TestCurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := jobstore.New(redistest.Shared(t).Client(t))
	id := newJob(t, s, []jobstore.Entry{{Row: 1, Number: "+919876543210", Input: "9876543210"}},
		[]jobstore.Outcome{{Status: jobstore.Accepted, Code: "MSG402"}})
	out := t.TempDir()
	job := func() *jobstore.Job {
		j, err := s.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	if _, err := s.FinishChunk(ctx, id, 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.BeginFinalize(ctx, id, 0); err != nil || !ok {
		t.Fatalf("BeginFinalize = %v, %v", ok, err)
	}
	if _, err := outfiles.Write(ctx, s, id, out); err != nil {
		t.Fatal(err)
	}
	if outfiles.Current(out, job()) {
		t.Error("Current before the job finished")
	}
	if _, err := s.EndFinalize(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if !outfiles.Current(out, job()) {
		t.Error("not Current: the files of the finalize that finished the job")
	}
	if outfiles.Current(t.TempDir(), job()) {
		t.Error("Current in an empty folder")
	}
	j := job()
	j.Gen++
	if outfiles.Current(out, j) {
		t.Error("Current for another generation")
	}
}
