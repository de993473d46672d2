package enqueue

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/internal/numgen"
	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/listreader"
	"github.com/capcheck/capcheck/tasks"
)

// bundle is what a Redis test needs.
type bundle struct {
	srv    *redistest.Server
	addr   string
	rdb    *redis.Client
	store  *jobstore.Store
	client *asynq.Client
	insp   *asynq.Inspector
	dir    string
	logs   *bytes.Buffer
}

func setup(t *testing.T) *bundle {
	t.Helper()
	srv := redistest.StartPrivate(t)
	rdb := srv.Client(t)
	b := &bundle{
		srv:    srv,
		addr:   srv.Addr,
		rdb:    rdb,
		store:  jobstore.New(rdb),
		client: asynq.NewClientFromRedisClient(rdb),
		insp:   asynq.NewInspectorFromRedisClient(rdb),
		dir:    t.TempDir(),
		logs:   &bytes.Buffer{},
	}
	return b
}

func (b *bundle) config(input string) Config {
	return Config{
		Input:  input,
		OutDir: filepath.Join(b.dir, "out"),
		Store:  b.store,
		Client: b.client,
		Logger: slog.New(slog.NewTextHandler(b.logs, nil)),
	}
}

// writeList writes a CSV of n sample numbers and returns its path.
func (b *bundle) writeList(t *testing.T, name string, n int) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("id,name,phone\n")
	for i, s := range numgen.Sample(n, 5) {
		fmt.Fprintf(&sb, "%d,name %d,%s\n", i+1, i+1, s)
	}
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// taskIDs returns the IDs of the pending tasks, sorted.
func (b *bundle) taskIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	for page := 1; ; page++ {
		ts, err := b.insp.ListPendingTasks(tasks.Queue, asynq.PageSize(1000), asynq.Page(page))
		if err != nil {
			if strings.Contains(err.Error(), "not found") {
				return nil // no task ever enqueued
			}
			t.Fatal(err)
		}
		for _, ti := range ts {
			ids = append(ids, ti.ID)
		}
		if len(ts) < 1000 {
			break
		}
	}
	slices.Sort(ids)
	return ids
}

