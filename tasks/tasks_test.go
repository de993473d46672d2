package tasks_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/tasks"
)

func TestChunkRoundTrip(t *testing.T) {
	t.Parallel()
	c := tasks.Chunk{Job: "list-2026-11-28", Chunk: 7, Gen: 2}
	if got, want := c.ID(), "list-2026-11-28:chunk:7:2"; got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
	task := tasks.NewChunk(c)
	if task.Type() != tasks.TypeChunk {
		t.Errorf("Type = %q", task.Type())
	}
	got, err := tasks.ParseChunk(task)
	if err != nil || got != c {
		t.Errorf("ParseChunk = %+v, %v; want %+v", got, err, c)
	}
	// A re-drive is a new generation, so its task gets a new ID.
	if c.ID() == (tasks.Chunk{Job: c.Job, Chunk: c.Chunk, Gen: 3}).ID() {
		t.Error("generations share a task ID")
	}
}

func TestFinalizeRoundTrip(t *testing.T) {
	t.Parallel()
	f := tasks.Finalize{Job: "j", Gen: 1}
	got, err := tasks.ParseFinalize(tasks.NewFinalize(f))
	if err != nil || got != f || f.ID() != "j:finalize:1" {
		t.Errorf("ParseFinalize = %+v, %v; ID %q", got, err, f.ID())
	}
}

func TestParseRefusesBadPayloads(t *testing.T) {
	t.Parallel()
	payloads := []string{"", "{", `{"job":""}`, `{"job":"j","chunk":-1}`, `{"job":"j","gen":-1}`,
		`{"job":"j","chunk":4294967296}`, `{"job":"j","gen":4294967296}`, `{"job":"j","chunk":1.5}`}
	// Job IDs the command line refuses, as a forged task could carry them.
	for _, id := range hostileIDs {
		b, err := json.Marshal(map[string]any{"job": id, "chunk": 0, "gen": 0})
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, string(b))
	}
	for _, p := range payloads {
		name := p[:min(len(p), 60)]
		if _, err := tasks.ParseChunk(asynq.NewTask(tasks.TypeChunk, []byte(p))); !errors.Is(err, tasks.ErrBadPayload) {
			t.Errorf("ParseChunk(%q) = %v, want ErrBadPayload", name, err)
		} else if len(err.Error()) > 2000 {
			t.Errorf("ParseChunk(%q): an error of %d bytes", name, len(err.Error()))
		}
		if strings.Contains(p, `"chunk"`) && !strings.Contains(p, `"chunk":0`) {
			continue // a finalize task has no chunk
		}
		if _, err := tasks.ParseFinalize(asynq.NewTask(tasks.TypeFinalize, []byte(p))); !errors.Is(err, tasks.ErrBadPayload) {
			t.Errorf("ParseFinalize(%q) = %v, want ErrBadPayload", name, err)
		}
	}
	if _, err := tasks.ParseFinalize(asynq.NewTask(tasks.TypeFinalize, []byte(`{"gen":1}`))); !errors.Is(err, tasks.ErrBadPayload) {
		t.Errorf("ParseFinalize without a job = %v, want ErrBadPayload", err)
	}
}

// hostileIDs are job IDs that would name a path outside --out, another
// job's keys, or nothing usable.
var hostileIDs = []string{"", "../escaped", "a/b", "..", ".", "/etc", "x}:chunk:0", "j\x00k", "a\nb",
	strings.Repeat("a", 129), strings.Repeat("a", 1<<20)}

func TestRetakeHasItsOwnID(t *testing.T) {
	c := tasks.Chunk{Job: "j", Chunk: 3, Gen: 1}
	r := c
	r.Retake = 2
	if c.ID() == r.ID() {
		t.Fatalf("a takeover shares its task's ID %q", c.ID())
	}
	got, err := tasks.ParseChunk(tasks.NewChunk(r))
	if err != nil || got != r {
		t.Fatalf("ParseChunk(NewChunk(%+v)) = %+v, %v", r, got, err)
	}
	bad := asynq.NewTask(tasks.TypeChunk, []byte(`{"job":"j","chunk":3,"gen":1,"retake":-1}`))
	if _, err := tasks.ParseChunk(bad); !errors.Is(err, tasks.ErrBadPayload) {
		t.Errorf("a negative retake: err = %v, want ErrBadPayload", err)
	}
}

func TestChunkOfID(t *testing.T) {
	t.Parallel()
	for _, c := range []tasks.Chunk{{Job: "j", Chunk: 3, Gen: 1}, {Job: "list-2026.11_28", Chunk: 0, Gen: 0, Retake: 3},
		{Job: "j", Chunk: tasks.IndexMax, Gen: tasks.IndexMax, Retake: 1}} {
		if got, ok := tasks.ChunkOfID(c.ID()); !ok || got != c {
			t.Errorf("ChunkOfID(%q) = %+v, %v; want %+v", c.ID(), got, ok, c)
		}
	}
	for _, id := range []string{"", "j:finalize:0", "j:chunk:1", "j:chunk:1:2:3", "j:chunk:1:2:retake", "j:chunk:1:2:retake:0",
		"j:chunk:01:2", "j:chunk:+1:2", "j:chunk:-1:2", "j:chunk:1:2:retake:-1", "j:chunk:4294967296:0", "../x:chunk:1:2",
		":chunk:1:2", "a:b:chunk:1:2", "j:chunk:1:2:again:1", "j:chunk:1:2:retake:1:retake:2", "j:chunk: 1:2", "j:chunk:1:2\n"} {
		if c, ok := tasks.ChunkOfID(id); ok {
			t.Errorf("ChunkOfID(%q) = %+v, want none", id, c)
		}
	}
}

func FuzzChunkOfID(f *testing.F) {
	f.Add("j:chunk:1:2:retake:3")
	f.Add("j:finalize:1")
	f.Fuzz(func(t *testing.T, id string) {
		if c, ok := tasks.ChunkOfID(id); ok && c.ID() != id {
			t.Errorf("ChunkOfID(%q) = %+v, whose ID is %q", id, c, c.ID())
		}
	})
}
