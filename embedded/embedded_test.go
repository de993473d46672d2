package embedded_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/embedded"
	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
)

const (
	job     = "nightly"
	chunkSz = 4
	apiA    = "https://api.example SID a"
)

// open opens a run on out for target, closed by the test's cleanup.
func open(t *testing.T, out, target string) *embedded.Run {
	t.Helper()
	r, err := embedded.Open(embedded.Config{Out: out, Target: target, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// enqueue does what enqueue does for a job of one chunk of chunkSz numbers:
// restore, create, store, finish, resume.
func enqueue(t *testing.T, r *embedded.Run, fingerprint string) error {
	t.Helper()
	ctx := t.Context()
	if err := r.Restore(ctx, job); err != nil {
		return err
	}
	s := r.Store()
	if _, _, err := s.CreateJob(ctx, jobstore.Spec{ID: job, Input: "in.csv", Fingerprint: fingerprint, ChunkSize: chunkSz}); err != nil {
		return err
	}
	entries := make([]jobstore.Entry, chunkSz)
	for k := range entries {
		entries[k] = jobstore.Entry{Row: int64(k + 1), Number: fmt.Sprintf("+1415555000%d", k), Input: "x"}
	}
	if err := s.PutChunk(ctx, job, 0, entries); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishEnqueue(ctx, job, jobstore.Counts{Rows: chunkSz, Valid: chunkSz}, 1, 0); err != nil {
		t.Fatal(err)
	}
	return r.Resume(ctx, job)
}

func record(t *testing.T, r *embedded.Run, o jobstore.Outcome, c jobstore.Counters) {
	t.Helper()
	if err := r.Store().Record(t.Context(), job, 0, 0, o, c); err != nil {
		t.Fatal(err)
	}
}

func TestResumeReplaysTheJournal(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	first := open(t, out, apiA)
	first.Store().SetFleetLimit(40)
	if err := enqueue(t, first, "fp"); err != nil {
		t.Fatal(err)
	}
	record(t, first, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted, Attempts: 1}, jobstore.Counters{Requests: 1, Accepted: 2})
	if err := first.Store().Add(t.Context(), job, jobstore.Counters{Requests: 1, RateLimited: 1}); err != nil {
		t.Fatal(err)
	}
	// Failed numbers are sent again by a re-run: not replayed, their call counted.
	record(t, first, jobstore.Outcome{Lo: 3, Hi: 4, Status: jobstore.Failed, Attempts: 5}, jobstore.Counters{Requests: 1, Failed: 1})
	orig, err := first.Store().Job(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// A kill in the middle of a write leaves a torn line.
	path := filepath.Join(out, job, "journal.jsonl")
	appendFile(t, path, `{"chunk":0,"o":{"lo":2`)

	second := open(t, out, apiA)
	if err := enqueue(t, second, "fp"); err != nil {
		t.Fatal(err)
	}
	s := second.Store()
	outs, err := s.Outcomes(t.Context(), job, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p := jobstore.Pending(chunkSz, 100, outs); len(p) != 1 || p[0].Lo != 2 || p[0].Hi != 4 {
		t.Errorf("after replay pending = %v, want [2,4)", p)
	}
	j, err := s.Job(t.Context(), job)
	if err != nil {
		t.Fatal(err)
	}
	if !j.StartedAt.Equal(orig.StartedAt) {
		t.Errorf("after replay started_at = %v, want the original %v", j.StartedAt, orig.StartedAt)
	}
	if j.Accepted != 2 || j.Failed != 0 || j.Requests != 3 || j.RateLimited != 1 {
		t.Errorf("after replay counters = %+v", j.Counters)
	}
	if ser, err := s.Series(t.Context(), job); err != nil || ser.Limit != 40 {
		t.Errorf("after replay the series' fleet limit = %v (%v), want the first run's 40", ser, err)
	}
	// The next entry cuts the torn line and starts a line of its own.
	record(t, second, jobstore.Outcome{Lo: 2, Hi: 3, Status: jobstore.Rejected, Attempts: 1}, jobstore.Counters{Requests: 1, Rejected: 1})
	lines := strings.Split(strings.TrimSuffix(string(filetest.Read(t, path)), "\n"), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], `"s":"rejected"`) {
		t.Errorf("journal after the torn line:\n%s", strings.Join(lines, "\n"))
	}
}

func TestRestoreRefusesAnotherInput(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	first := open(t, out, apiA)
	if err := enqueue(t, first, "monday"); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := open(t, out, apiA)
	if err := enqueue(t, second, "tuesday"); !errors.Is(err, jobstore.ErrSpecMismatch) {
		t.Fatalf("enqueue of another input under the same job: %v, want ErrSpecMismatch", err)
	}
}

func TestResumeRefusesAnotherTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		outcome jobstore.Outcome
		refused bool
	}{
		{"answers", jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, true},
		{"failures only", jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Failed}, false},
		{"bisection only", jobstore.Outcome{Lo: 0, Hi: 4, Split: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			first := open(t, out, apiA)
			if err := enqueue(t, first, "fp"); err != nil {
				t.Fatal(err)
			}
			record(t, first, tt.outcome, jobstore.Counters{Requests: 1})
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			err := enqueue(t, open(t, out, "the simulator"), "fp")
			var te *embedded.TargetError
			if got := errors.As(err, &te); got != tt.refused {
				t.Fatalf("resume against another target: %v, want refused %v", err, tt.refused)
			}
			if tt.refused && (te.Saved != apiA || te.Target != "the simulator" || te.Dir != filepath.Join(out, job)) {
				t.Errorf("TargetError = %+v", te)
			}
		})
	}
}

