package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/mockapi"
)

const callbackToken = "e2e-cb-T0KEN-1a2b"

// startReceiver starts capcheck callbacks on addr and waits until it
// answers.
func (n *env) startReceiver(name, addr string) *proc {
	n.t.Helper()
	args := append([]string{"callbacks", "--callback-listen", addr, "--callback-token", callbackToken,
		"--log-level", "info"}, n.redisArgs()...)
	p := n.start(name, nil, args...)
	waitFor(n.t, name+" answering", patience, func() bool {
		code, _ := tryGet("http://" + addr + "/healthz")
		return code == 200
	})
	return p
}

// tryGet returns the status of GET url, 0 when it cannot be had.
func tryGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// enqueueWait enqueues l as job id with --callback-wait wait.
func (n *env) enqueueWait(id string, l *list, wait string) {
	n.t.Helper()
	args := append([]string{"enqueue", "--out", n.out, "--input", l.path, "--column", "phone",
		"--job", id, "--chunk-size", "100", "--callback-wait", wait}, n.redisArgs()...)
	n.exec("enqueue", 60*time.Second, args...).wantExit(n.t, 0, 0)
}

// TestCallbacks: enqueue with --callback-wait, three workers, a receiver,
// and the simulator calling back late, out of order, twice, with a share
// refused at first and API faults. The receiver is killed with SIGKILL
// while callbacks stream in and another takes its place. Every accepted
// number ends with the capability the simulator's function gives, once.
func TestCallbacks(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	l := n.genList("list.csv", 800, 91, "13", 3)
	cbAddr := freeAddr(t)
	recv := n.startReceiver("callbacks 1", cbAddr)
	m := n.startMock("mock-api", "--reject-suffix", "13", "--fail-rate", "0.1", "--seed", "5",
		"--callback-url", "http://"+cbAddr+"/callback", "--callback-token", callbackToken,
		"--callback-delay", "300ms", "--callback-jitter", "1500ms", "--callback-duplicate-rate", "0.2",
		"--callback-refuse-rate", "0.2", "--capable-fraction", "0.4")
	for i := range 3 {
		n.startWorker("worker "+strconv.Itoa(i+1), m, apiKey)
	}
	const id = "cbjob"
	n.enqueueWait(id, l, "2m")

	// Kill the receiver once some callbacks are in; the simulator retries
	// what it could not deliver, and a new receiver takes them.
	caps := capstore.New(n.redis.Client(t), capstore.Options{})
	waitFor(t, "first callbacks", 60*time.Second, func() bool {
		jc, err := caps.JobCounts(context.Background(), id)
		return err == nil && jc.Received > 50
	})
	recv.signal(t, syscall.SIGKILL)
	recv.exitCode(t, patience)
	n.startReceiver("callbacks 2", cbAddr)

	j := n.waitJob(id, 120*time.Second)
	dir := filepath.Join(n.out, id)
	byRow := checkOutputs(t, dir, l, wantAPI)
	var last time.Time
	accepted := 0
	for num, rec := range byRow {
		status, capability, at := rec[3], rec[8], rec[9]
		if status != "accepted" {
			if capability != "" || at != "" {
				t.Errorf("row %d (%s): capability %q %q of a number not accepted", num, status, capability, at)
			}
			continue
		}
		accepted++
		want := mockapi.CapabilityStatus(rec[2], 0.4)
		if capability != want {
			t.Errorf("row %d %s: capability %q, the simulator says %q", num, rec[2], capability, want)
		}
		ts, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Errorf("row %d: capability_at %q: %v", num, at, err)
		}
		if ts.After(last) {
			last = ts
		}
	}
	var sum struct {
		Capabilities map[string]int64   `json:"capabilities"`
		Callbacks    capstore.JobCounts `json:"callbacks"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Callbacks.Received != int64(accepted) || sum.Capabilities["no_callback"] != 0 ||
		sum.Capabilities["capable"]+sum.Capabilities["not_capable"] != int64(accepted) {
		t.Errorf("summary: %s", b)
	}
	// The job leaves the wait on its last callback, not at its deadline.
	gap := j.FinishedAt.Sub(last)
	t.Logf("%d accepted; finished %v after the last callback's second; duplicates %d", accepted, gap, sum.Callbacks.Duplicates)
	if !j.FinishedAt.Before(j.AwaitUntil) {
		t.Errorf("job finished at %v, at the end of its wait (%v), not on its last callback (at %v)", j.FinishedAt, j.AwaitUntil, last)
	}
}

// TestCallbackWaitPasses: a job whose callbacks never come waits its
// --callback-wait and ends with no_callback for every accepted number.
// Callbacks that come after it finished are recorded, and export rewrites
// the files with them.
func TestCallbackWaitPasses(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	l := n.genList("list.csv", 150, 7, "13", 3)
	m := n.startMock("mock-api", "--reject-suffix", "13")
	n.startWorker("worker", m, apiKey)
	const id = "nocb"
	n.enqueueWait(id, l, "2s")
	j := n.waitJob(id, 60*time.Second)
	if j.State != "done" {
		t.Fatalf("job %s", j.State)
	}
	byRow := checkOutputs(t, filepath.Join(n.out, id), l, wantAPI)
	for num, rec := range byRow {
		want := ""
		if rec[3] == "accepted" {
			want = "no_callback"
		}
		if rec[8] != want || rec[9] != "" {
			t.Errorf("row %d (%s): capability %q %q, want %q", num, rec[3], rec[8], rec[9], want)
		}
	}
	b, err := os.ReadFile(filepath.Join(n.out, id, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"no_callback": `+strconv.FormatInt(j.Accepted, 10)) {
		t.Errorf("summary.json does not count %d no_callback:\n%s", j.Accepted, b)
	}

	// Late callbacks for the accepted numbers of odd rows.
	addr := freeAddr(t)
	n.startReceiver("callbacks", addr)
	late := map[int]string{}
	for num, rec := range byRow {
		if rec[3] != "accepted" || num%2 == 0 {
			continue
		}
		status := []string{"capable", "not_capable"}[num/2%2]
		late[num] = status
		body := `{"number":"` + strings.TrimPrefix(rec[2], "+") + `","status":"` + status + `"}`
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/callback", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+callbackToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("late callback for row %d: %s", num, resp.Status)
		}
	}
	if len(late) < 10 {
		t.Fatalf("only %d late callbacks: the test shows little", len(late))
	}
	n.exec("export", 30*time.Second, append([]string{"export", "--out", n.out, id}, n.redisArgs()...)...).wantExit(t, 0, 0)
	byRow = checkOutputs(t, filepath.Join(n.out, id), l, wantAPI)
	for num, rec := range byRow {
		want := late[num]
		if want == "" && rec[3] == "accepted" {
			want = "no_callback"
		}
		if rec[8] != want || (late[num] != "") != (rec[9] != "") {
			t.Errorf("after export, row %d (%s): capability %q %q, want %q", num, rec[3], rec[8], rec[9], want)
		}
	}
	b, err = os.ReadFile(filepath.Join(n.out, id, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"no_callback": `+strconv.FormatInt(j.Accepted-int64(len(late)), 10)) {
		t.Errorf("summary.json after export does not count %d no_callback:\n%s", j.Accepted-int64(len(late)), b)
	}
}

// TestRunAgainKeepsCapabilities: `run --demo` again in the same --out
// finds the finished job in the journal and writes the same files. The
// embedded Redis is a new one: the capabilities, and the job's callback
// counts, come back from the journaled callbacks, and the job does not wait
// for callbacks again.
func TestRunAgainKeepsCapabilities(t *testing.T) {
	t.Parallel()
	n := newEnv(t, false)
	l := n.genList("again.csv", 300, 17, "0000", 1)
	// A callback wait far longer than the runs are given: a run that waited
	// it out (rather than leaving the wait on the callbacks it has) fails.
	args := []string{"run", "--demo", "--input", l.path, "--column", "phone", "--out", n.out, "--rate", "200", "--batch-size", "20",
		"--callback-wait", "1h"}
	p := n.start("run 1", nil, args...)
	id := p.firstLine(t, 30*time.Second)
	p.wantExit(t, 90*time.Second, 0)
	dir := filepath.Join(n.out, id)
	read := func() ([]byte, capstore.JobCounts) {
		results, err := os.ReadFile(filepath.Join(dir, "results.csv"))
		if err != nil {
			t.Fatal(err)
		}
		var sum struct {
			Callbacks capstore.JobCounts `json:"callbacks"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err == nil {
			err = json.Unmarshal(b, &sum)
		}
		if err != nil {
			t.Fatal(err)
		}
		return results, sum.Callbacks
	}
	results1, counts1 := read()
	if counts1.Received == 0 || !bytes.Contains(results1, []byte(",capable,")) || bytes.Contains(results1, []byte("no_callback")) {
		t.Fatalf("first run: callbacks %+v, results.csv:\n%s", counts1, results1)
	}

	p = n.start("run 2", nil, args...)
	p.wantExit(t, 90*time.Second, 0) // not the hour of the callback wait
	results2, counts2 := read()
	if !bytes.Equal(results1, results2) {
		t.Errorf("results.csv of the second run differs:\n%s", cmp.Diff(string(results1), string(results2)))
	}
	if counts1.Received != counts2.Received || counts1.Capable != counts2.Capable || counts1.Duplicates != counts2.Duplicates {
		t.Errorf("callbacks in summary.json: first run %+v, second %+v", counts1, counts2)
	}
}
