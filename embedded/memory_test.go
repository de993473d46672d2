package embedded_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hibiken/asynq"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/embedded"
	enqueuepkg "github.com/capcheck/capcheck/enqueue"
	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/memfile"
)

var _ enqueuepkg.Memory = (*embedded.Memory)(nil)

// openFor opens a run on out that forgets answers older than forgetAfter.
func openFor(t *testing.T, out string, forgetAfter time.Duration) *embedded.Run {
	t.Helper()
	r, err := embedded.Open(embedded.Config{Out: out, Target: apiA, ForgetAfter: forgetAfter, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func closeRun(t *testing.T, r *embedded.Run) {
	t.Helper()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// rememberRun records answers in r's Redis, as callbacks and workers do.
func rememberRun(t *testing.T, r *embedded.Run, answers []capstore.Answer) {
	t.Helper()
	if err := capstore.New(r.Redis(), capstore.Options{}).Remember(t.Context(), answers); err != nil {
		t.Fatal(err)
	}
}

func recallRun(t *testing.T, r *embedded.Run, nums ...uint64) []capstore.Record {
	t.Helper()
	out := make([]capstore.Record, len(nums))
	if err := r.Memory().Recall(t.Context(), nums, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The memory outlives the process: a run remembers what earlier runs
// learned (a rejection with its code and message too), learns newer
// answers on top, and an older answer arriving late changes nothing.
func TestMemoryAcrossRuns(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	const a, b, c, d = 919876500001, 919876500002, 919876500003, 919876500004

	first := openFor(t, out, 0)
	caps := capstore.New(first.Redis(), capstore.Options{})
	if err := caps.Remember(ctx, []capstore.Answer{
		{Number: a, Capability: capstore.Capable, At: now.Add(-2 * time.Hour)},
		{Number: b, Capability: capstore.Rejected, Code: "E21", Message: "not a mobile number", At: now.Add(-2 * time.Hour)},
		{Number: c, Capability: capstore.NotCapable, At: now.Add(-2 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	closeRun(t, first)

	second := openFor(t, out, 0)
	got := recallRun(t, second, a, b, c, d)
	if got[0].Capability != capstore.Capable || got[1].Capability != capstore.Rejected || got[2].Capability != capstore.NotCapable || !got[3].IsZero() {
		t.Fatalf("second run recalls %+v", got)
	}
	caps = capstore.New(second.Redis(), capstore.Options{})
	reasons, err := caps.Reasons(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(capstore.Reason{Code: "E21", Message: "not a mobile number"}, reasons[got[1].Reason]); diff != "" {
		t.Fatalf("the remembered rejection's reason (-want +got):\n%s", diff)
	}
	// c: a callback newer than the file's answer; a: a late one, older.
	if _, err := caps.Ingest(ctx, []capstore.Callback{
		{Number: c, Capability: capstore.Capable, At: now.Add(-time.Hour)},
		{Number: a, Capability: capstore.NotCapable, At: now.Add(-3 * time.Hour)},
		{Number: d, Capability: capstore.Unknown, At: now},
	}); err != nil {
		t.Fatal(err)
	}
	if err := caps.Remember(ctx, []capstore.Answer{
		{Number: d, Capability: capstore.Rejected, Code: "E30", Message: "barred", At: now.Add(time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	want := []capstore.Record{
		{Capability: capstore.Capable, At: now.Add(-2 * time.Hour)},
		{Capability: capstore.Rejected, At: now.Add(-2 * time.Hour), Reason: got[1].Reason},
		{Capability: capstore.Capable, At: now.Add(-time.Hour)},
		{Capability: capstore.Rejected, At: now.Add(time.Second), Reason: got[1].Reason + 1},
	}
	if diff := cmp.Diff(want, recallRun(t, second, a, b, c, d)); diff != "" {
		t.Fatalf("during the second run (-want +got):\n%s", diff)
	}
	closeRun(t, second)

	third := openFor(t, out, 0)
	defer closeRun(t, third)
	if diff := cmp.Diff(want, recallRun(t, third, a, b, c, d)); diff != "" {
		t.Fatalf("third run (-want +got):\n%s", diff)
	}
	m, err := embedded.OpenMemory(out)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if diff := cmp.Diff(map[uint16]capstore.Reason{1: {Code: "E21", Message: "not a mobile number"}, 2: {Code: "E30", Message: "barred"}},
		m.Reasons()); diff != "" {
		t.Fatalf("reasons in the file (-want +got):\n%s", diff)
	}
}

// Saving drops the answers older than --forget-after; a run that learned
// nothing leaves the file alone.
func TestMemoryForgetAfter(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	first := openFor(t, out, 0)
	rememberRun(t, first, []capstore.Answer{
		{Number: 33612345601, Capability: capstore.Capable, At: now.Add(-48 * time.Hour)},
		{Number: 33612345602, Capability: capstore.Capable, At: now.Add(-time.Hour)},
	})
	closeRun(t, first)
	before, err := os.Stat(embedded.MemoryPath(out))
	if err != nil {
		t.Fatal(err)
	}
	closeRun(t, openFor(t, out, 24*time.Hour)) // learned nothing
	if after, err := os.Stat(embedded.MemoryPath(out)); err != nil || !os.SameFile(before, after) {
		t.Fatalf("a run that learned nothing rewrote the file (%v)", err)
	}

	second := openFor(t, out, 24*time.Hour)
	rememberRun(t, second, []capstore.Answer{
		{Number: 33612345603, Capability: capstore.NotCapable, At: now},
	})
	closeRun(t, second)
	third := openFor(t, out, 24*time.Hour)
	defer closeRun(t, third)
	got := recallRun(t, third, 33612345601, 33612345602, 33612345603)
	if !got[0].IsZero() || got[1].IsZero() || got[2].IsZero() {
		t.Fatalf("after a save with --forget-after 24h: %+v, want the 48h-old answer dropped", got)
	}
}

// memory forget and sweep rewrite the file, and wait for no run: they are
// refused while one works in the folder.
func TestEditMemory(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	r := openFor(t, out, 0)
	rememberRun(t, r, []capstore.Answer{
		{Number: 33612345601, Capability: capstore.Capable, At: now.Add(-48 * time.Hour)},
		{Number: 33612345602, Capability: capstore.Capable, At: now},
		{Number: 33612345603, Capability: capstore.Capable, At: now},
	})
	var locked *embedded.LockedError
	if _, err := embedded.EditMemory(out, memfile.MergeOptions{}); !errors.As(err, &locked) {
		t.Fatalf("EditMemory during a run: %v, want a LockedError", err)
	}
	if _, err := embedded.ForgetMemory(out); !errors.As(err, &locked) {
		t.Fatalf("ForgetMemory during a run: %v, want a LockedError", err)
	}
	closeRun(t, r)
	st, err := embedded.EditMemory(out, memfile.MergeOptions{Now: now, ForgetAfter: 24 * time.Hour, Forget: []uint64{33612345603}})
	if err != nil || st != (memfile.MergeStats{Numbers: 1, Expired: 1, Forgotten: 1}) {
		t.Fatalf("EditMemory = %+v, %v", st, err)
	}
	n, err := embedded.ForgetMemory(out)
	if err != nil || n != 1 {
		t.Fatalf("ForgetMemory = %d, %v; want 1", n, err)
	}
	if m, err := embedded.OpenMemory(out); err != nil || m != nil {
		t.Fatalf("after ForgetMemory: %v, %v; want no memory", m, err)
	}
}

// A save killed at any moment (SIGKILL) leaves the file of the last whole
// save: the next run reads it, and removes the torn temporary file.
func TestMemorySaveKilled(t *testing.T) {
	if os.Getenv(saverEnv) != "" {
		return // the saver below runs in its own process
	}
	// Not parallel: a process forked while another test holds its output
	// folder's lock holds the lock too, until it runs the test binary.
	out := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	// A memory of 200,000 numbers (2.6 MB), so that a save spends a good
	// part of its time writing the file.
	const seeded = 200_000
	var add memfile.Answers
	for i := range uint64(seeded) {
		add.Add(14150000000+i, capstore.Record{Capability: capstore.NotCapable, At: time.Now()})
	}
	var buf bytes.Buffer
	if _, err := memfile.Merge(&buf, nil, &add, memfile.MergeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(embedded.MemoryPath(out), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tornSeen := 0
	for round := range 6 {
		cmd, sc := startTest(t, "TestMemorySaver", saverEnv+"="+out)
		// Killed once it has saved twice (timed), at a random moment of a
		// save's length: before, during or after the rename.
		var took time.Duration
		var said []string
		for saves := 0; saves < 2 && sc.Scan(); {
			if d, ok := strings.CutPrefix(sc.Text(), "saved in "); ok {
				took, _ = time.ParseDuration(d)
				saves++
			}
			said = append(said, sc.Text())
		}
		if took == 0 {
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: the saver did not save (%v):\n%s", round, cmd.Wait(), strings.Join(said, "\n"))
		}
		time.Sleep(time.Duration(rng.Int64N(int64(took))))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		m, err := embedded.OpenMemory(out)
		if err != nil {
			t.Fatalf("round %d: after SIGKILL: %v", round, err)
		}
		if err := m.Each(func(uint64, capstore.Record) error { return nil }); err != nil {
			t.Fatalf("round %d: after SIGKILL: %v", round, err)
		}
		if m.Len() < seeded {
			t.Fatalf("round %d: after SIGKILL the memory holds %d numbers, fewer than before", round, m.Len())
		}
		m.Close()
		if torn, _ := filepath.Glob(filepath.Join(out, "..capability-memory.tmp-*")); len(torn) != 0 {
			tornSeen++
		}
		r := openFor(t, out, 0) // removes a torn temporary file
		closeRun(t, r)
		if torn, _ := filepath.Glob(filepath.Join(out, "..capability-memory.tmp-*")); len(torn) != 0 {
			t.Fatalf("round %d: torn files left: %v", round, torn)
		}
	}
	t.Logf("%d of 6 kills cut a write of the file short", tornSeen)
}

const saverEnv = "CAPCHECK_TEST_MEMORY_SAVER"

// startTest starts the test name of this binary in a process of its own,
// with env added, and returns it with a scanner of its stdout.
func startTest(t *testing.T, name string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(stdout)
}

// TestMemorySaver, in a process of its own, saves the memory again and
// again, each time with more numbers, until it is killed.
func TestMemorySaver(t *testing.T) {
	out := os.Getenv(saverEnv)
	if out == "" {
		t.Skip("runs as TestMemorySaveKilled's saver")
	}
	for i := 0; ; i++ {
		start := time.Now()
		r := openFor(t, out, 0)
		ans := make([]capstore.Answer, 2000)
		for k := range ans {
			ans[k] = capstore.Answer{Number: 919800000000 + uint64(i*len(ans)+k), Capability: capstore.Capable, At: time.Now()}
		}
		caps := capstore.New(r.Redis(), capstore.Options{})
		for len(ans) > 0 { // small script calls: the embedded Redis runs Lua slowly
			k := min(len(ans), 250)
			if err := caps.Remember(t.Context(), ans[:k]); err != nil {
				t.Fatal(err)
			}
			ans = ans[k:]
		}
		closeRun(t, r)
		fmt.Printf("saved in %s\n", time.Since(start))
	}
}

const killedRunEnv = "CAPCHECK_TEST_KILLED_RUN"

// The API's rejections of a run killed before it saved the memory file are
// remembered all the same: the next run of the job replays them from the
// journal, by number and with their time, and newer wins against the file.
func TestRejectionsOfAKilledRun(t *testing.T) {
	if os.Getenv(killedRunEnv) != "" {
		return // the killed run below runs in its own process
	}
	// Not parallel: a process forked while another test holds its output
	// folder's lock holds the lock too, until it runs the test binary.
	out := t.TempDir()
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	const first, second = 14155550001, 14155550002 // entries 1 and 2 of the job
	// An earlier run remembered an older answer for the first number and a
	// newer one for the second than the rejections to come.
	earlier := openFor(t, out, 0)
	rememberRun(t, earlier, []capstore.Answer{
		{Number: first, Capability: capstore.NotCapable, At: at.Add(-time.Hour)},
		{Number: second, Capability: capstore.Capable, At: at.Add(30 * time.Minute)},
	})
	closeRun(t, earlier)

	cmd, sc := startTest(t, "TestKilledRun", killedRunEnv+"="+out, killedRunEnv+"_AT="+strconv.FormatInt(at.UnixMilli(), 10))
	var said []string
	for sc.Scan() && sc.Text() != "recorded" {
		said = append(said, sc.Text())
	}
	_ = cmd.Process.Kill()
	werr := cmd.Wait()
	if sc.Text() != "recorded" {
		t.Fatalf("the run did not record its rejections (%v):\n%s", werr, strings.Join(said, "\n"))
	}
	m, err := embedded.OpenMemory(out)
	if err != nil {
		t.Fatal(err)
	}
	inFile := make([]capstore.Record, 2)
	if err := m.Recall(t.Context(), []uint64{first, second}, inFile); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if inFile[0].Capability != capstore.NotCapable {
		t.Fatalf("the killed run saved the memory file (%+v): the test needs it killed before", inFile)
	}

	rerun := openFor(t, out, 0)
	if err := enqueue(t, rerun, "fp"); err != nil {
		t.Fatal(err)
	}
	rejected := func(rec capstore.Record) capstore.Record {
		return capstore.Record{Capability: capstore.Rejected, At: at, Reason: rec.Reason}
	}
	got := recallRun(t, rerun, first, second)
	want := []capstore.Record{rejected(got[0]), {Capability: capstore.Capable, At: at.Add(30 * time.Minute)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("the re-run recalls (-want +got):\n%s", diff)
	}
	closeRun(t, rerun)
	next := openFor(t, out, 0)
	defer closeRun(t, next)
	got = recallRun(t, next, first, second)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("the run after recalls (-want +got):\n%s", diff)
	}
	reasons, err := capstore.New(next.Redis(), capstore.Options{}).Reasons(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(capstore.Reason{Code: "RBC529", Message: "not a mobile number"}, reasons[got[0].Reason]); diff != "" {
		t.Fatalf("the remembered rejection's reason (-want +got):\n%s", diff)
	}
}

// TestKilledRun, in a process of its own, enqueues the job, has the API
// reject its entries 1 and 2 as a worker records it (remembered in the
// embedded Redis, then the outcome journaled), says so and waits to be
// killed: the memory file never learns of them.
func TestKilledRun(t *testing.T) {
	out := os.Getenv(killedRunEnv)
	if out == "" {
		t.Skip("runs as TestRejectionsOfAKilledRun's killed run")
	}
	ms, err := strconv.ParseInt(os.Getenv(killedRunEnv+"_AT"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	r := openFor(t, out, 0)
	if err := enqueue(t, r, "fp"); err != nil {
		t.Fatal(err)
	}
	o := jobstore.Outcome{Lo: 1, Hi: 3, Status: jobstore.Rejected, Code: "RBC529", Message: "not a mobile number", Attempts: 1, CheckedAt: ms}
	rememberRun(t, r, []capstore.Answer{
		{Number: 14155550001, Capability: capstore.Rejected, Code: o.Code, Message: o.Message, At: o.Time()},
		{Number: 14155550002, Capability: capstore.Rejected, Code: o.Code, Message: o.Message, At: o.Time()},
	})
	record(t, r, o, jobstore.Counters{Requests: 1, Rejected: 2})
	fmt.Println("recorded")
	time.Sleep(time.Hour)
}

// A re-run of a job decides which numbers the memory answers as the run
// that created the job did, though later: --recheck-after counts from the
// job's creation, which the re-run restores. So the journal's outcomes of a
// killed run fall on the numbers it sent. Here the job was created an hour
// ago (a run killed before it sent anything); the memory's answers are 24.5
// hours old: within --recheck-after 24h of the job, not of now.
func TestRerunDecidesAsTheJobsFirstRun(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	now := time.Now().UTC()
	var list strings.Builder
	list.WriteString("phone\n")
	var ans []capstore.Answer
	for i := range 20 {
		fmt.Fprintf(&list, "+%d\n", 14155550100+i)
		if i%2 == 0 {
			ans = append(ans, capstore.Answer{Number: uint64(14155550100 + i), Capability: capstore.Capable, At: now.Add(-24*time.Hour - 30*time.Minute)})
		}
	}
	earlier := openFor(t, out, 0)
	rememberRun(t, earlier, ans)
	closeRun(t, earlier)
	created := now.Add(-time.Hour).Truncate(time.Millisecond)
	closeRun(t, runJob(t, out, list.String(), nil))
	setJobCreated(t, out, "j", created)

	first := runJob(t, out, list.String(), &jobstore.Outcome{Lo: 0, Hi: 5, Status: jobstore.Accepted, Attempts: 1, CheckedAt: now.UnixMilli()})
	defer closeRun(t, first)
	sent := chunks(t, first)
	if len(sent) != 10 {
		t.Fatalf("the run sends %v, want the 10 numbers the memory did not answer within 24 h of the job's creation", sent)
	}
	// Killed: what it left in the folder is all the next run has.
	killed := t.TempDir()
	if err := os.CopyFS(killed, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(killed, ".run.lock")); err != nil {
		t.Fatal(err)
	}
	rerun := runJob(t, killed, list.String(), nil)
	defer closeRun(t, rerun)
	if diff := cmp.Diff(sent, chunks(t, rerun)); diff != "" {
		t.Fatalf("the re-run's chunks (-first run +re-run):\n%s", diff)
	}
	j, err := rerun.Store().Job(t.Context(), "j")
	if err != nil {
		t.Fatal(err)
	}
	if !j.CreatedAt.Equal(created) || j.Accepted != 5 || j.Cached != 10 {
		t.Fatalf("the re-run's job: created %v, %d accepted, %d cached; want created %v, the first run's 5 accepted, 10 cached", j.CreatedAt, j.Accepted, j.Cached, created)
	}
}

// runJob runs job "j" of list in out as capcheck run does up to its
// workers (restore, enqueue with --recheck-after 24h, resume), then records
// o, if any, as a worker would, and returns the run (open).
func runJob(t *testing.T, out, list string, o *jobstore.Outcome) *embedded.Run {
	t.Helper()
	r := openFor(t, out, 0)
	if err := r.Restore(t.Context(), "j"); err != nil {
		t.Fatal(err)
	}
	if _, err := enqueuepkg.Run(t.Context(), enqueuepkg.Config{Input: "list.csv", Reader: strings.NewReader(list), JobID: "j", ChunkSize: 5,
		Memory: r.Memory().Snapshot(), RecheckAfter: 24 * time.Hour, Store: r.Store(), Client: asynq.NewClientFromRedisClient(r.Redis()),
		OutDir: out, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Resume(t.Context(), "j"); err != nil {
		t.Fatal(err)
	}
	if o != nil {
		if err := r.Store().Record(t.Context(), "j", 0, 0, *o, jobstore.Counters{Requests: 1, Accepted: int64(o.Hi - o.Lo)}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// chunks returns the numbers of job "j"'s chunks, in order.
func chunks(t *testing.T, r *embedded.Run) []string {
	t.Helper()
	j, err := r.Store().Job(t.Context(), "j")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range j.Chunks {
		es, err := r.Store().Chunk(t.Context(), "j", i)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, e.Number)
		}
	}
	return out
}

// setJobCreated rewrites the creation time in the spec file of job id
// under out, as if the run that created it had run at created.
func setJobCreated(t *testing.T, out, id string, created time.Time) {
	t.Helper()
	path := filepath.Join(out, id, "journal-job.json")
	var f map[string]any
	if err := json.Unmarshal(filetest.Read(t, path), &f); err != nil {
		t.Fatal(err)
	}
	f["created"] = created
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A run that saved the memory (stopped with SIGTERM, or done) and is run
// again: the job's own answers, now in the file, do not make the re-run
// cache the numbers the first run sent, so the journal's outcomes fall on
// them.
func TestRerunAfterTheMemoryWasSaved(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	var list strings.Builder
	list.WriteString("phone\n")
	for i := range 20 {
		fmt.Fprintf(&list, "+%d\n", 14155550100+i)
	}
	earlier := openFor(t, out, 0)
	rememberRun(t, earlier, []capstore.Answer{
		{Number: 14155550119, Capability: capstore.Capable, At: time.Now().Add(-time.Hour)},
	})
	closeRun(t, earlier)

	first := runJob(t, out, list.String(), &jobstore.Outcome{Lo: 0, Hi: 5, Status: jobstore.Accepted, Attempts: 1, CheckedAt: time.Now().UnixMilli()})
	sent := chunks(t, first)
	// The callbacks of the numbers accepted, remembered, and saved.
	var ans []capstore.Answer
	for _, e := range sent[:5] {
		n, err := jobstore.NumberToUint(e)
		if err != nil {
			t.Fatal(err)
		}
		ans = append(ans, capstore.Answer{Number: n, Capability: capstore.NotCapable, At: time.Now()})
	}
	rememberRun(t, first, ans)
	closeRun(t, first)

	rerun := runJob(t, out, list.String(), nil)
	defer closeRun(t, rerun)
	if diff := cmp.Diff(sent, chunks(t, rerun)); diff != "" {
		t.Fatalf("the re-run's chunks (-first run +re-run):\n%s", diff)
	}
	if j, err := rerun.Store().Job(t.Context(), "j"); err != nil || j.Accepted != 5 || j.Cached != 1 {
		t.Fatalf("the re-run's job: %+v (%v), want the first run's 5 accepted and 1 cached", j, err)
	}
}
