package e2e_test

// The one harness of the end-to-end tests: a test's world (the binary, a
// folder, an optional private Redis), capcheck processes with stdout and
// stderr kept apart (the job ID is the first line of stdout), simulators, a
// generated list whose every row knows where it must end, and a row-by-row
// check of the output files.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/internal/syncbuf"
	"github.com/capcheck/capcheck/internal/testbin"
	"github.com/capcheck/capcheck/jobstore"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// Credentials of the simulator, and the suffix of the numbers it refuses.
const (
	sid          = "ACe2e"
	apiKey       = "e2e-K3Y-5e6f7a8b9c0d"
	badKey       = "e2e-WRONG-1a2b3c4d5e"
	rejectSuffix = "13"
)

// env is one test's world: the binary, a folder, an optional private Redis
// (nil: capcheck run uses its embedded one) with a job store on it, and the
// processes started.
type env struct {
	t     *testing.T
	bin   string
	dir   string
	out   string
	redis *redistest.Server
	// redisURL is --redis: the private server's, or a Sentinel set-up's or
	// a cluster's (newEnvOn).
	redisURL string
	store    *jobstore.Store // on redisURL
	procs    []*proc
	mocks    []*mock
}

func newEnv(t *testing.T, withRedis bool) *env {
	t.Helper()
	n := &env{t: t, bin: testbin.Build(t), dir: t.TempDir()}
	n.out = filepath.Join(n.dir, "out")
	if withRedis {
		n.redis = redistest.StartPrivate(t)
		n.redisURL = n.redis.URL
		n.store = jobstore.New(n.redis.Client(t))
	}
	return n
}

// cleanEnv is the environment without CAPCHECK_ variables, so that the
// caller's settings cannot leak into the processes under test.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAPCHECK_") {
			out = append(out, kv)
		}
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address for a process to listen on.
func freeAddr(t *testing.T) string { return testbin.FreeAddr(t) }

// proc is a capcheck process with its stdout and stderr kept apart.
type proc struct {
	name     string
	cmd      *exec.Cmd
	out, err syncbuf.Buffer
	done     chan struct{}
	werr     error // exit status, once done is closed
	started  time.Time
	exited   time.Time
}

// start starts `capcheck args...` with the environment cleared of CAPCHECK_
// variables (so no CAPCHECK_REDIS leaks in) plus env. Cleanup kills it if it
// still runs and shows its output when the test failed.
func (n *env) start(name string, env []string, args ...string) *proc {
	n.t.Helper()
	p := &proc{name: name, cmd: exec.Command(n.bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Dir = n.dir
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = &p.err
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		n.t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.werr = p.cmd.Wait(); p.exited = time.Now(); close(p.done) }()
	n.procs = append(n.procs, p)
	t := n.t
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("--- %s %s (%v)\nstdout:\n%s\nstderr, last lines:\n%s", name, strings.Join(args, " "), p.werr,
				tail(p.out.String(), 10), tail(p.err.String(), 25))
		}
	})
	return p
}

// exec runs `capcheck args...` to its end (at most timeout) and returns it.
func (n *env) exec(name string, timeout time.Duration, args ...string) *proc {
	n.t.Helper()
	p := n.start(name, nil, args...)
	p.exitCode(n.t, timeout)
	return p
}

// exitCode waits for p to exit within timeout and returns its exit code
// (-1 when a signal ended it).
func (p *proc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	default:
		select {
		case <-p.done:
		case <-time.After(timeout):
			t.Fatalf("%s still running after %s\nstderr:\n%s", p.name, timeout, tail(p.err.String(), 20))
		}
	}
	if p.werr == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.werr, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("%s: %v", p.name, p.werr)
	return -2
}

// wantExit fails the test unless p exits with code within timeout.
func (p *proc) wantExit(t *testing.T, timeout time.Duration, code int) {
	t.Helper()
	if got := p.exitCode(t, timeout); got != code {
		t.Fatalf("%s exited with %d, want %d\nstdout:\n%s\nstderr:\n%s", p.name, got, code,
			tail(p.out.String(), 10), tail(p.err.String(), 20))
	}
}

