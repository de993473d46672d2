package enqueue

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/internal/numgen"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/phonenorm"
)

// memoryList is a list of n numbers and their E.164 keys in row order
// (the sample has no duplicates among its first numbers).
func (b *bundle) memoryList(t *testing.T, n int) ([]byte, []jobstore.Entry) {
	t.Helper()
	data := filetest.Read(t, b.writeList(t, "list.csv", n))
	var valid []jobstore.Entry
	for i, s := range numgen.Sample(n, 5) {
		r := phonenorm.Normalize(s, "IN")
		if r.Reason == "" && !containsNumber(valid, r.E164) {
			valid = append(valid, jobstore.Entry{Row: int64(i + 1), Number: r.E164, Input: s})
		}
	}
	return data, valid
}

func containsNumber(es []jobstore.Entry, n string) bool {
	for _, e := range es {
		if e.Number == n {
			return true
		}
	}
	return false
}

// remember makes the memory hold, for valid[i], what answer(i) returns
// (none when its capability is None).
func remember(t *testing.T, mem *capstore.Store, valid []jobstore.Entry, answer func(i int) capstore.Answer) {
	t.Helper()
	var ans []capstore.Answer
	for i, e := range valid {
		a := answer(i)
		if a.Capability == capstore.None {
			continue
		}
		a.Number, _ = jobstore.NumberToUint(e.Number)
		ans = append(ans, a)
	}
	if err := mem.Remember(t.Context(), ans); err != nil {
		t.Fatal(err)
	}
}

// stored returns the job's chunks and cached numbers in order.
func (b *bundle) stored(t *testing.T, id string) (sent []jobstore.Entry, cached []jobstore.CachedNumber, before []capstore.Record) {
	t.Helper()
	j, err := b.store.Job(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range j.Chunks + 1 {
		if i < j.Chunks {
			es, err := b.store.Chunk(t.Context(), id, i)
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, es...)
			k, err := b.store.Before(t.Context(), id, i, len(es))
			if err != nil {
				t.Fatal(err)
			}
			before = append(before, k...)
		}
		c, err := b.store.CachedNumbers(t.Context(), id, i)
		if err != nil {
			t.Fatal(err)
		}
		cached = append(cached, c.Numbers...)
	}
	return sent, cached, before
}

// The nightly case: a third of the list answered an hour ago (one number
// rejected), a third two days ago, a third never. With --recheck-after 24h
// only the recent answers are not sent; what the memory held of the others
// is noted for changes.csv.
func TestRecheckAfter(t *testing.T) {
	t.Parallel()
	for _, recheck := range []time.Duration{24 * time.Hour, 0} {
		b := setup(t)
		mem := capstore.New(b.rdb, capstore.Options{})
		data, valid := b.memoryList(t, 300)
		now := time.Now().Truncate(time.Second)
		answer := func(i int) capstore.Answer {
			switch {
			case i == 4:
				return capstore.Answer{Capability: capstore.Rejected, Code: "E21", Message: "landline", At: now.Add(-time.Hour)}
			case i%3 == 1:
				return capstore.Answer{Capability: capstore.Capable, At: now.Add(-time.Hour)}
			case i%3 == 2:
				return capstore.Answer{Capability: capstore.NotCapable, At: now.Add(-48 * time.Hour)}
			}
			return capstore.Answer{}
		}
		remember(t, mem, valid, answer)

		cfg := b.config("list.csv")
		cfg.Reader, cfg.JobID, cfg.ChunkSize = bytes.NewReader(data), "recheck", 25
		cfg.Memory, cfg.RecheckAfter = mem, recheck
		res, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wantSent []jobstore.Entry
		var wantCached []jobstore.CachedNumber
		var wantBefore []capstore.Record
		for i, e := range valid {
			a := answer(i)
			k := capstore.Record{Capability: a.Capability, At: a.At.UTC()}
			if a.Capability == capstore.Rejected {
				k.Reason = 1
			}
			if recheck > 0 && a.Capability != capstore.None && a.At.After(now.Add(-recheck)) {
				wantCached = append(wantCached, jobstore.CachedNumber{Entry: e, Known: k})
				continue
			}
			wantSent, wantBefore = append(wantSent, e), append(wantBefore, k)
		}
		sent, cached, before := b.stored(t, cfg.JobID)
		if diff := cmp.Diff(wantSent, sent); diff != "" {
			t.Errorf("recheck %v: sent (-want +got):\n%s", recheck, diff)
		}
		if diff := cmp.Diff(wantCached, cached); diff != "" {
			t.Errorf("recheck %v: cached (-want +got):\n%s", recheck, diff)
		}
		if diff := cmp.Diff(wantBefore, before); diff != "" {
			t.Errorf("recheck %v: before (-want +got):\n%s", recheck, diff)
		}
		j, _ := b.store.Job(t.Context(), cfg.JobID)
		wantRej := int64(0)
		if recheck > 0 {
			wantRej = 1
		}
		if res.Counts.Cached != int64(len(wantCached)) || j.Cached != int64(len(wantCached)) || j.CachedRejected != wantRej ||
			j.Valid != int64(len(valid)) || j.Chunks != (len(wantSent)+24)/25 {
			t.Errorf("recheck %v: counts %+v, job %+v; want %d cached (%d rejected) of %d valid", recheck, res.Counts, j.Counts, len(wantCached), wantRej, len(valid))
		}
	}
}

