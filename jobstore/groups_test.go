package jobstore_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
)

// TestGroups: a job of several chunk groups, on one Redis and on a Redis
// Cluster (where each script must touch one slot): the counts are exact sums
// over the groups, the rate and the series too; a re-drive fences and drops
// in every group; Expire reaches every key; on the cluster the recorded
// outcomes sit on more than one master.
func TestGroups(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]func(t *testing.T) (redis.UniversalClient, func(t *testing.T) []*redis.Client){
		"one redis": func(t *testing.T) (redis.UniversalClient, func(t *testing.T) []*redis.Client) {
			rdb := redistest.Shared(t).Client(t)
			return rdb, func(*testing.T) []*redis.Client { return []*redis.Client{rdb} }
		},
		"cluster": func(t *testing.T) (redis.UniversalClient, func(t *testing.T) []*redis.Client) {
			c := redistest.StartCluster(t)
			return c.Client(t), func(t *testing.T) []*redis.Client {
				var ms []*redis.Client
				for _, addr := range c.Masters(t) {
					ms = append(ms, c.Node(t, addr).Client(t))
				}
				return ms
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb, masters := start(t)
			t0 := time.Unix(1_800_000_000, 0)
			now := t0
			store := jobstore.New(rdb, jobstore.WithClock(func() time.Time { return now }))
			b := bundle{ctx: context.Background(), store: store, id: redistest.NewPrefix(t)}
			chunks := 4*jobstore.GroupChunks + 1 // five groups, the last of one chunk
			b.enqueued(t, chunks, 2)
			var want jobstore.Counters
			for i := range chunks {
				now = t0.Add(time.Duration(i%3) * time.Second)
				st := jobstore.Accepted
				if i%5 == 0 {
					st = jobstore.Failed
				}
				c := jobstore.Counters{Requests: 2, Retries: 1}
				if err := store.Record(b.ctx, b.id, 0, i, jobstore.Outcome{Lo: 0, Hi: 2, Status: st}, c); err != nil {
					t.Fatal(err)
				}
				// The same outcome again (a re-delivered task) settles nothing.
				if err := store.Record(b.ctx, b.id, 0, i, jobstore.Outcome{Lo: 0, Hi: 2, Status: st}, jobstore.Counters{}); err != nil {
					t.Fatal(err)
				}
				want.Requests += 2
				want.Retries++
				if st == jobstore.Failed {
					want.Failed += 2
				} else {
					want.Accepted += 2
				}
				all, err := store.FinishChunk(b.ctx, b.id, 0, i, 2)
				if err != nil || all != (i == chunks-1) {
					t.Fatalf("FinishChunk(%d) = %v, %v", i, all, err)
				}
			}
			// ReadChunk's one round trip (across slots on the cluster)
			// reads what Chunk, Outcomes and Before read.
			for _, i := range []int{0, chunks - 1} {
				r, err := store.ReadChunk(b.ctx, b.id, i, chunks, false)
				if err != nil {
					t.Fatalf("ReadChunk(%d): %v", i, err)
				}
				entries, err1 := store.Chunk(b.ctx, b.id, i)
				outs, err2 := store.Outcomes(b.ctx, b.id, i)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if diff := cmp.Diff(jobstore.ChunkRead{Entries: entries, Outcomes: outs}, r); diff != "" {
					t.Errorf("ReadChunk(%d) (-Chunk, Outcomes +ReadChunk):\n%s", i, diff)
				}
			}
			if r, err := store.ReadChunk(b.ctx, b.id, chunks, chunks, false); err != nil || r.Entries != nil {
				t.Errorf("ReadChunk past the last chunk = %v, %v; want nothing", r, err)
			}
			// HeadAndChunk's one round trip reads what Head and Chunk read.
			for _, i := range []int{0, chunks - 1} {
				h, entries, err := store.HeadAndChunk(b.ctx, b.id, i)
				if err != nil {
					t.Fatalf("HeadAndChunk(%d): %v", i, err)
				}
				wantH, err1 := store.Head(b.ctx, b.id)
				wantE, err2 := store.Chunk(b.ctx, b.id, i)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				if diff := cmp.Diff(wantH, h); diff != "" {
					t.Errorf("HeadAndChunk(%d) (-Head +HeadAndChunk):\n%s", i, diff)
				}
				if diff := cmp.Diff(wantE, entries); diff != "" {
					t.Errorf("HeadAndChunk(%d) (-Chunk +HeadAndChunk):\n%s", i, diff)
				}
			}
			if h, _, err := store.HeadAndChunk(b.ctx, b.id, chunks); h == nil || !errors.Is(err, jobstore.ErrNotFound) {
				t.Errorf("HeadAndChunk past the last chunk = %v, %v; want the record and ErrNotFound", h, err)
			}
			if h, _, err := store.HeadAndChunk(b.ctx, b.id+"-none", 0); h != nil || !errors.Is(err, jobstore.ErrNotFound) {
				t.Errorf("HeadAndChunk of no job = %v, %v; want ErrNotFound alone", h, err)
			}
			if err := store.LoadScripts(b.ctx); err != nil {
				t.Errorf("LoadScripts: %v", err)
			}
			// Calls counted outside any chunk (Add) add to the groups'.
			if err := store.Add(b.ctx, b.id, jobstore.Counters{Requests: 1, RateLimited: 1}); err != nil {
				t.Fatal(err)
			}
			want.Requests++
			want.RateLimited++
			j, err := store.Job(b.ctx, b.id)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, j.Counters); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if !j.StartedAt.Equal(t0) {
				t.Errorf("StartedAt = %v, want the first call's %v", j.StartedAt, t0)
			}
			if h, _ := store.Head(b.ctx, b.id); h.Counters != (jobstore.Counters{}) || h.ChunksDone != chunks {
				t.Errorf("Head = %+v, want no counts and %d chunks done", h, chunks)
			}
			// 2·chunks+1 requests in the seconds 0, 1, 2; the Add in second 2.
			now = t0.Add(3 * time.Second)
			if r, err := store.Rate(b.ctx, j); err != nil || r != float64(want.Requests)/3 {
				t.Errorf("Rate = %v, %v; want %v", r, err, float64(want.Requests)/3)
			}
			ser, err := store.Series(b.ctx, b.id)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			for _, bk := range ser.Requests {
				if bk.Width != time.Second || bk.Start.Before(t0) || !bk.Start.Before(t0.Add(3*time.Second)) {
					t.Errorf("bucket %+v, want one second within the first three", bk)
				}
				n += bk.N
			}
			if n != want.Requests || len(ser.Requests) != 3 {
				t.Errorf("series: %d requests in %d buckets, want %d in 3", n, len(ser.Requests), want.Requests)
			}

			if ok, err := store.BeginFinalize(b.ctx, b.id, 0); err != nil || !ok {
				t.Fatalf("BeginFinalize = %v, %v", ok, err)
			}
			if _, err := store.EndFinalize(b.ctx, b.id, 0); err != nil {
				t.Fatal(err)
			}
			gen, redo, err := store.Redrive(b.ctx, b.id)
			if err != nil || gen != 1 {
				t.Fatalf("Redrive = %d, %v, %v", gen, redo, err)
			}
			var wantRedo []int
			for i := 0; i < chunks; i += 5 {
				wantRedo = append(wantRedo, i)
			}
			if !cmp.Equal(redo, wantRedo) {
				t.Errorf("chunks to re-drive %v, want %v", redo, wantRedo)
			}
			// Generation 0 records nothing more, in any group.
			if err := store.Record(b.ctx, b.id, 0, chunks-1, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted}, jobstore.Counters{}); err == nil {
				t.Error("a task of generation 0 recorded after the re-drive")
			}
			for _, i := range redo {
				if err := store.Record(b.ctx, b.id, 1, i, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted}, jobstore.Counters{Requests: 1}); err != nil {
					t.Fatal(err)
				}
				if _, err := store.FinishChunk(b.ctx, b.id, 1, i, 2); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := store.FinishRedrive(b.ctx, b.id); err != nil {
				t.Fatal(err)
			}
			j, _ = store.Job(b.ctx, b.id)
			if j.Failed != 0 || j.Accepted != 2*int64(chunks) || j.ChunksDone != chunks {
				t.Errorf("after the re-drive: %d failed, %d accepted, %d chunks done; want 0, %d, %d",
					j.Failed, j.Accepted, j.ChunksDone, 2*chunks, chunks)
			}

			if err := store.Expire(b.ctx, b.id, time.Hour); err != nil {
				t.Fatal(err)
			}
			holding := 0
			for _, m := range masters(t) {
				keys, err := m.Keys(b.ctx, "capcheck:job:{"+b.id+"*").Result()
				if err != nil {
					t.Fatal(err)
				}
				outs := 0
				for _, k := range keys {
					if ttl := m.TTL(b.ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
						t.Errorf("TTL of %s = %v, want up to 1h", k, ttl)
					}
					if strings.Contains(k, ":out:") {
						outs++
					}
				}
				if outs > 0 {
					holding++
				}
			}
			if name == "cluster" && holding < 2 {
				t.Errorf("the outcomes of %d chunk groups are on %d master(s), want them spread", (chunks+jobstore.GroupChunks-1)/jobstore.GroupChunks, holding)
			}
		})
	}
}

