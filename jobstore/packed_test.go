package jobstore_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/jobstore"
)

func TestOutcomeEncodingRoundTrips(t *testing.T) {
	t.Parallel()
	outs := []jobstore.Outcome{
		{Lo: 0, Hi: 1000, Split: true, Attempts: 1},
		{Lo: 0, Hi: 500, Status: jobstore.Accepted, Code: "MSG402", Message: "Request Successfully Processed", Attempts: 2, CheckedAt: 1796030487181},
		{Lo: 500, Hi: 1000, Status: jobstore.Rejected, Code: "RBC529", Message: "Invalid number ü", Attempts: 3, CheckedAt: 1},
		{Lo: 7, Hi: 8, Status: jobstore.Failed, Message: "gave up: 503"},
		{Lo: 1, Hi: 2, Status: "someday", Code: "x"}, // not packable: JSON
	}
	for _, o := range outs {
		v, err := jobstore.EncodeOutcome(o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := jobstore.DecodeOutcomes([]string{v})
		if err != nil {
			t.Fatalf("decoding %q: %v", v, err)
		}
		if diff := cmp.Diff([]jobstore.Outcome{o}, got); diff != "" {
			t.Errorf("round trip of %+v (-want +got):\n%s", o, diff)
		}
	}
	old, _ := json.Marshal(outs[1]) // a list written before the packed form
	if got, err := jobstore.DecodeOutcomes([]string{string(old)}); err != nil || !cmp.Equal(got[0], outs[1]) {
		t.Errorf("JSON outcome decoded as %+v, %v", got, err)
	}
	v, _ := jobstore.EncodeOutcome(outs[1])
	for i := 1; i < len(v); i++ {
		if _, err := jobstore.DecodeOutcomes([]string{v[:i]}); err == nil {
			t.Errorf("outcome cut to %d bytes decoded without error", i)
		}
	}
}

// The record script stores an outcome with the texts of its list's first
// in a dozen bytes, and the list reads back whole, also after a re-drive
// dropped that first outcome.
func TestOutcomesArePackedInRedis(t *testing.T) {
	b := setup(t)
	b.enqueued(t, 1, 8)
	ok := jobstore.Outcome{Status: jobstore.Accepted, Code: "MSG402", Message: "Request Successfully Processed", Attempts: 1, CheckedAt: 1796030487181}
	at := func(o jobstore.Outcome, lo, hi int) jobstore.Outcome { o.Lo, o.Hi = lo, hi; return o }
	outs := []jobstore.Outcome{
		{Lo: 0, Hi: 2, Status: jobstore.Failed, Code: "MSG402", Message: "Request Successfully Processed", Attempts: 4, CheckedAt: 1796030487000},
		at(ok, 2, 4),
		{Lo: 4, Hi: 8, Split: true, Attempts: 1},
		at(ok, 4, 6),
		{Lo: 6, Hi: 8, Status: jobstore.Rejected, Code: "RBC529", Message: "Invalid", Attempts: 2, CheckedAt: 1796030487500},
	}
	for _, o := range outs {
		if err := b.store.Record(b.ctx, b.id, 0, 0, o, jobstore.Counters{Requests: 1}); err != nil {
			t.Fatal(err)
		}
	}
	rdb := b.store.Redis()
	raw, err := rdb.LRange(b.ctx, jobstore.OutKey(b.id, 0), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw[1]) > 14 || len(raw[3]) > 14 {
		t.Errorf("outcomes with the first one's texts take %d and %d bytes, want ≤ 14", len(raw[1]), len(raw[3]))
	}
	got, err := b.store.Outcomes(b.ctx, b.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(outs, got); diff != "" {
		t.Errorf("Outcomes (-want +got):\n%s", diff)
	}
	if all, err := b.store.FinishChunk(b.ctx, b.id, 0, 0, 8); err != nil || !all {
		t.Fatalf("FinishChunk = %v, %v", all, err)
	}
	b.finalize(t)
	if _, _, err := b.store.Redrive(b.ctx, b.id); err != nil {
		t.Fatal(err)
	}
	got, err = b.store.Outcomes(b.ctx, b.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]jobstore.Outcome{outs[1], outs[3], outs[4]}, got); diff != "" {
		t.Errorf("Outcomes after the re-drive dropped the failed first one (-want +got):\n%s", diff)
	}
}
