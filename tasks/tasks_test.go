package tasks_test

import (
	"testing"

	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/tasks"
)

func TestChunkRoundTrip(t *testing.T) {
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
	f := tasks.Finalize{Job: "j", Gen: 1}
	got, err := tasks.ParseFinalize(tasks.NewFinalize(f))
	if err != nil || got != f || f.ID() != "j:finalize:1" {
		t.Errorf("ParseFinalize = %+v, %v; ID %q", got, err, f.ID())
	}
}

func TestParseRefusesBadPayloads(t *testing.T) {
	for _, p := range []string{"", "{", `{"job":""}`, `{"job":"j","chunk":-1}`} {
		if _, err := tasks.ParseChunk(asynq.NewTask(tasks.TypeChunk, []byte(p))); err == nil {
			t.Errorf("ParseChunk(%q) succeeded", p)
		}
	}
	if _, err := tasks.ParseFinalize(asynq.NewTask(tasks.TypeFinalize, []byte(`{"gen":1}`))); err == nil {
		t.Error("ParseFinalize without a job succeeded")
	}
}