// Which numbers a job does not send is decided once: a resumed enqueue
// decides as the first run did for the rows it covered, though the memory
// answered since (the first chunks' callbacks came back).
func TestRecheckResumeDecidesAlike(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mem := capstore.New(b.rdb, capstore.Options{})
	data, valid := b.memoryList(t, 400)
	now := time.Now().Truncate(time.Second)
	remember(t, mem, valid, func(i int) capstore.Answer {
		if i%2 == 0 {
			return capstore.Answer{Capability: capstore.Capable, At: now.Add(-time.Hour)}
		}
		return capstore.Answer{}
	})
	cfg := b.config("list.csv")
	cfg.JobID, cfg.ChunkSize, cfg.Memory, cfg.RecheckAfter = "resume-memory", 20, mem, 24*time.Hour
	ctx := cancelAfterChunk(t, &cfg, 3)
	cfg.Reader = bytes.NewReader(data)
	if _, err := Run(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: err = %v", err)
	}
	// Every number is answered now.
	remember(t, mem, valid, func(int) capstore.Answer {
		return capstore.Answer{Capability: capstore.NotCapable, At: now.Add(-time.Minute)}
	})
	cfg.afterChunk = nil
	cfg.Reader = bytes.NewReader(data)
	if _, err := Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	sent, cached, _ := b.stored(t, cfg.JobID)
	// The first run stored chunks 0-3: 80 sent numbers, the odd ones, and
	// the even ones between them cached. Every later number is cached now.
	for i, e := range valid {
		inSent := containsNumber(sent, e.Number)
		wantSent := i%2 == 1 && i < 2*80
		if inSent != wantSent {
			t.Fatalf("number %d (%s): sent %v, want %v", i, e.Number, inSent, wantSent)
		}
	}
	if len(sent)+len(cached) != len(valid) {
		t.Fatalf("%d sent + %d cached, want %d", len(sent), len(cached), len(valid))
	}
	// A run again of the enqueued job changes nothing.
	cfg.Reader = bytes.NewReader(data)
	if res, err := Run(t.Context(), cfg); err != nil || !res.AlreadyEnqueued {
		t.Fatalf("run again: %+v, %v", res, err)
	}
}

func TestFreshness(t *testing.T) {
	created := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) capstore.Record {
		return capstore.Record{Capability: capstore.Capable, At: created.Add(-ago)}
	}
	for _, c := range []struct {
		name            string
		recheck, forget time.Duration
		rec             capstore.Record
		want            bool
	}{
		{"recent", 24 * time.Hour, 0, at(time.Hour), true},
		{"a remembered rejection", 24 * time.Hour, 0, capstore.Record{Capability: capstore.Rejected, At: created.Add(-time.Hour)}, true},
		{"older than --recheck-after", 24 * time.Hour, 0, at(25 * time.Hour), false},
		{"--recheck-after 0 sends every number", 0, 0, at(time.Second), false},
		{"nothing remembered", 24 * time.Hour, 0, capstore.Record{}, false},
		{"past --forget-after: ignored", 30 * 24 * time.Hour, 7 * 24 * time.Hour, at(8 * 24 * time.Hour), false},
		{"within both", 30 * 24 * time.Hour, 7 * 24 * time.Hour, at(6 * 24 * time.Hour), true},
		{"answered after the job was created", time.Hour, 0, at(-time.Minute), true},
	} {
		if got := newFreshness(created, c.recheck, c.forget).fresh(&c.rec); got != c.want {
			t.Errorf("%s: fresh = %v, want %v", c.name, got, c.want)
		}
	}
}
