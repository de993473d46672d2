package jobstore_test

import (
	"os"
	"testing"

	"github.com/capcheck/capcheck/jobstore"
)

func TestJournalReplay(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 1, 4)
	dir := t.TempDir()
	j := jobstore.NewFileJournal(dir)
	b.store.SetJournal(j)
	_ = b.store.Record(b.ctx, b.id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted, Attempts: 1}, jobstore.Counters{Requests: 1, Accepted: 2})
	_ = b.store.Add(b.ctx, b.id, jobstore.Counters{Requests: 1, RateLimited: 1})
	// Failed numbers are sent again by a re-run: not replayed, their call counted.
	_ = b.store.Record(b.ctx, b.id, 0, 0, jobstore.Outcome{Lo: 3, Hi: 4, Status: jobstore.Failed, Attempts: 5}, jobstore.Counters{Requests: 1, Failed: 1})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a write leaves a torn line; the next run trims it.
	f, _ := os.OpenFile(j.Path(b.id), os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString(`{"chunk":0,"o":{"lo":2`)
	f.Close()
	j2 := jobstore.NewFileJournal(dir)
	_ = j2.Append(b.id, jobstore.JournalEntry{Chunk: 0, Outcome: &jobstore.Outcome{Lo: 2, Hi: 3, Status: jobstore.Rejected, Attempts: 1}, Counters: jobstore.Counters{Requests: 1, Rejected: 1}})
	_ = j2.Close()

	// Replay into a fresh job: the same chunks, no outcomes.
	fresh := bundle{ctx: b.ctx, store: b.store, id: b.id + "r"}
	fresh.enqueued(t, 1, 4)
	r, err := os.Open(j.Path(b.id))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := fresh.store.Replay(b.ctx, fresh.id, r)
	if err != nil || n != 4 {
		t.Fatalf("Replay = %d, %v; want 4 entries", n, err)
	}
	outs, _ := fresh.store.Outcomes(b.ctx, fresh.id, 0)
	if p := jobstore.Pending(4, 100, outs); len(p) != 1 || p[0].Lo != 3 {
		t.Errorf("after replay pending = %v, want [3,4)", p)
	}
	job, _ := fresh.store.Job(b.ctx, fresh.id)
	orig, _ := b.store.Job(b.ctx, b.id)
	if !job.StartedAt.Equal(orig.StartedAt) {
		t.Errorf("after replay started_at = %v, want the original %v", job.StartedAt, orig.StartedAt)
	}
	if job.Accepted != 2 || job.Rejected != 1 || job.Failed != 0 || job.Requests != 4 || job.RateLimited != 1 {
		t.Errorf("after replay counters = %+v", job.Counters)
	}
}