// checkJob checks that job has exactly one task per chunk, every chunk
// stored, and the chunks hold the valid numbers in row order.
func (b *bundle) checkJob(t *testing.T, id string, wantValid int64) *jobstore.Job {
	t.Helper()
	ctx := t.Context()
	job, err := b.store.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != jobstore.Enqueued || job.ChunksEnqueued != job.Chunks {
		t.Errorf("job state %s, chunks enqueued %d of %d", job.State, job.ChunksEnqueued, job.Chunks)
	}
	var want []string
	for i := range job.Chunks {
		want = append(want, tasks.Chunk{Job: id, Chunk: i}.ID())
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, b.taskIDs(t)); diff != "" {
		t.Errorf("pending tasks (-want +got):\n%s", diff)
	}
	var n, last int64
	for i := range job.Chunks {
		entries, err := b.store.Chunk(ctx, id, i)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Row <= last {
				t.Fatalf("chunk %d: row %d after row %d", i, e.Row, last)
			}
			last = e.Row
		}
		n += int64(len(entries))
	}
	if n != wantValid || job.Valid != wantValid {
		t.Errorf("chunks hold %d numbers, job says %d, want %d", n, job.Valid, wantValid)
	}
	return job
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.writeList(t, "nightly.csv", 5_000)
	cfg := b.config(path)
	cfg.ChunkSize = 100

	first, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || first.AlreadyEnqueued || first.ChunksEnqueued != first.Counts.Chunks || first.Counts.Rows != 5_000 {
		t.Errorf("first run: %+v", first)
	}
	if !strings.HasPrefix(first.JobID, "nightly-") {
		t.Errorf("derived job ID %q", first.JobID)
	}
	if id, err := JobID(cfg); err != nil || id != first.JobID {
		t.Errorf("JobID = %q, %v; want Run's %q", id, err, first.JobID)
	}
	job := b.checkJob(t, first.JobID, first.Counts.Valid)
	if job.Rows != 5_000 || job.Duplicates != first.Counts.Duplicates || job.RejectBlobs == 0 {
		t.Errorf("job record %+v", job)
	}

	// The rejects file lists every reject once, and matches the store.
	data, err := os.ReadFile(first.RejectsPath)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if lines[0][0] != "row" || int64(len(lines)-1) != first.Counts.Rejected() {
		t.Errorf("rejects.csv has %d lines for %d rejects", len(lines)-1, first.Counts.Rejected())
	}
	var stored bytes.Buffer
	stored.WriteString("row,input,reason\n")
	err = b.store.Rejects(t.Context(), first.JobID, job.RejectBlobs, func(p []byte) error { stored.Write(p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Bytes(), data) {
		t.Errorf("rejects.csv differs from the stored rejects")
	}

	// Again: same job, nothing enqueued, the same tasks.
	second, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.JobID != first.JobID || second.Created || !second.AlreadyEnqueued || second.ChunksEnqueued != 0 {
		t.Errorf("second run: %+v", second)
	}
	if second.Counts != first.Counts {
		t.Errorf("second run counts %+v, first %+v", second.Counts, first.Counts)
	}
	b.checkJob(t, first.JobID, first.Counts.Valid)
	if !strings.Contains(b.logs.String(), "already enqueued") {
		t.Errorf("logs do not say already enqueued:\n%s", b.logs)
	}

	// Another chunk size is other work: not under the same job ID.
	cfg.JobID, cfg.ChunkSize = first.JobID, 50
	if _, err := Run(t.Context(), cfg); !errors.Is(err, ErrConfig) || !errors.Is(err, jobstore.ErrSpecMismatch) {
		t.Errorf("other chunk size under the same ID: err = %v", err)
	}
}

func TestRunResumesAfterCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	data := filetest.Read(t, b.writeList(t, "list.csv", 2_000))
	cfg := b.config("list.csv")
	cfg.JobID, cfg.ChunkSize = "resume-1", 20

	ctx := cancelAfterChunk(t, &cfg, 19) // 20 chunks enqueued
	cfg.Reader = bytes.NewReader(data)
	first, err := Run(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: err = %v", err)
	}
	job, err := b.store.Job(t.Context(), cfg.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != jobstore.Enqueuing || job.ChunksEnqueued != 20 || first.ChunksEnqueued != 20 {
		t.Fatalf("after the cancel: state %s, %d chunks enqueued (the run says %d); want enqueuing, 20",
			job.State, job.ChunksEnqueued, first.ChunksEnqueued)
	}
	cfg.afterChunk = nil
	if _, err := os.Stat(filepath.Join(cfg.OutDir, cfg.JobID, "rejects.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cancelled run left rejects.csv: %v", err)
	}

	cfg.Reader = bytes.NewReader(data)
	second, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second.Created || second.AlreadyEnqueued || second.ChunksEnqueued == 0 {
		t.Errorf("resumed run: %+v", second)
	}
	if n := first.ChunksEnqueued + second.ChunksEnqueued; n != second.Counts.Chunks {
		t.Errorf("%d + %d chunks enqueued for %d chunks", first.ChunksEnqueued, second.ChunksEnqueued, second.Counts.Chunks)
	}
	b.checkJob(t, cfg.JobID, second.Counts.Valid)
}

// TestRunKilled kills an enqueue process with SIGKILL once it has enqueued
// 50 chunks, then runs it again: every chunk ends enqueued exactly once.
func TestRunKilled(t *testing.T) {
	if os.Getenv("CAPCHECK_ENQUEUE_CHILD") != "" {
		runChild(t)
		return
	}
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	t.Parallel()
	b := setup(t)
	path := b.writeList(t, "big.csv", 2_000)
	cfg := b.config(path)
	cfg.JobID, cfg.ChunkSize, cfg.LockTTL, cfg.LockWait = "killed-1", 20, time.Second, 10*time.Second

	cmd := exec.Command(os.Args[0], "-test.run=^TestRunKilled$", "-test.v")
	cmd.Env = append(os.Environ(), "CAPCHECK_ENQUEUE_CHILD=1", "CHILD_REDIS="+b.addr, "CHILD_INPUT="+path,
		"CHILD_JOB="+cfg.JobID, "CHILD_OUT="+cfg.OutDir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed: %v\n%s", err, out.String())
	}
	job, err := b.store.Job(t.Context(), cfg.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != jobstore.Enqueuing || job.ChunksEnqueued != 50 {
		t.Fatalf("after the kill: state %s, %d chunks enqueued; want enqueuing, 50", job.State, job.ChunksEnqueued)
	}

	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("re-run: %v\nlogs:\n%s", err, b.logs)
	}
	if res.ChunksEnqueued != res.Counts.Chunks-50 {
		t.Errorf("the re-run enqueued %d of %d chunks, want all but the 50 enqueued before", res.ChunksEnqueued, res.Counts.Chunks)
	}
	b.checkJob(t, cfg.JobID, res.Counts.Valid)
}

// runChild is the enqueue process TestRunKilled kills: it kills itself with
// SIGKILL once chunk 49 is recorded enqueued.
func runChild(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("CHILD_REDIS")})
	defer rdb.Close()
	_, err := Run(context.Background(), Config{
		Input: os.Getenv("CHILD_INPUT"), JobID: os.Getenv("CHILD_JOB"), OutDir: os.Getenv("CHILD_OUT"),
		ChunkSize: 20, LockTTL: time.Second,
		Store: jobstore.New(rdb), Client: asynq.NewClientFromRedisClient(rdb),
		afterChunk: func(i int) {
			if i == 49 {
				if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
					panic(err)
				}
				select {} // the signal is on its way
			}
		},
	})
	t.Fatalf("Run returned (%v): the child should have been killed", err)
}