// firstLine waits for p's first line of stdout and returns it.
func (p *proc) firstLine(t *testing.T, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if line, _, ok := strings.Cut(p.out.String(), "\n"); ok {
			return line
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) without a line on stdout\nstderr:\n%s", p.name, p.werr, tail(p.err.String(), 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed no line on stdout within %s\nstderr:\n%s", p.name, timeout, tail(p.err.String(), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// mock is a `capcheck mock-api` process.
type mock struct {
	p   *proc
	url string
}

// startMock starts the simulator with the test credentials and extra
// flags, and waits until it answers.
func (n *env) startMock(name string, extra ...string) *mock {
	n.t.Helper()
	addr := freeAddr(n.t)
	args := append([]string{"mock-api", "--listen", addr, "--sid", sid, "--api-key", apiKey}, extra...)
	m := &mock{p: n.start(name, nil, args...), url: "http://" + addr}
	n.mocks = append(n.mocks, m)
	deadline := time.Now().Add(patience)
	for {
		resp, err := http.Get(m.url + "/stats")
		if err == nil {
			resp.Body.Close()
			return m
		}
		select {
		case <-m.p.done:
			n.t.Fatalf("%s exited: %v\n%s", name, m.p.werr, m.p.err.String())
		default:
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s does not answer on %s: %v", name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mockStats is the part of the simulator's GET /stats the tests read.
type mockStats struct {
	Requests    int64         `json:"requests"`
	ByStatus    map[int]int64 `json:"by_status"`
	Accepted    int64         `json:"accepted"`
	Distinct    int64         `json:"distinct"`
	Repeated    int64         `json:"repeated"`
	RateLimited int64         `json:"rate_limited"`
	MaxWindow   int           `json:"max_window"`
}

func (m *mock) stats(t *testing.T) mockStats {
	t.Helper()
	resp, err := http.Get(m.url + "/stats")
	if err != nil {
		t.Fatalf("GET %s/stats: %v", m.url, err)
	}
	defer resp.Body.Close()
	var st mockStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// apiArgs are the API options of a client of m with key.
func (m *mock) apiArgs(key string) []string {
	return []string{"--api-url", m.url, "--sid", sid, "--api-key", key}
}

// redisArgs is --redis of the private Redis.
func (n *env) redisArgs() []string {
	if n.redisURL == "" {
		n.t.Fatal("this test has no private Redis")
	}
	return []string{"--redis", n.redisURL}
}

// patience bounds the waits for what takes a few seconds at most (a process
// starting, answering, exiting): only a hang reaches it, even on a loaded
// machine.
const patience = 2 * time.Minute

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertNoKey fails when one of keys appears in the output of a process
// other than a simulator (which is given the key it expects), in a file under
// --out, or in the private Redis.
func (n *env) assertNoKey(keys ...string) {
	t := n.t
	t.Helper()
	mocks := map[*proc]bool{}
	for _, m := range n.mocks {
		mocks[m.p] = true
	}
	for _, p := range n.procs {
		if mocks[p] {
			continue
		}
		for _, k := range keys {
			if strings.Contains(p.out.String(), k) || strings.Contains(p.err.String(), k) {
				t.Errorf("%s printed an API key", p.name)
			}
		}
	}
	_ = filepath.WalkDir(n.out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(path)
		for _, k := range keys {
			if bytes.Contains(data, []byte(k)) {
				t.Errorf("%s holds an API key", path)
			}
		}
		return nil
	})
	if n.redis == nil {
		return
	}
	ctx := context.Background()
	rdb := n.redis.Client(t)
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		var vals []string
		switch typ, _ := rdb.Type(ctx, k).Result(); typ {
		case "string":
			vals = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "list":
			vals = rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			vals = rdb.SMembers(ctx, k).Val()
		case "zset":
			vals = rdb.ZRange(ctx, k, 0, -1).Val()
		}
		for _, v := range append(vals, k) {
			for _, key := range keys {
				if strings.Contains(v, key) {
					t.Errorf("Redis key %s holds an API key", k)
				}
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

// row is one data record of a generated list and where it must end.
type row struct {
	input  string
	e164   string // "" when not a valid number
	reason string // its reason in rejects.csv; "" when it goes to the API
	refuse bool   // the simulator refuses it (reject suffix): it ends rejected
}

// list is a generated input file.
type list struct {
	path string
	rows []row // rows[i] is row i+1
}

// valid returns the rows that go to the API.
func (l *list) valid() []row {
	var out []row
	for _, r := range l.rows {
		if r.reason == "" {
			out = append(out, r)
		}
	}
	return out
}

// count returns how many rows go to the API, and how many of those the
// simulator refuses.
func (l *list) count() (valid, refused int) {
	for _, r := range l.valid() {
		valid++
		if r.refuse {
			refused++
		}
	}
	return valid, refused
}

// rejectCounts counts the rows of rejects.csv by reason: invalid, missing,
// duplicates.
func (l *list) rejectCounts() (invalid, missing, duplicates int) {
	for _, r := range l.rows {
		switch {
		case r.reason == "invalid":
			invalid++
		case r.reason == "missing":
			missing++
		case strings.HasPrefix(r.reason, "duplicate of row "):
			duplicates++
		}
	}
	return
}

// genList writes a CSV list of n data records to name in n's folder: Indian
// mobile numbers written in several ways, a share ending in suffix (the
// simulator's reject suffix; "" for none) with percent refusePct, some
// duplicates written another way, some invalid, some missing, names with
// quoted commas and a few blank lines (which are not rows).
func (n *env) genList(name string, rows int, seed uint64, suffix string, refusePct int) *list {
	n.t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x6e69676874))
	var b strings.Builder
	b.WriteString("id,phone,name\n")
	l := &list{path: filepath.Join(n.dir, name)}
	first := map[string]int{}
	for len(l.rows) < rows {
		if len(l.rows) > 0 && rng.IntN(40) == 0 {
			b.WriteString("\n") // a blank line: no row
		}
		rowNum := len(l.rows) + 1
		var in string
		switch u := rng.IntN(100); {
		case u < 3 && rowNum > 1: // a duplicate of an earlier valid number, written another way
			prev := l.rows[rng.IntN(rowNum-1)]
			if prev.e164 == "" {
				in = "+91 98"
			} else if strings.HasPrefix(prev.input, "+") {
				in = strings.TrimPrefix(prev.e164, "+91")
			} else {
				in = prev.e164
			}
		case u < 5:
			in = fmt.Sprintf("12%d", rng.IntN(10000)) // too short
		case u < 6:
			in = "" // missing
		default:
			d := fmt.Sprintf("9%09d", rng.IntN(1_000_000_000))
			if suffix != "" && rng.IntN(100) < refusePct {
				d = d[:len(d)-len(suffix)] + suffix
			}
			switch u % 3 {
			case 0:
				in = "+91" + d
			case 1:
				in = "91" + d
			default:
				in = d
			}
		}
		r := row{input: in}
		if strings.TrimSpace(in) == "" {
			r.reason = "missing"
		} else if num, err := phonenumbers.Parse(in, "IN"); err == nil && phonenumbers.IsValidNumber(num) {
			r.e164 = phonenumbers.Format(num, phonenumbers.E164)
			if f, ok := first[r.e164]; ok {
				r.reason = "duplicate of row " + strconv.Itoa(f)
			} else {
				first[r.e164] = rowNum
				r.refuse = suffix != "" && strings.HasSuffix(r.e164, suffix)
			}
		} else {
			r.reason = "invalid"
		}
		l.rows = append(l.rows, r)
		nameField := fmt.Sprintf("name %d", rowNum)
		if rowNum%7 == 0 {
			nameField = fmt.Sprintf("\"Doe, Jane %d\"", rowNum)
		}
		fmt.Fprintf(&b, "%d,%s,%s\n", rowNum, in, nameField)
	}
	if err := os.WriteFile(l.path, []byte(b.String()), 0o644); err != nil {
		n.t.Fatal(err)
	}
	return l
}

// wantAPI is the status of a row that goes to a healthy simulator.
func wantAPI(r row) string {
	if r.refuse {
		return "rejected"
	}
	return "accepted"
}

// checkOutputs checks {dir}/results.csv and rejects.csv against l row by
// row: headers; every data record exactly once across both files, each file
// in row order; the input as written; rejects with their reason; results
// with the E.164 number and the status want(row), accepted and rejected ones
// with the API's code, message, attempts and time. want may name several
// statuses, "accepted|failed", when either will do. It returns the records
// of results.csv by row.
func checkOutputs(t *testing.T, dir string, l *list, want func(row) string) map[int][]string {
	t.Helper()
	results := filetest.ReadCSV(t, filepath.Join(dir, "results.csv"))
	rejects := filetest.ReadCSV(t, filepath.Join(dir, "rejects.csv"))
	if got := strings.Join(results[0], ","); got != "row,input,number,status,code,message,attempts,checked_at,capability,capability_at" {
		t.Fatalf("results.csv header %q", got)
	}
	if got := strings.Join(rejects[0], ","); got != "row,input,reason" {
		t.Fatalf("rejects.csv header %q", got)
	}
	seen := make([]int, len(l.rows)+1)
	byRow := map[int][]string{}
	errs := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	walk := func(file string, recs [][]string, each func(n int, r row, rec []string)) {
		prev := 0
		for _, rec := range recs[1:] {
			n, err := strconv.Atoi(rec[0])
			if err != nil || n < 1 || n > len(l.rows) {
				t.Fatalf("%s: bad row %q", file, rec)
			}
			if n <= prev {
				errorf("%s: row %d after row %d: not in row order", file, n, prev)
			}
			prev = n
			seen[n]++
			r := l.rows[n-1]
			if rec[1] != r.input {
				errorf("%s row %d: input %q, want %q", file, n, rec[1], r.input)
			}
			each(n, r, rec)
		}
	}
	walk("rejects.csv", rejects, func(n int, r row, rec []string) {
		if len(rec) != 3 || rec[2] != r.reason {
			errorf("rejects.csv row %d (%q): %q, want reason %q", n, r.input, rec, cmpOr(r.reason, "none: it goes to the API"))
		}
	})
	walk("results.csv", results, func(n int, r row, rec []string) {
		byRow[n] = rec
		if len(rec) != 10 {
			t.Fatalf("results.csv row %d: %d fields", n, len(rec))
		}
		if r.reason != "" {
			errorf("results.csv row %d (%q) should be in rejects.csv: %s", n, r.input, r.reason)
			return
		}
		if rec[2] != r.e164 {
			errorf("results.csv row %d: number %q, want %q", n, rec[2], r.e164)
		}
		status := want(r)
		if !slices.Contains(strings.Split(status, "|"), rec[3]) {
			errorf("results.csv row %d (%s): status %q (%s %s), want %s", n, r.e164, rec[3], rec[4], rec[5], status)
		}
		attempts, err := strconv.Atoi(rec[6])
		switch rec[3] {
		case "accepted":
			if rec[4] != "MSG402" {
				errorf("results.csv row %d: accepted with code %q", n, rec[4])
			}
		case "rejected":
			if rec[4] != "RBC529" || !strings.Contains(rec[5], "invalid number") {
				errorf("results.csv row %d: rejected with code %q message %q, want the API's", n, rec[4], rec[5])
			}
		case "failed":
			if rec[5] == "" {
				errorf("results.csv row %d: failed without a message saying why", n)
			}
		}
		if rec[3] == "accepted" || rec[3] == "rejected" {
			if err != nil || attempts < 1 {
				errorf("results.csv row %d: attempts %q", n, rec[6])
			}
			if _, err := time.Parse(time.RFC3339Nano, rec[7]); err != nil {
				errorf("results.csv row %d: checked_at %q: %v", n, rec[7], err)
			}
		}
	})
	for n := 1; n <= len(l.rows); n++ {
		if seen[n] != 1 {
			errorf("row %d (%q) appears %d times across results.csv and rejects.csv, want once", n, l.rows[n-1].input, seen[n])
		}
	}
	if errs > 20 {
		t.Errorf("... and %d more errors", errs-20)
	}
	if t.Failed() {
		t.FailNow()
	}
	return byRow
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// summary is the part of summary.json the tests read.
type summary struct {
	Job        string           `json:"job"`
	State      string           `json:"state"`
	Generation int              `json:"generation"`
	Rows       int64            `json:"rows"`
	Results    map[string]int64 `json:"results"`
	Rejects    map[string]int64 `json:"rejects"`
	Requests   int64            `json:"requests"`
	Reason     string           `json:"stopped_because"`
}

// checkSummary reads {dir}/summary.json and checks it against results.csv
// (byRow) and l: state, generation, rows, counts by status and by reason.
func checkSummary(t *testing.T, dir string, l *list, byRow map[int][]string, state string, gen int) summary {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("summary.json: %v\n%s", err, data)
	}
	count := map[string]int64{"accepted": 0, "rejected": 0, "failed": 0}
	for _, rec := range byRow {
		count[rec[3]]++
	}
	invalid, missing, dups := l.rejectCounts()
	switch {
	case s.State != state || s.Generation != gen:
		t.Errorf("summary.json: state %q generation %d, want %q %d", s.State, s.Generation, state, gen)
	case s.Rows != int64(len(l.rows)):
		t.Errorf("summary.json: rows %d, want %d", s.Rows, len(l.rows))
	case fmt.Sprint(s.Results) != fmt.Sprint(count):
		t.Errorf("summary.json: results %v, results.csv has %v", s.Results, count)
	case s.Rejects["invalid"] != int64(invalid) || s.Rejects["missing"] != int64(missing) || s.Rejects["duplicates"] != int64(dups):
		t.Errorf("summary.json: rejects %v, want invalid %d missing %d duplicate %d", s.Rejects, invalid, missing, dups)
	}
	return s
}

// startWorker starts capcheck worker on the private Redis against m with
// key; extra flags follow the defaults and so override them.
func (n *env) startWorker(name string, m *mock, key string, extra ...string) *proc {
	n.t.Helper()
	args := append([]string{"worker", "--out", n.out}, n.redisArgs()...)
	args = append(args, m.apiArgs(key)...)
	args = append(args, "--rate", "400", "--batch-size", "50", "--concurrency", "4",
		"--timeout", "5s", "--max-attempts", "8", "--shutdown-timeout", "10s", "--log-level", "info")
	return n.start(name, nil, append(args, extra...)...)
}

// enqueue runs capcheck enqueue of l on the private Redis as job id in
// chunks of chunkSize, and checks that it prints the job ID and makes
// several chunks.
func (n *env) enqueue(id string, l *list, chunkSize int) {
	n.t.Helper()
	args := append([]string{"enqueue", "--out", n.out, "--input", l.path, "--column", "phone",
		"--job", id, "--chunk-size", strconv.Itoa(chunkSize)}, n.redisArgs()...)
	p := n.exec("enqueue", 60*time.Second, args...)
	p.wantExit(n.t, 0, 0)
	if got := strings.TrimSpace(p.out.String()); got != id {
		n.t.Fatalf("capcheck enqueue printed %q, want the job ID %q", got, id)
	}
	j, err := n.store.Job(context.Background(), id)
	if err != nil {
		n.t.Fatal(err)
	}
	if j.Chunks < 2 {
		n.t.Fatalf("enqueue made %d chunks; the test needs several", j.Chunks)
	}
}

// waitJob waits until the job is finished and returns its record.
func (n *env) waitJob(id string, timeout time.Duration) *jobstore.Job {
	n.t.Helper()
	var j *jobstore.Job
	waitFor(n.t, "job "+id+" finished", timeout, func() bool {
		var err error
		if j, err = n.store.Job(context.Background(), id); err != nil {
			n.t.Fatal(err)
		}
		return j.State.Finished()
	})
	return j
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
