package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/tasks"
	"github.com/capcheck/capcheck/worker"
)

// Anyone who can write to Redis can forge a task. A job ID the command line
// refuses must not name a file outside --out nor another job's keys, even
// when a matching job record was forged too; the task is refused for good.
func TestForgedTasksWithHostileJobIDs(t *testing.T) {
	b := setup(t, worker.Config{}, true, 3)
	root := filepath.Dir(b.out)
	ids := []string{"../escaped", "a/b", "", "..", strings.Repeat("a", 4096), "j\x00k", "x}:chunk:0", "/tmp/abs"}
	rdb := b.store.Redis()
	for _, id := range ids {
		// A record that would let finalize write: every (zero) chunk done.
		if err := rdb.HSet(b.ctx, "capcheck:job:{"+id+"}", "id", id, "state", "enqueued", "gen", "0",
			"chunks", "0", "reject_blobs", "0", "created_at", "1").Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, rdb)

	for _, id := range ids {
		for _, task := range []*asynq.Task{
			forged(t, tasks.TypeFinalize, map[string]any{"job": id, "gen": 0}),
			forged(t, tasks.TypeChunk, map[string]any{"job": id, "chunk": 0, "gen": 0}),
			forged(t, tasks.TypeChunk, map[string]any{"job": b.job, "chunk": 0, "gen": -1}),
		} {
			err := b.w.ProcessTask(b.ctx, task)
			if !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("%s task for job %.40q: err = %v, want SkipRetry", task.Type(), id, err)
			}
		}
	}

	if diff := cmp.Diff(before, snapshot(t, rdb)); diff != "" {
		t.Errorf("forged tasks changed Redis (-before +after):\n%s", diff)
	}
	if n := len(b.api.Calls()); n != 0 {
		t.Errorf("%d API calls for forged tasks", n)
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && path != b.out {
			t.Errorf("a forged task wrote %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func forged(t *testing.T, typ string, payload map[string]any) *asynq.Task {
	t.Helper()
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return asynq.NewTask(typ, p)
}

// snapshot returns every key of rdb with its serialized value.
func snapshot(t *testing.T, rdb redis.UniversalClient) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		m[k] = v
	}
	return m
}