func TestRunStdin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config("-")
	cfg.Stdin = strings.NewReader("+919876543210\n+919876543210\nn/a\n")
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.JobID, "stdin-") || !res.Format.Plain {
		t.Errorf("result %+v", res)
	}
	if want := (Counts{Counts: jobstore.Counts{Rows: 3, Valid: 1, Invalid: 1, Duplicates: 1}, Chunks: 1}); res.Counts != want {
		t.Errorf("counts %+v, want %+v", res.Counts, want)
	}
	if !strings.Contains(b.logs.String(), "without a job ID") {
		t.Errorf("no warning about the missing job ID:\n%s", b.logs)
	}
	data := filetest.Read(t, res.RejectsPath)
	if want := "row,input,reason\n2,+919876543210,duplicate of row 1\n3,n/a,invalid\n"; string(data) != want {
		t.Errorf("rejects.csv:\n%s\nwant:\n%s", data, want)
	}
	b.checkJob(t, res.JobID, 1)
}

func TestRunEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := filetest.Write(t, filepath.Join(b.dir, "empty.csv"), []byte("phone\n"))
	res, err := Run(t.Context(), b.config(path))
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts != (Counts{}) {
		t.Errorf("counts %+v", res.Counts)
	}
	// No chunk will ever finish, so enqueue itself asks for the finalize.
	info, err := b.insp.GetTaskInfo(tasks.Queue, tasks.Finalize{Job: res.JobID}.ID())
	if err != nil {
		t.Fatalf("no finalize task for an empty job: %v", err)
	}
	if info.Type != tasks.TypeFinalize {
		t.Errorf("task %+v", info)
	}
}

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.writeList(t, "l.csv", 10)
	wide := filetest.Write(t, filepath.Join(b.dir, "wide.csv"),
		[]byte("phone"+strings.Repeat(",", listreader.MaxFields)+"\n+919876543210\n"))
	for name, mod := range map[string]func(*Config){
		"header of too many fields": func(c *Config) { c.Input = wide },
		"column":                    func(c *Config) { c.Column = "nope" },
		"region":                    func(c *Config) { c.DefaultRegion = "XX" },
		"chunk size":                func(c *Config) { c.ChunkSize = -1 },
		"job ID":                    func(c *Config) { c.JobID = "a/b" },
		"no input":                  func(c *Config) { c.Input = "" },
		"missing":                   func(c *Config) { c.Input = filepath.Join(b.dir, "nope.csv") },
	} {
		cfg := b.config(path)
		mod(&cfg)
		if _, err := Run(t.Context(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	if ids := b.taskIDs(t); len(ids) != 0 {
		t.Errorf("bad configurations enqueued %d tasks", len(ids))
	}
}

func TestJobIDDerived(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filetest.Write(t, filepath.Join(dir, "Leads 2026.csv.gz"), []byte("phone\n"))
	mtime := time.Date(2026, 3, 4, 1, 2, 3, 0, time.UTC)
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	id := func(cfg Config) string {
		in, err := openInput(cfg.WithDefaults(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		in.Close()
		return in.jobID
	}
	a := id(Config{Input: path})
	if !strings.HasPrefix(a, "Leads_2026-20260304-") || len(a) != len("Leads_2026-20260304-")+8 {
		t.Errorf("job ID %q", a)
	}
	if err := jobstore.ValidateJobID(a); err != nil {
		t.Error(err)
	}
	if b := id(Config{Input: path}); b != a {
		t.Errorf("same file, same options: %q then %q", a, b)
	}
	if b := id(Config{Input: path, ChunkSize: 10}); b == a {
		t.Errorf("other chunk size, same ID %q", b)
	}
	if err := os.Chtimes(path, mtime.Add(time.Hour), mtime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if b := id(Config{Input: path}); b == a {
		t.Errorf("touched file, same ID %q", b)
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	if got, want := progressLine(1_234_567, 10*time.Second), "enqueue: 1,234,567 rows read, 123,456 rows/s, 10s"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for n, want := range map[int64]string{0: "0", 12: "12", 999: "999", 1000: "1,000", -1234: "-1,234"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRunGzip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := filetest.Write(t, filepath.Join(b.dir, "list.csv.gz"),
		filetest.Gzip(t, strings.NewReader("\xef\xbb\xbfmobile;name\r\n+919876543210;a\r\n+447911123456;b\r\n")))
	res, err := Run(t.Context(), b.config(path))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Format.Gzip || res.Format.Delimiter != ';' || res.Counts.Valid != 2 || !strings.HasPrefix(res.JobID, "list-") {
		t.Errorf("result %+v", res)
	}
	b.checkJob(t, res.JobID, 2)
}

// TestRunRedisFails stops Redis once 10 chunks are enqueued: Run fails with
// the Redis error and leaves no rejects.csv behind.
func TestRunRedisFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	path := b.writeList(t, "list.csv", 1_000)
	cfg := b.config(path)
	cfg.JobID, cfg.ChunkSize = "redis-dies", 20
	cfg.afterChunk = func(i int) {
		if i == 9 {
			b.srv.Stop()
		}
	}
	_, err := Run(t.Context(), cfg)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrConfig) {
		t.Fatalf("err = %v, want a Redis error", err)
	}
	t.Logf("err = %v", err)
	if _, err := os.Stat(filepath.Join(cfg.OutDir, cfg.JobID, "rejects.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed run left rejects.csv: %v", err)
	}
}

// stdinList returns a plain list of n lines: sample numbers (seed 5, with
// some invalid ones and some duplicates), every third line a long invalid
// one so that the rejects fill blobs; line i is edits[i] when given.
func stdinList(n int, edits map[int]string) string {
	var sb strings.Builder
	for i, s := range numgen.Sample(n, 5) {
		if i%3 == 2 {
			s = fmt.Sprintf("n/a %d %s", i, strings.Repeat("x", 150))
		}
		if e, ok := edits[i]; ok {
			s = e
		}
		sb.WriteString(s)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// TestRunStdinOtherInput resumes a job read from standard input with other
// content: the stored chunks and rejects tell it apart, and the run is refused
// rather than mixing two lists under one job.
func TestRunStdinOtherInput(t *testing.T) {
	t.Parallel()
	const n = 3000
	list := stdinList(n, nil)
	boom := errors.New("stdin broke")
	// run enqueues the job from stdin; with cut > 0, stdin fails after cut
	// bytes, as a killed producer would leave it: the job stays half enqueued.
	run := func(b *bundle, job, input string, cut int) (Result, error) {
		cfg := b.config("-")
		cfg.JobID, cfg.ChunkSize = job, 100
		cfg.Stdin = strings.NewReader(input)
		if cut > 0 {
			cfg.Stdin = io.MultiReader(strings.NewReader(input[:cut]), iotest.ErrReader(boom))
		}
		return Run(t.Context(), cfg)
	}
	refused := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, ErrConfig) || !errors.Is(err, jobstore.ErrSpecMismatch) || !strings.Contains(err.Error(), "differs") {
			t.Fatalf("err = %v, want ErrConfig and ErrSpecMismatch: the input differs", err)
		}
		t.Logf("refused: %v", err)
	}
	half := func(t *testing.T, b *bundle, job string) *jobstore.Job {
		t.Helper()
		if _, err := run(b, job, list, len(list)/2); !errors.Is(err, boom) {
			t.Fatalf("first run: err = %v, want the stdin error", err)
		}
		j, err := b.store.Job(t.Context(), job)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != jobstore.Enqueuing || j.ChunksEnqueued < 5 || j.ChunksEnqueued > 15 {
			t.Fatalf("after the first run: state %s, %d chunks enqueued", j.State, j.ChunksEnqueued)
		}
		return j
	}
	resumes := func(t *testing.T, b *bundle, job string) {
		t.Helper()
		res, err := run(b, job, list, 0)
		if err != nil {
			t.Fatalf("same input: %v", err)
		}
		if res.Created || res.Counts.Rows < n*9/10 || res.Counts.Invalid < n/3 {
			t.Errorf("same input: %+v", res)
		}
		b.checkJob(t, job, res.Counts.Valid)
	}

	lines := strings.SplitAfter(list, "\n")
	for _, tt := range []struct {
		name  string
		input string
	}{
		{"another list", stdinList(n/2, map[int]string{0: "+14155552671"})},
		{"a number changed in the enqueued part", stdinList(n, map[int]string{700: "+14155552671"})},
		{"an invalid input changed in the enqueued part", stdinList(n, map[int]string{302: "n/a"})},
		{"the enqueued part only", strings.Join(lines[:n/4], "")},
		{"empty", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			const job = "nightly"
			j := half(t, b, job)
			_, err := run(b, job, tt.input, 0)
			refused(t, err)
			after, err := b.store.Job(t.Context(), job)
			if err != nil {
				t.Fatal(err)
			}
			if after.State != jobstore.Enqueuing || after.ChunksEnqueued != j.ChunksEnqueued {
				t.Errorf("the refused run changed the job: %+v", after)
			}
			resumes(t, b, job)

			// Enqueued in full: another input is refused too, the same one
			// finds nothing to do.
			_, err = run(b, job, tt.input, 0)
			refused(t, err)
			res, err := run(b, job, list, 0)
			if err != nil || !res.AlreadyEnqueued || res.ChunksEnqueued != 0 {
				t.Fatalf("same input again: %+v, %v", res, err)
			}
			b.checkJob(t, job, res.Counts.Valid)
		})
	}
}

// cancelAfterChunk returns a context canceled, as SIGTERM would cancel it,
// once the run of cfg has enqueued chunk i.
func cancelAfterChunk(t *testing.T, cfg *Config, i int) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	cfg.afterChunk = func(n int) {
		if n == i {
			cancel()
		}
	}
	return ctx
}

// TestRunStarted: Started is called once the first chunk is stored and its
// task enqueued, announced and recorded.
func TestRunStarted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub := b.rdb.Subscribe(t.Context(), tasks.WakeChannel)
	defer sub.Close()
	if _, err := sub.Receive(t.Context()); err != nil { // the subscription is in place
		t.Fatal(err)
	}
	cfg := b.config(b.writeList(t, "list.csv", 5_000))
	cfg.ChunkSize, cfg.JobID = 100, "started"
	calls := 0
	cfg.Started = func() {
		calls++
		job, err := b.store.Job(t.Context(), cfg.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if job.ChunksEnqueued < 1 || !slices.Contains(b.taskIDs(t), tasks.Chunk{Job: cfg.JobID, Chunk: 0}.ID()) {
			t.Errorf("started with %d chunks enqueued, tasks %q", job.ChunksEnqueued, b.taskIDs(t))
		}
	}
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("Started called %d times, want 1", calls)
	}
	b.checkJob(t, res.JobID, res.Counts.Valid)
	if _, err := sub.ReceiveMessage(t.Context()); err != nil {
		t.Errorf("no announcement: %v", err)
	}
}
