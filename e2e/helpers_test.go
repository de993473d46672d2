package e2e_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/redis/go-redis/v9"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/internal/testbin"
	"github.com/capcheck/capcheck/jobstore"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

const (
	sid          = "ACtest"
	apiKey       = "e2e-K3Y-9f8e7d6c5b4a"
	rejectSuffix = "13"
	region       = "IN"
)

// env is one test's world: a private Redis, the binary, a mock API.
type env struct {
	t     *testing.T
	bin   string
	redis *redistest.Server
	rdb   *redis.Client
	store *jobstore.Store
	dir   string // temporary directory: input, output, logs
	out   string
	mock  *proc
	api   string // the mock's base URL
	procs []*proc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, bin: testbin.Build(t), redis: redistest.StartPrivate(t), dir: t.TempDir()}
	e.rdb = e.redis.Client(t)
	e.store = jobstore.New(e.rdb)
	e.out = filepath.Join(e.dir, "out")
	return e
}

// proc is a capcheck process whose standard error is kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	errb syncBuffer
	done chan struct{}
	err  error // exit status, once done is closed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
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

// start starts `capcheck args...`; cleanup kills it if it still runs and, when
// the test failed, shows the tail of its standard error.
func (e *env) start(name string, args ...string) *proc {
	e.t.Helper()
	p := &proc{name: name, cmd: exec.Command(e.bin, args...), done: make(chan struct{})}
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout = &p.errb
	p.cmd.Stderr = &p.errb
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	e.procs = append(e.procs, p)
	e.t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if e.t.Failed() {
			e.t.Logf("--- %s (%v) output, last lines:\n%s", name, p.err, tail(p.errb.String(), 30))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startMock starts capcheck mock-api with the test key and extra flags, and
// waits until it answers.
func (e *env) startMock(extra ...string) {
	e.t.Helper()
	addr := freeAddr(e.t)
	args := append([]string{"mock-api", "--listen", addr, "--sid", sid, "--api-key", apiKey}, extra...)
	e.mock = e.start("mock-api", args...)
	e.api = "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.api + "/stats")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-e.mock.done:
			e.t.Fatalf("mock-api exited: %v\n%s", e.mock.err, e.mock.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("mock-api does not answer on %s: %v", addr, err)
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

func (e *env) stats() mockStats {
	e.t.Helper()
	resp, err := http.Get(e.api + "/stats")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st mockStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// startWorker starts capcheck worker against the mock with key; extra flags
// follow the defaults and so override them.
func (e *env) startWorker(name, key string, extra ...string) *proc {
	e.t.Helper()
	args := []string{"worker",
		"--redis", e.redis.URL, "--out", e.out,
		"--api-url", e.api, "--sid", sid, "--api-key", key,
		"--rate", "400", "--batch-size", "50", "--concurrency", "4",
		"--timeout", "5s", "--max-attempts", "8", "--shutdown-timeout", "10s",
		"--log-level", "info",
	}
	return e.start(name, append(args, extra...)...)
}

// row is one data record of a generated input and what must become of it.
type row struct {
	input  string
	e164   string // "" when invalid
	dupOf  int    // first row of the same number, 0 when first seen
	reject bool   // the simulator refuses it (reject suffix)
}

// genInput writes a CSV list of n data records: numbers of India written in
// several ways, some duplicates, some invalid, and returns the records (index
// i is row i+1).
func (e *env) genInput(n int, seed uint64) (string, []row) {
	e.t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var b strings.Builder
	b.WriteString("id,phone,name\n")
	rows := make([]row, 0, n)
	first := map[string]int{}
	for i := range n {
		var in string
		switch u := rng.IntN(100); {
		case u < 3 && i > 0: // a duplicate, written another way
			prev := rows[rng.IntN(i)]
			if prev.e164 == "" {
				in = "12345"
			} else {
				in = strings.TrimPrefix(prev.e164, "+91")
			}
		case u < 4:
			in = fmt.Sprintf("12%d", rng.IntN(1000)) // too short: invalid
		default:
			d := fmt.Sprintf("9%09d", rng.IntN(1_000_000_000))
			if u%2 == 0 {
				in = "+91" + d
			} else {
				in = d
			}
		}
		r := row{input: in}
		if num, err := phonenumbers.Parse(in, region); err == nil && phonenumbers.IsValidNumber(num) {
			r.e164 = phonenumbers.Format(num, phonenumbers.E164)
			if f, ok := first[r.e164]; ok {
				r.dupOf = f
			} else {
				first[r.e164] = i + 1
				r.reject = strings.HasSuffix(r.e164, rejectSuffix)
			}
		}
		rows = append(rows, r)
		fmt.Fprintf(&b, "%d,%s,name %d\n", i+1, in, i+1)
	}
	path := filepath.Join(e.dir, "input.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return path, rows
}

// enqueue runs capcheck enqueue of the list at path as job id in chunks of
// chunkSize, and checks that it prints the job ID.
func (e *env) enqueue(id, path string, chunkSize int) {
	e.t.Helper()
	cmd := exec.Command(e.bin, "enqueue", "--redis", e.redis.URL, "--out", e.out, "--input", path,
		"--column", "phone", "--default-region", region, "--job", id, "--chunk-size", strconv.Itoa(chunkSize))
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		e.t.Fatalf("capcheck enqueue: %v\n%s", err, stderr.String())
	}
	if got := strings.TrimSpace(string(out)); got != id {
		e.t.Fatalf("capcheck enqueue printed %q, want the job ID %q", got, id)
	}
	j, err := e.store.Job(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	if j.Chunks < 2 {
		e.t.Fatalf("enqueue made %d chunks; the test needs several", j.Chunks)
	}
}

// waitJob waits until the job is finished and returns its record.
func (e *env) waitJob(id string, timeout time.Duration) *jobstore.Job {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		j, err := e.store.Job(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if j.State.Finished() {
			return j
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s is %s after %s: %d of %d chunks done, %+v", id, j.State, timeout, j.ChunksDone, j.Chunks, j.Counters)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

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

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

// checkFiles compares the job's results.csv and rejects.csv with rows: every
// row exactly once across both, in row order; invalid and duplicate rows in
// rejects.csv; numbers with the reject suffix rejected with the API's code,
// the others with status want(row). It returns results.csv's records.
func (e *env) checkFiles(id string, rows []row, want func(r row) string) [][]string {
	t := e.t
	t.Helper()
	results := readCSV(t, filepath.Join(e.out, id, "results.csv"))
	rejects := readCSV(t, filepath.Join(e.out, id, "rejects.csv"))
	if got := strings.Join(results[0], ","); got != "row,input,number,status,code,message,attempts,checked_at" {
		t.Fatalf("results.csv header %q", got)
	}
	if got := strings.Join(rejects[0], ","); got != "row,input,reason" {
		t.Fatalf("rejects.csv header %q", got)
	}
	seen := make([]int, len(rows)+1)
	check := func(file string, recs [][]string) {
		prev := 0
		for _, rec := range recs[1:] {
			n, err := strconv.Atoi(rec[0])
			if err != nil || n < 1 || n > len(rows) {
				t.Fatalf("%s: bad row %q", file, rec)
			}
			if n <= prev {
				t.Errorf("%s: row %d after row %d", file, n, prev)
			}
			prev = n
			seen[n]++
			if rec[1] != rows[n-1].input {
				t.Errorf("%s row %d: input %q, want %q", file, n, rec[1], rows[n-1].input)
			}
		}
	}
	check("results.csv", results)
	check("rejects.csv", rejects)
	for n := 1; n <= len(rows); n++ {
		if seen[n] != 1 {
			t.Errorf("row %d appears %d times across results.csv and rejects.csv", n, seen[n])
		}
	}
	for _, rec := range rejects[1:] {
		n, _ := strconv.Atoi(rec[0])
		r := rows[n-1]
		switch {
		case r.e164 == "" && rec[2] != "invalid":
			t.Errorf("rejects.csv row %d: reason %q, want invalid", n, rec[2])
		case r.dupOf != 0 && rec[2] != fmt.Sprintf("duplicate of row %d", r.dupOf):
			t.Errorf("rejects.csv row %d: reason %q, want duplicate of row %d", n, rec[2], r.dupOf)
		case r.e164 != "" && r.dupOf == 0:
			t.Errorf("rejects.csv row %d: a valid first-seen number (%s) never sent", n, r.e164)
		}
	}
	for _, rec := range results[1:] {
		n, _ := strconv.Atoi(rec[0])
		r := rows[n-1]
		if rec[2] != r.e164 {
			t.Errorf("results.csv row %d: number %q, want %q", n, rec[2], r.e164)
		}
		status := want(r)
		if rec[3] != status {
			t.Errorf("results.csv row %d (%s): status %q (%s %s), want %s", n, r.e164, rec[3], rec[4], rec[5], status)
		}
		if status == "rejected" && (rec[4] != "RBC529" || !strings.Contains(rec[5], "invalid number")) {
			t.Errorf("results.csv row %d: rejected with code %q message %q, want the API's", n, rec[4], rec[5])
		}
	}
	return results
}

// wantChecked is the status of a valid first-seen number the simulator
// checks normally.
func wantChecked(r row) string {
	if r.reject {
		return "rejected"
	}
	return "accepted"
}

// assertNoKey fails when key appears in a process's output, a file under
// the test's directory, or any Redis value or key.
func (e *env) assertNoKey(key string) {
	t := e.t
	t.Helper()
	for _, p := range e.procs {
		if p == e.mock {
			continue // the simulator is given the key it expects
		}
		if strings.Contains(p.errb.String(), key) {
			t.Errorf("%s printed the API key", p.name)
		}
	}
	_ = filepath.WalkDir(e.out, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte(key)) {
			t.Errorf("%s holds the API key", path)
		}
		return nil
	})
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var vals []string
		switch typ, _ := e.rdb.Type(ctx, k).Result(); typ {
		case "string":
			vals = []string{e.rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range e.rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "list":
			vals = e.rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			vals = e.rdb.SMembers(ctx, k).Val()
		case "zset":
			vals = e.rdb.ZRange(ctx, k, 0, -1).Val()
		}
		for _, v := range append(vals, k) {
			if strings.Contains(v, key) {
				t.Errorf("Redis key %s holds the API key", k)
				break
			}
		}
	}
}

// signal sends sig to p.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits for p to exit within timeout and returns its exit status.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s still running after %s", p.name, timeout)
		return nil
	}
}
