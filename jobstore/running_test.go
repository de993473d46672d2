package jobstore_test

import (
	"slices"
	"testing"
	"time"

	"github.com/capcheck/capcheck/jobstore"
)

// A run held is not claimed while its hold lasts; a lapsed one is claimed
// by one caller only. The runs' key is the fleet's: the test uses chunks
// of its own and looks for them only.
func TestHoldAndClaimRuns(t *testing.T) {
	b := setup(t)
	live := jobstore.Run{Chunk: b.id + "/0/0", Member: "w1 live"}
	dead := jobstore.Run{Chunk: b.id + "/0/1", Member: "w2 dead"}
	take(t, b, time.Minute, live, true)
	take(t, b, 0, dead, true)
	time.Sleep(5 * time.Millisecond)
	var claimed []jobstore.Run
	for range 2 {
		lost, got, err := b.store.RenewRuns(b.ctx, time.Minute, 1000, live)
		if err != nil {
			t.Fatal(err)
		}
		if len(lost) != 0 {
			t.Errorf("lost %v, want the live hold kept", lost)
		}
		claimed = append(claimed, mine(b, got)...)
	}
	if len(claimed) != 1 || claimed[0] != dead {
		t.Errorf("claimed %q: want the lapsed run once and not the held one", claimed)
	}
	if err := b.store.ReleaseRun(b.ctx, live); err != nil {
		t.Fatal(err)
	}
}

// A chunk is held by one run at a time: another run of it is refused while
// the hold lasts and takes it once the hold lapsed; the run whose hold was
// claimed or taken learns it at its next renewal and does not get it back.
func TestRunHoldsItsChunkAlone(t *testing.T) {
	b := setup(t)
	chunk := b.id + "/0/0"
	first := jobstore.Run{Chunk: chunk, Member: "w1 run"}
	second := jobstore.Run{Chunk: chunk, Member: "w2 run"}
	take(t, b, time.Minute, first, true)
	take(t, b, time.Minute, second, false)
	take(t, b, 0, first, true) // lapses at once
	time.Sleep(5 * time.Millisecond)
	take(t, b, time.Minute, second, true)
	lost, _, err := b.store.RenewRuns(b.ctx, time.Minute, 0, first, second)
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) != 1 || lost[0] != first {
		t.Errorf("lost %v, want the first run's hold only", lost)
	}
	take(t, b, 0, second, true)
	time.Sleep(5 * time.Millisecond)
	claimed, err := b.store.ClaimLapsedRuns(b.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if got := mine(b, claimed); len(got) != 1 || got[0] != second {
		t.Errorf("claimed %v, want the second run", got)
	}
	if lost, _, err := b.store.RenewRuns(b.ctx, time.Minute, 0, second); err != nil || len(lost) != 1 {
		t.Errorf("renewing a claimed hold: lost %v, %v; want it lost", lost, err)
	}
	// The chunk is free again: a takeover holds it.
	third := jobstore.Run{Chunk: chunk, Member: "w3 run"}
	take(t, b, time.Minute, third, true)
	if err := b.store.ReleaseRun(b.ctx, third); err != nil {
		t.Fatal(err)
	}
	take(t, b, time.Minute, first, true)
	if err := b.store.ReleaseRun(b.ctx, first); err != nil {
		t.Fatal(err)
	}
}

func take(t *testing.T, b bundle, ttl time.Duration, r jobstore.Run, want bool) {
	t.Helper()
	got, err := b.store.TakeRun(b.ctx, ttl, r)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("TakeRun(%v) = %v, want %v", r, got, want)
	}
}

// mine are the runs of b's job among runs: other tests share the key.
func mine(b bundle, runs []jobstore.Run) []jobstore.Run {
	var out []jobstore.Run
	for _, r := range runs {
		if len(r.Chunk) > len(b.id) && r.Chunk[:len(b.id)+1] == b.id+"/" {
			out = append(out, r)
		}
	}
	return out
}

// HeldChunks tells the chunks a run holds, a lapsed hold included until it
// is claimed.
func TestHeldChunks(t *testing.T) {
	b := setup(t)
	live := jobstore.Run{Chunk: b.id + "/0/0", Member: "w1 live"}
	lapsed := jobstore.Run{Chunk: b.id + "/0/1", Member: "w2 lapsed"}
	take(t, b, time.Minute, live, true)
	take(t, b, 0, lapsed, true)
	held, err := b.store.HeldChunks(b.ctx, live.Chunk, lapsed.Chunk, b.id+"/0/2", b.id+"/1/0")
	if want := []bool{true, true, false, false}; err != nil || !slices.Equal(held, want) {
		t.Errorf("HeldChunks = %v, %v; want %v", held, err, want)
	}
	for _, r := range []jobstore.Run{live, lapsed} {
		if err := b.store.ReleaseRun(b.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if held, err := b.store.HeldChunks(b.ctx, live.Chunk); err != nil || held[0] {
		t.Errorf("HeldChunks after the release = %v, %v", held, err)
	}
}

// ChunkOpen: a chunk of the job's generation, not settled, of a job not
// finished.
func TestChunkOpen(t *testing.T) {
	b := setup(t)
	open := func(gen, i int, want bool) {
		t.Helper()
		if got, err := b.store.ChunkOpen(b.ctx, b.id, gen, i); err != nil || got != want {
			t.Errorf("ChunkOpen(gen %d, chunk %d) = %v, %v; want %v", gen, i, got, err, want)
		}
	}
	open(0, 0, false) // no job
	b.enqueued(t, 2, 1)
	open(0, 0, true)
	open(1, 0, false)
	if err := b.store.Record(b.ctx, b.id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted, Attempts: 1}, jobstore.Counters{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.FinishChunk(b.ctx, b.id, 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	open(0, 0, false)
	open(0, 1, true)
	if _, err := b.store.ChunkOpen(b.ctx, "../x", 0, 0); err == nil {
		t.Error("ChunkOpen of a bad job ID: no error")
	}
}