func TestOpenLocksTheFolder(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out") // created by Open
	first := open(t, out, apiA)
	_, err := embedded.Open(embedded.Config{Out: out})
	var le *embedded.LockedError
	if !errors.As(err, &le) || le.Out != out || !strings.HasPrefix(le.Holder, fmt.Sprintf("pid %d since ", os.Getpid())) {
		t.Fatalf("second Open = %v, want a LockedError naming this process", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, out, apiA)
}

// TestRedisRequiresThePassword: another client on the host, without the
// run's password, can neither read the numbers nor enqueue a task.
func TestRedisRequiresThePassword(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	var logs bytes.Buffer
	r, err := embedded.Open(embedded.Config{Out: out, Target: apiA, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := enqueue(t, r, "fp"); err != nil {
		t.Fatal(err)
	}
	opts := r.Redis().(*redis.Client).Options()
	if opts.Password == "" {
		t.Fatal("the embedded Redis has no password")
	}

	ctx := t.Context()
	other := redis.NewClient(&redis.Options{Addr: opts.Addr})
	t.Cleanup(func() { other.Close() })
	if keys, err := other.Keys(ctx, "*").Result(); err == nil || len(keys) > 0 {
		t.Errorf("a client without the password listed %d keys (err %v)", len(keys), err)
	}
	if v, err := other.Get(ctx, "capcheck:job:{"+job+"}:chunk:0").Result(); err == nil || v != "" {
		t.Errorf("a client without the password read a chunk: %q (err %v)", v, err)
	}
	wrong := redis.NewClient(&redis.Options{Addr: opts.Addr, Password: "guess"})
	t.Cleanup(func() { wrong.Close() })
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Error("a client with a wrong password was let in")
	}
	intruder := asynq.NewClient(asynq.RedisClientOpt{Addr: opts.Addr})
	t.Cleanup(func() { intruder.Close() })
	if _, err := tasks.Enqueue(ctx, intruder, tasks.NewChunk(tasks.Chunk{Job: job, Chunk: 0})); err == nil {
		t.Error("a client without the password enqueued a task")
	}
	// The run's own clients get in.
	client := asynq.NewClientFromRedisClient(r.Redis())
	if _, err := tasks.Enqueue(ctx, client, tasks.NewChunk(tasks.Chunk{Job: job, Chunk: 0})); err != nil {
		t.Errorf("the run's client: %v", err)
	}
	insp := asynq.NewInspector(r.RedisConnOpt())
	t.Cleanup(func() { insp.Close() })
	if _, err := insp.Queues(); err != nil {
		t.Errorf("the run's asynq option: %v", err)
	}

	record(t, r, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, jobstore.Counters{Requests: 1})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), opts.Password) {
		t.Error("the password is in the log")
	}
	err = filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(string(filetest.Read(t, path)), opts.Password) {
			t.Errorf("the password is in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSymlinksAreNotFollowed: a link planted in the output folder in place
// of the lock, the journal or the spec file is refused, naming it, and the
// file it points at is left as it was (or not created).
func TestSymlinksAreNotFollowed(t *testing.T) {
	t.Parallel()
	const victimText = "not capcheck's\n"
	tests := []struct {
		name string
		link string // under out
		// when the link is planted: "before" the run opens, "after" Resume
		when string
	}{
		{"lock", ".run.lock", "before"},
		{"journal", "nightly/journal.jsonl", "before"},
		{"journal mid-run", "nightly/journal.jsonl", "after"},
		{"spec file", "nightly/journal-job.json", "before"},
	}
	for _, tt := range tests {
		for _, dangling := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s dangling=%v", tt.name, dangling), func(t *testing.T) {
				t.Parallel()
				out, elsewhere := t.TempDir(), t.TempDir()
				victim := filepath.Join(elsewhere, "victim")
				if !dangling {
					if err := os.WriteFile(victim, []byte(victimText), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				link := filepath.Join(out, tt.link)
				plant := func() {
					if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink(victim, link); err != nil {
						t.Fatal(err)
					}
				}
				if tt.when == "before" {
					plant()
				}
				err := runOnce(t, out, func() {
					if tt.when == "after" {
						plant()
					}
				})
				if !errors.Is(err, embedded.ErrSymlink) || !strings.Contains(err.Error(), link) {
					t.Errorf("run with %s a link: %v, want ErrSymlink naming %s", tt.link, err, link)
				}
				got, rerr := os.ReadFile(victim)
				switch {
				case dangling && !errors.Is(rerr, fs.ErrNotExist):
					t.Errorf("the run created the file a dangling link points at (%v)", rerr)
				case !dangling && string(got) != victimText:
					t.Errorf("the run changed the file the link points at: %q", got)
				}
			})
		}
	}
}

// runOnce opens a run on out, enqueues the job, calls between, and records
// an outcome: the first error.
func runOnce(t *testing.T, out string, between func()) error {
	t.Helper()
	r, err := embedded.Open(embedded.Config{Out: out, Target: apiA})
	if err != nil {
		return err
	}
	defer r.Close()
	if err := enqueue(t, r, "fp"); err != nil {
		return err
	}
	between()
	return r.Store().Record(t.Context(), job, 0, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, jobstore.Counters{Requests: 1})
}

// TestResumeRefusesABadJournal: a bad line followed by more lines is not a
// torn tail left by a kill: resuming stops, naming the journal.
func TestResumeRefusesABadJournal(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	first := open(t, out, apiA)
	if err := enqueue(t, first, "fp"); err != nil {
		t.Fatal(err)
	}
	record(t, first, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, jobstore.Counters{Requests: 1})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(out, job, "journal.jsonl")
	appendFile(t, path, "not json\n"+`{"chunk":0,"o":{"lo":1,"hi":2,"s":"accepted"},"c":{"requests":1},"t":1}`+"\n")
	err := enqueue(t, open(t, out, apiA), "fp")
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("resume on a journal with a bad line: %v, want an error naming %s line 2", err, path)
	}
}