// TestJobWithoutGroups: a job created before chunk groups (its record has
// no group size) keeps every key in its own slot, where it is read and
// counted as then.
func TestJobWithoutGroups(t *testing.T) {
	b := setup(t)
	if _, _, err := b.store.CreateJob(b.ctx, jobstore.Spec{ID: b.id, Input: "in.csv", Fingerprint: "fp", ChunkSize: 1}); err != nil {
		t.Fatal(err)
	}
	rdb := b.store.Redis()
	if err := rdb.HDel(b.ctx, "capcheck:job:{"+b.id+"}", "group_chunks").Err(); err != nil {
		t.Fatal(err)
	}
	chunks := jobstore.GroupChunks + 1
	for i := range chunks {
		if err := b.store.PutChunk(b.ctx, b.id, i, []jobstore.Entry{{Row: int64(i + 1), Number: "+14155550100", Input: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.store.FinishEnqueue(b.ctx, b.id, jobstore.Counts{Rows: int64(chunks), Valid: int64(chunks)}, chunks, 0); err != nil {
		t.Fatal(err)
	}
	for i := range chunks {
		if err := b.store.Record(b.ctx, b.id, 0, i, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Rejected}, jobstore.Counters{Requests: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.FinishChunk(b.ctx, b.id, 0, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	j, err := b.store.Job(b.ctx, b.id)
	if err != nil || j.Rejected != int64(chunks) || j.Requests != int64(chunks) || j.ChunksDone != chunks {
		t.Fatalf("Job = %+v, %v; want %d rejected, requests and chunks done", j, err, chunks)
	}
	for i := range chunks {
		if n := rdb.LLen(b.ctx, "capcheck:job:{"+b.id+"}:out:"+strconv.Itoa(i)).Val(); n != 1 {
			t.Errorf("chunk %d: %d outcomes under the job's own tag, want 1", i, n)
		}
	}
	if h := rdb.HGet(b.ctx, "capcheck:job:{"+b.id+"}", "rejected").Val(); h != strconv.Itoa(chunks) {
		t.Errorf("the record counts %q rejected, want %d", h, chunks)
	}
}
