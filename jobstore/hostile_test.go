package jobstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
)

// Job IDs read back from Redis (the job list) or handed in from a task are
// checked before they name a key; a record's own "id" field names nothing.
func TestHostileJobIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redistest.StartPrivate(t).Client(t) // the job list is global
	s := jobstore.New(rdb)
	if _, _, err := s.CreateJob(ctx, jobstore.Spec{ID: "good", Input: "in.csv", Fingerprint: "fp", ChunkSize: 10}); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, "capcheck:job:{good}", "id", "../escaped").Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"../escaped", "a/b", "", "x}:chunk:0", strings.Repeat("a", 1000)} {
		if err := rdb.ZAdd(ctx, "capcheck:jobs", redisZ(id)).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Job(ctx, id); err == nil {
			t.Errorf("Job(%.20q) succeeded", id)
		}
	}
	jobs, err := s.ListJobs(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].ID != "good" {
		t.Errorf("ListJobs = %d jobs, want only good", len(jobs))
	}
}

func redisZ(member string) redis.Z { return redis.Z{Score: 1e15, Member: member} }
