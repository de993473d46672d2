package e2e_test

// The nightly job, end to end: cron runs `capcheck run` (or enqueue +
// workers + `capcheck wait`) on a list every night and the next step of the
// pipeline reads the output files and the exit code. Each test starts the
// real binary against `capcheck mock-api` (or run --demo's in-process
// simulator), on run's embedded Redis or a private redis-server, and checks
// the files row by row against the generated input.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/filetest"
)

// TestNightlyRunDemo: `capcheck run --demo` on a bare machine (embedded
// Redis, in-process simulator that refuses numbers ending in 0000) prints the
// job ID first and writes exact files; examples/numbers.csv goes through too.
func TestNightlyRunDemo(t *testing.T) {
	t.Parallel()
	t.Run("generated", func(t *testing.T) {
		t.Parallel()
		n := newEnv(t, false)
		l := n.genList("nightly.csv", 1500, 11, "0000", 1)
		if _, refused := l.count(); refused < 5 {
			t.Fatalf("only %d numbers end in 0000: the test would not show refusals", refused)
		}
		p := n.start("run --demo", nil, "run", "--demo", "--input", l.path, "--column", "phone", "--out", n.out,
			"--rate", "200", "--batch-size", "20", "--chunk-size", "250")
		id := p.firstLine(t, 30*time.Second)
		p.wantExit(t, 90*time.Second, 0)
		lines := strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
		if lines[0] != id || !strings.HasPrefix(id, "nightly-") || len(lines) < 2 || !strings.HasPrefix(lines[1], "job "+id+" done: ") {
			t.Errorf("stdout: %q; want the job ID (derived from the file name), then its outcome", lines)
		}
		dir := filepath.Join(n.out, id)
		byRow := checkOutputs(t, dir, l, wantAPI)
		checkSummary(t, dir, l, byRow, "done", 0)
		n.assertNoKey("demo-key-not-secret")
	})
	t.Run("examples", func(t *testing.T) {
		t.Parallel()
		n := newEnv(t, false)
		input, err := filepath.Abs(filepath.Join("..", "examples", "numbers.csv"))
		if err != nil {
			t.Fatal(err)
		}
		p := n.start("run --demo", nil, "run", "--demo", "--input", input, "--out", n.out, "--rate", "100")
		id := p.firstLine(t, 30*time.Second)
		p.wantExit(t, 60*time.Second, 0)
		checkAnyOutputs(t, filepath.Join(n.out, id), "0000")
	})
}

// checkAnyOutputs checks the files of a job on an input the test did not
// generate: the three files exist; every row 1..summary.rows exactly once
// across results.csv and rejects.csv, each in row order; numbers ending in
// suffix rejected by the API, the others accepted.
func checkAnyOutputs(t *testing.T, dir, suffix string) {
	t.Helper()
	results := filetest.ReadCSV(t, filepath.Join(dir, "results.csv"))
	rejects := filetest.ReadCSV(t, filepath.Join(dir, "rejects.csv"))
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s summary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if s.Rows < 10 || s.State != "done" {
		t.Fatalf("summary.json: %d rows, state %q", s.Rows, s.State)
	}
	seen := make([]int, s.Rows+1)
	for _, f := range []struct {
		name string
		recs [][]string
	}{{"results.csv", results}, {"rejects.csv", rejects}} {
		prev := int64(0)
		for _, rec := range f.recs[1:] {
			row, err := strconv.ParseInt(rec[0], 10, 64)
			if err != nil || row < 1 || row > s.Rows {
				t.Fatalf("%s: bad row %q", f.name, rec)
			}
			if row <= prev {
				t.Errorf("%s: row %d after row %d", f.name, row, prev)
			}
			prev = row
			seen[row]++
		}
	}
	for row := 1; row <= int(s.Rows); row++ {
		if seen[row] != 1 {
			t.Errorf("row %d appears %d times across results.csv and rejects.csv", row, seen[row])
		}
	}
	for _, rec := range results[1:] {
		want := "accepted"
		if strings.HasSuffix(rec[2], suffix) {
			want = "rejected"
		}
		if rec[3] != want {
			t.Errorf("results.csv row %s (%s): %s, want %s", rec[0], rec[2], rec[3], want)
		}
	}
}

// runArgs are the options of `capcheck run` on l against m with key, slow
// enough to be caught mid-way: --rate 20, 5 numbers per call, chunks of 100.
func (n *env) runArgs(l *list, m *mock, key string, extra ...string) []string {
	args := []string{"run", "--input", l.path, "--column", "phone", "--out", n.out,
		"--rate", "20", "--batch-size", "5", "--chunk-size", "100"}
	return append(append(args, m.apiArgs(key)...), extra...)
}

// TestNightlyRunResume: a run on the embedded Redis stopped mid-way and
// re-run finishes the job with exact files. Killed (SIGKILL), only the calls
// in flight are sent again; told to stop (SIGTERM, SIGINT), it exits at once
// saying so, having recorded its calls in flight: nothing is sent again.
func TestNightlyRunResume(t *testing.T) {
	t.Parallel()
	for i, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT} {
		name := map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT"}[sig]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			n := newEnv(t, false)
			m := n.startMock("mock-api", "--latency", "100ms", "--reject-suffix", "13")
			l := n.genList("nightly.csv", 400, uint64(70+i), "13", 2)
			valid, refused := l.count()
			const batchSize, chunkSize, concurrency = 5, 100, 16 // runArgs', run's default concurrency
			chunks := (valid + chunkSize - 1) / chunkSize
			// A drain is prompt when it ends with the calls in flight, not
			// at a shutdown timeout longer than the test waits for it.
			args := n.runArgs(l, m, apiKey, "--shutdown-timeout", "1h")

			first := n.start("run-1", nil, args...)
			id := first.firstLine(t, 30*time.Second)
			waitFor(t, "run-1 at work", 30*time.Second, func() bool { return m.stats(t).Requests >= 15 })
			sent := time.Now()
			first.signal(t, sig)
			code := first.exitCode(t, patience)
			took := first.exited.Sub(sent)
			atStop := m.stats(t)
			t.Logf("run-1 exited %d after %s, %d requests so far", code, took.Round(time.Millisecond), atStop.Requests)
			if atStop.Accepted >= int64(valid-refused) {
				t.Fatalf("run-1 had accepted every number when stopped: the test proves nothing")
			}
			if sig == syscall.SIGKILL {
				if code != -1 {
					t.Fatalf("run-1 exited %d, want killed", code)
				}
			} else {
				stderr := first.err.String()
				last := lastLine(stderr)
				switch {
				case code == 0 || code == -1:
					t.Errorf("run-1 exited %d after %v, want a non-zero exit code", code, sig)
				case !strings.HasPrefix(last, "capcheck: ") || !strings.Contains(last, "interrupted") ||
					!strings.Contains(last, "run the same command again"):
					t.Errorf("run-1's last line %q, want it to say it was interrupted and how to resume", last)
				case strings.Contains(last, "capcheck wait"):
					// The embedded Redis is gone: 'capcheck wait' would
					// look for the job in another Redis.
					t.Errorf("run-1's last line %q points at 'capcheck wait', which cannot see an embedded Redis", last)
				}
			}
			if _, err := os.Stat(filepath.Join(n.out, id, "results.csv")); err == nil {
				t.Fatalf("results.csv exists after an interrupted run")
			}
			if j := journalLines(t, filepath.Join(n.out, id, "journal.jsonl")); j == 0 {
				t.Fatalf("run-1 journaled nothing")
			}

			second := n.start("run-2", nil, args...)
			if got := second.firstLine(t, 30*time.Second); got != id {
				t.Errorf("run-2 printed job %q, want %q (the same command resumes the same job)", got, id)
			}
			second.wantExit(t, 60*time.Second, 0)
			if !strings.Contains(second.err.String(), "resumed from the journal") {
				t.Errorf("run-2 did not say it resumed from the journal")
			}
			dir := filepath.Join(n.out, id)
			byRow := checkOutputs(t, dir, l, wantAPI)
			checkSummary(t, dir, l, byRow, "done", 0)

			st := m.stats(t)
			t.Logf("at the stop: %+v; at the end: %+v", atStop, st)
			bound := int64(0) // a drain records its calls in flight
			if sig == syscall.SIGKILL {
				bound = int64(min(chunks, concurrency) * batchSize) // one call in flight per chunk
			}
			if st.Distinct != int64(valid-refused) {
				t.Errorf("the simulator accepted %d distinct numbers, want %d", st.Distinct, valid-refused)
			}
			if st.Repeated > bound {
				t.Errorf("the simulator accepted %d numbers again after the %v, want at most %d", st.Repeated, sig, bound)
			}
			n.assertNoKey(apiKey)
		})
	}
}

// TestNightlyRunSameJob: cron runs `capcheck run --job nightly` on the
// embedded Redis. Re-run after success, the same command sends nothing and
// writes the same files. Run on another list under the same --job, it must
// not replay the earlier list's journal onto the new rows (numbers never
// sent would be reported checked): it refuses, like a shared Redis refuses
// another input under a job ID, and leaves the earlier files as they were.
func TestNightlyRunSameJob(t *testing.T) {
	t.Parallel()
	n := newEnv(t, false)
	m := n.startMock("mock-api", "--reject-suffix", "13")
	a := n.genList("monday.csv", 200, 81, "13", 2)
	b := n.genList("tuesday.csv", 200, 82, "13", 2)
	const id = "nightly"
	args := func(l *list) []string {
		return []string{"run", "--job", id, "--input", l.path, "--column", "phone", "--out", n.out,
			"--rate", "100", "--batch-size", "10", "--chunk-size", "50", "--api-url", m.url, "--sid", sid, "--api-key", apiKey}
	}
	dir := filepath.Join(n.out, id)
	n.exec("run monday", 60*time.Second, args(a)...).wantExit(t, 0, 0)
	checkOutputs(t, dir, a, wantAPI)
	files := map[string][]byte{}
	for _, f := range []string{"results.csv", "rejects.csv"} {
		files[f] = filetest.Read(t, filepath.Join(dir, f))
	}
	sent := m.stats(t)

	again := n.exec("run monday again", 60*time.Second, args(a)...)
	again.wantExit(t, 0, 0)
	if st := m.stats(t); st.Requests != sent.Requests {
		t.Errorf("the re-run of a finished job sent %d requests, want none", st.Requests-sent.Requests)
	}
	for f, data := range files {
		if got := filetest.Read(t, filepath.Join(dir, f)); !bytes.Equal(got, data) {
			t.Errorf("the re-run of a finished job changed %s: %s", f, firstDiff(data, got))
		}
	}

	other := n.exec("run tuesday", 60*time.Second, args(b)...)
	code := other.exitCode(t, 0)
	if st := m.stats(t); code == 0 || st.Requests != sent.Requests {
		valid, _ := b.count()
		t.Fatalf("run --job %s on another list exited %d having sent %d requests for %d numbers: "+
			"the earlier list's outcomes stand for numbers never sent", id, code, st.Requests-sent.Requests, valid)
	}
	if msg := other.err.String(); code != 2 || !strings.Contains(msg, "another input") || !strings.Contains(msg, "--job") {
		t.Errorf("run --job %s on another list: exit %d, %q; want 2 saying to pass another --job", id, code, lastLine(msg))
	}
	for f, data := range files {
		if got := filetest.Read(t, filepath.Join(dir, f)); !bytes.Equal(got, data) {
			t.Errorf("the refused run changed %s: %s", f, firstDiff(data, got))
		}
	}
	n.assertNoKey(apiKey)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func journalLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	return bytes.Count(data, []byte("\n"))
}

// TestNightlyWaitStatusExport: the nightly job on a shared Redis, followed
// by wait, status and export. `wait --timeout 1s` on a running job exits 1;
// `status --json` mid-way and at the end has exactly the documented fields
// with counts that add up; `wait` exits 0 when the job is done; `export`
// rebuilds results.jsonl and, after the folder was lost, the same files.
func TestNightlyWaitStatusExport(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	m := n.startMock("mock-api", "--reject-suffix", "13", "--latency", "20ms")
	l := n.genList("nightly.csv", 400, 21, "13", 2)
	const id = "nightly-status"
	redis := n.redisArgs()
	run := n.start("run", nil, n.runArgs(l, m, apiKey, append([]string{"--job", id}, redis...)...)...)
	if got := run.firstLine(t, 30*time.Second); got != id {
		t.Fatalf("run printed %q first, want the job ID %s", got, id)
	}
	want := statusWant{id: id, input: l.path, list: l, chunkSize: 100}

	// A job still running: wait gives up after --timeout with exit 1.
	// The job is still running after it (status mid-way says so below).
	w := n.exec("wait --timeout 1s", patience, append(append([]string{"wait", "--timeout", "1s"}, redis...), id)...)
	if code := w.exitCode(t, 0); code != 1 || !strings.Contains(w.err.String(), "timed out") {
		t.Errorf("wait --timeout 1s on a running job: exit %d, stderr %q; want 1 saying it timed out", code, w.err.String())
	}
	t.Logf("wait --timeout 1s exited after %s", w.exited.Sub(w.started).Round(time.Millisecond))

	// Mid-way.
	waitFor(t, "the job under way", 30*time.Second, func() bool { return m.stats(t).Requests >= 10 })
	mid := n.exec("status --json (mid-way)", patience, append(append([]string{"status", "--json"}, redis...), id)...)
	mid.wantExit(t, 0, 0)
	want.phase = "running"
	checkStatus(t, []byte(mid.out.String()), want)

	waiter := n.start("wait", nil, append(append([]string{"wait", "--out", n.out}, redis...), id)...)
	run.wantExit(t, 90*time.Second, 0)
	waiter.wantExit(t, patience, 0)
	if out := waiter.out.String(); !strings.HasPrefix(out, "job "+id+" done: ") {
		t.Errorf("wait printed %q, want the job's outcome", out)
	}
	dir := filepath.Join(n.out, id)
	byRow := checkOutputs(t, dir, l, wantAPI)
	sum := checkSummary(t, dir, l, byRow, "done", 0)

	// Finished.
	end := n.exec("status --json (done)", patience, append(append([]string{"status", "--json"}, redis...), id)...)
	end.wantExit(t, 0, 0)
	want.phase = "done"
	st := checkStatus(t, []byte(end.out.String()), want)
	if ms := m.stats(t); st.Requests != ms.Requests || sum.Requests != ms.Requests {
		t.Errorf("status says %d requests, summary.json %d, the simulator saw %d", st.Requests, sum.Requests, ms.Requests)
	}
	all := n.exec("status --json (list)", patience, append([]string{"status", "--json"}, redis...)...)
	all.wantExit(t, 0, 0)
	var docs []json.RawMessage
	if err := json.Unmarshal([]byte(all.out.String()), &docs); err != nil || len(docs) != 1 {
		t.Fatalf("status --json without JOB: %v, %d jobs; want an array of this job\n%s", err, len(docs), all.out.String())
	}
	want.phase, want.inList = "done", true
	checkStatus(t, docs[0], want)
	text := n.exec("status", patience, append(append([]string{"status"}, redis...), id)...)
	text.wantExit(t, 0, 0)
	if !regexp.MustCompile(`(?m)^state\s+done$`).MatchString(text.out.String()) {
		t.Errorf("status %s does not name the state:\n%s", id, text.out.String())
	}
	ls := n.exec("status (list)", patience, append([]string{"status"}, redis...)...)
	ls.wantExit(t, 0, 0)
	if !regexp.MustCompile(`(?m)^` + id + `\s+done\s`).MatchString(ls.out.String()) {
		t.Errorf("status without JOB does not list %s as done:\n%s", id, ls.out.String())
	}

	// export --format jsonl: results.jsonl holds what results.csv holds.
	ex := n.exec("export --format jsonl", 30*time.Second, append(append([]string{"export", "--format", "jsonl", "--out", n.out}, redis...), id)...)
	ex.wantExit(t, 0, 0)
	checkJSONL(t, filepath.Join(dir, "results.jsonl"), filetest.ReadCSV(t, filepath.Join(dir, "results.csv")))

	// export after the folder was lost: the same files again.
	before := map[string][]byte{}
	for _, f := range []string{"results.csv", "rejects.csv", "summary.json"} {
		before[f] = filetest.Read(t, filepath.Join(dir, f))
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ex = n.exec("export", 30*time.Second, append(append([]string{"export", "--out", n.out}, redis...), id)...)
	ex.wantExit(t, 0, 0)
	for _, f := range []string{"results.csv", "rejects.csv"} {
		if got := filetest.Read(t, filepath.Join(dir, f)); !bytes.Equal(got, before[f]) {
			t.Errorf("export rebuilt %s differently:\n%s", f, firstDiff(before[f], got))
		}
	}
	a, b := summaryMap(t, before["summary.json"]), summaryMap(t, filetest.Read(t, filepath.Join(dir, "summary.json")))
	if !maps.EqualFunc(a, b, func(x, y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
		t.Errorf("export rebuilt summary.json differently:\nbefore %v\nafter  %v", a, b)
	}
	n.assertNoKey(apiKey)
}

// summaryMap is summary.json without the fields that tell when it was
// written.
func summaryMap(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	delete(m, "finished_at")
	delete(m, "total_seconds") // finished_at - created_at
	return m
}

func firstDiff(a, b []byte) string {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: %q, now %q", i+1, x, y)
		}
	}
	return "same lines"
}

// checkJSONL checks that results.jsonl holds results.csv's records, one
// object per line, in the same order, with the same values.
func checkJSONL(t *testing.T, path string, csvRecs [][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		i++
		if i >= len(csvRecs) {
			t.Fatalf("results.jsonl has more lines than results.csv has records (%d)", len(csvRecs)-1)
		}
		var o struct {
			Row       int64  `json:"row"`
			Input     string `json:"input"`
			Number    string `json:"number"`
			Status    string `json:"status"`
			Code      string `json:"code"`
			Message   string `json:"message"`
			Attempts  int    `json:"attempts"`
			CheckedAt string `json:"checked_at"`

			Capability   string `json:"capability"`
			CapabilityAt string `json:"capability_at"`
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("results.jsonl line %d: %v: %s", i, err, sc.Text())
		}
		got := []string{strconv.FormatInt(o.Row, 10), o.Input, o.Number, o.Status, o.Code, o.Message, strconv.Itoa(o.Attempts), o.CheckedAt,
			o.Capability, o.CapabilityAt}
		if !slices.Equal(got, csvRecs[i]) {
			t.Errorf("results.jsonl line %d: %q, results.csv: %q", i, got, csvRecs[i])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(csvRecs)-1 {
		t.Errorf("results.jsonl has %d lines, results.csv %d records", i, len(csvRecs)-1)
	}
}

// statusWant is what checkStatus expects of a `status --json` document.
type statusWant struct {
	id, input string
	list      *list
	chunkSize int
	gen       int
	phase     string // running, done, stopped (finished, failed)
	inList    bool   // an element of the job list
}

// statusDoc is `status --json` as docs/status-json.md documents it.
type statusDoc struct {
	Job            string `json:"job"`
	State          string `json:"state"`
	StoppedBecause string `json:"stopped_because"`
	Input          string `json:"input"`
	Generation     int    `json:"generation"`
	Rows           int64  `json:"rows"`
	Valid          int64  `json:"valid"`
	Rejects        struct{ Invalid, Missing, Malformed, Duplicates int64 }
	Chunks         struct{ Total, Enqueued, Done int64 }
	Numbers        struct{ Accepted, Rejected, Failed, Cached, Pending int64 }
	Requests       int64      `json:"requests"`
	RateLimited    int64      `json:"rate_limited_429s"`
	Retries        int64      `json:"retries"`
	RateLastMinute float64    `json:"requests_per_second_last_minute"`
	CreatedAt      time.Time  `json:"created_at"`
	StartedAt      *time.Time `json:"started_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	ElapsedSeconds float64    `json:"elapsed_seconds"`
	ETASeconds     *float64   `json:"eta_seconds"`
	Progress       float64    `json:"progress"`
}

// docStatusFields reads the top-level fields of `status --json` from the
// table of docs/status-json.md.
func docStatusFields(t *testing.T) map[string]bool {
	t.Helper()
	data := filetest.Read(t, filepath.Join("..", "docs", "status-json.md"))
	fields := map[string]bool{}
	name := regexp.MustCompile("`([a-z0-9_]+)`")
	for line := range strings.Lines(string(data)) {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			fields[m[1]] = true
		}
	}
	if len(fields) < 15 {
		t.Fatalf("docs/status-json.md documents only %d fields: %v", len(fields), slices.Sorted(maps.Keys(fields)))
	}
	return fields
}

// checkStatus checks a `status --json` document against the documented
// fields (exactly those, the optional ones present when they apply) and w,
// and returns it decoded.
func checkStatus(t *testing.T, raw []byte, w statusWant) statusDoc {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("status --json: %v\n%s", err, raw)
	}
	documented := docStatusFields(t)
	// callbacks: only for a job with --callback-wait, which these are not.
	optional := map[string]bool{"stopped_because": true, "started_at": true, "finished_at": true, "eta_seconds": true,
		"callbacks": true}
	// Present only while a 429 pauses the fleet, or only in the job list
	// (report): not up to this test.
	maybe := map[string]bool{"fleet_paused_until": true, "report": true}
	present := map[string]bool{}
	switch w.phase {
	case "running":
		present["started_at"], present["eta_seconds"] = true, true
	case "done":
		present["started_at"], present["finished_at"] = true, true
	case "stopped":
		present["started_at"], present["finished_at"], present["stopped_because"] = true, true, true
	}
	for k := range keys {
		if !documented[k] {
			t.Errorf("status --json (%s): field %q is not in docs/status-json.md", w.phase, k)
		}
	}
	for k := range documented {
		_, ok := keys[k]
		switch {
		case maybe[k]:
		case optional[k] && ok != present[k]:
			t.Errorf("status --json (%s): field %q present %v, want %v", w.phase, k, ok, present[k])
		case !optional[k] && !ok:
			t.Errorf("status --json (%s): documented field %q missing", w.phase, k)
		}
	}
	for field, sub := range map[string][]string{
		"rejects": {"invalid", "missing", "malformed", "duplicates"},
		"chunks":  {"total", "enqueued", "done"},
		"numbers": {"accepted", "rejected", "failed", "cached", "pending", "remembered_rejections"},
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(keys[field], &m); err != nil {
			t.Errorf("status --json: %s: %v", field, err)
			continue
		}
		if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, slices.Sorted(slices.Values(sub))) {
			t.Errorf("status --json: %s has fields %v, want %v", field, got, sub)
		}
	}

	var s statusDoc
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, raw)
	}
	valid, _ := w.list.count()
	invalid, missing, dups := w.list.rejectCounts()
	chunks := int64((valid + w.chunkSize - 1) / w.chunkSize)
	settled := s.Numbers.Accepted + s.Numbers.Rejected + s.Numbers.Failed + s.Numbers.Cached
	bad := func(format string, args ...any) {
		t.Helper()
		t.Errorf("status --json (%s): "+format+"\n%s", append([]any{w.phase}, append(args, raw)...)...)
	}
	switch {
	case s.Job != w.id || s.Input != w.input || s.Generation != w.gen:
		bad("job %q input %q generation %d, want %q %q %d", s.Job, s.Input, s.Generation, w.id, w.input, w.gen)
	case s.Rows != int64(len(w.list.rows)) || s.Valid != int64(valid):
		bad("rows %d valid %d, want %d %d", s.Rows, s.Valid, len(w.list.rows), valid)
	case s.Rejects.Invalid != int64(invalid) || s.Rejects.Missing != int64(missing) || s.Rejects.Duplicates != int64(dups) || s.Rejects.Malformed != 0:
		bad("rejects %+v, want invalid %d missing %d duplicates %d", s.Rejects, invalid, missing, dups)
	case s.Rows != s.Valid+s.Rejects.Invalid+s.Rejects.Missing+s.Rejects.Malformed+s.Rejects.Duplicates:
		bad("rows %d != valid + rejects", s.Rows)
	case settled+s.Numbers.Pending != s.Valid || s.Numbers.Pending < 0:
		bad("numbers %+v do not add up to valid %d", s.Numbers, s.Valid)
	case s.Chunks.Total != chunks || s.Chunks.Enqueued != chunks || s.Chunks.Done < 0 || s.Chunks.Done > chunks:
		bad("chunks %+v, want %d enqueued", s.Chunks, chunks)
	case s.Requests < 0 || (settled > 0 && s.Requests == 0) || s.Retries < 0 || s.RateLimited < 0 || s.RateLastMinute < 0:
		bad("requests %d retries %d 429s %d rate %v", s.Requests, s.Retries, s.RateLimited, s.RateLastMinute)
	case s.Progress < 0 || s.Progress > 1 || s.ElapsedSeconds <= 0 || s.CreatedAt.IsZero() || s.CreatedAt.After(time.Now()):
		bad("progress %v elapsed %v created %v", s.Progress, s.ElapsedSeconds, s.CreatedAt)
	case s.StartedAt != nil && s.StartedAt.Before(s.CreatedAt):
		bad("started before it was created")
	case s.FinishedAt != nil && s.StartedAt != nil && s.FinishedAt.Before(*s.StartedAt):
		bad("finished before it started")
	case w.inList && s.RateLastMinute != 0:
		bad("requests_per_second_last_minute %v in the job list, documented 0", s.RateLastMinute)
	}
	switch w.phase {
	case "running":
		if s.State != "enqueued" || settled == 0 || s.Numbers.Pending == 0 || s.Requests == 0 ||
			s.Progress != float64(settled)/float64(s.Valid) || s.ETASeconds == nil || *s.ETASeconds <= 0 || s.Chunks.Done == chunks {
			bad("not a job under way")
		}
	case "done", "stopped":
		wantState := map[string]string{"done": "done", "stopped": "failed"}[w.phase]
		// A stopped job sent its few calls in the last second or two:
		// its rate over the last whole seconds may still be 0.
		if s.State != wantState || s.Numbers.Pending != 0 || s.Progress != 1 || s.Chunks.Done != chunks ||
			(w.phase == "done" && !w.inList && s.RateLastMinute <= 0) {
			bad("not a finished job (state %s)", wantState)
		}
		if w.phase == "stopped" && (!strings.Contains(s.StoppedBecause, "401") || s.Numbers.Failed == 0) {
			bad("stopped_because %q, want the 401", s.StoppedBecause)
		}
		if w.phase == "done" && s.Numbers.Failed != 0 {
			bad("%d failed", s.Numbers.Failed)
		}
	}
	return s
}

// TestNightlyWaitFailedNumbers: during a provider outage (every call 503)
// the job finishes with failed numbers: run and wait exit 3. Once the
// provider is back, `retry` sends them again and wait exits 0, with every
// number accepted or refused in the files of generation 1.
func TestNightlyWaitFailedNumbers(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	down := n.startMock("mock-api (outage)", "--fail-rate", "1")
	l := n.genList("nightly.csv", 200, 31, "13", 3)
	valid, refused := l.count()
	const id = "nightly-outage"
	redis := n.redisArgs()
	run := n.start("run", nil, append(append([]string{"run", "--job", id, "--input", l.path, "--column", "phone", "--out", n.out,
		"--rate", "50", "--batch-size", "10", "--chunk-size", "50", "--max-attempts", "2"}, redis...), down.apiArgs(apiKey)...)...)
	if got := run.firstLine(t, 30*time.Second); got != id {
		t.Fatalf("run printed %q first, want %s", got, id)
	}
	w := n.start("wait", nil, append(append([]string{"wait"}, redis...), id)...)
	w.wantExit(t, 60*time.Second, 3)
	if !strings.Contains(w.err.String(), fmt.Sprintf("%d numbers ended failed", valid)) {
		t.Errorf("wait's message %q does not say how many numbers failed (%d)", w.err.String(), valid)
	}
	run.wantExit(t, patience, 3)
	dir := filepath.Join(n.out, id)
	byRow := checkOutputs(t, dir, l, func(row) string { return "failed" })
	for row, rec := range byRow {
		if !strings.Contains(rec[5], "gave up after 2 attempts") || !strings.Contains(rec[5], "503") || rec[6] != "2" {
			t.Fatalf("row %d: %q: want failed after 2 attempts naming the 503", row, rec)
		}
	}
	checkSummary(t, dir, l, byRow, "done", 0)
	if st := down.stats(t); st.Requests == 0 || st.ByStatus[503] != st.Requests {
		t.Fatalf("the outage: %+v", st)
	}

	// The provider is back: a healthy simulator, a worker on it, retry.
	down.p.signal(t, syscall.SIGTERM)
	down.p.wantExit(t, patience, 0)
	up := n.startMock("mock-api (back)", "--reject-suffix", "13")
	wk := n.start("worker", nil, append(append([]string{"worker", "--out", n.out, "--rate", "100", "--batch-size", "10"}, redis...), up.apiArgs(apiKey)...)...)
	r := n.exec("retry", 30*time.Second, append(append([]string{"retry"}, redis...), id)...)
	r.wantExit(t, 0, 0)
	if r.out.String() != id+"\n" {
		t.Errorf("retry printed %q, want the job ID", r.out.String())
	}
	w = n.exec("wait (after retry)", 60*time.Second, append(append([]string{"wait"}, redis...), id)...)
	w.wantExit(t, 0, 0)
	byRow = checkOutputs(t, dir, l, wantAPI)
	checkSummary(t, dir, l, byRow, "done", 1)
	if st := up.stats(t); st.Distinct != int64(valid-refused) || st.Repeated != 0 {
		t.Errorf("after the retry the simulator accepted %d distinct numbers (%d again), want %d once each", st.Distinct, st.Repeated, valid-refused)
	}
	wk.signal(t, syscall.SIGTERM)
	wk.wantExit(t, patience, 0)
	n.assertNoKey(apiKey)
}

// TestNightlyRetryPartialOutage: a flaky provider (30% of the calls 503, one
// attempt each) leaves some numbers failed among accepted and refused ones.
// `retry` with the provider back sends exactly the failed ones: the others
// keep their lines of results.csv (same attempts, same time), none is sent
// twice; a second retry finds nothing to do.
func TestNightlyRetryPartialOutage(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	flaky := n.startMock("mock-api (flaky)", "--fail-rate", "0.3", "--seed", "7", "--reject-suffix", "13")
	l := n.genList("nightly.csv", 300, 41, "13", 8)
	const id = "nightly-partial"
	redis := n.redisArgs()
	run := n.start("run", nil, append(append([]string{"run", "--job", id, "--input", l.path, "--column", "phone", "--out", n.out,
		"--rate", "50", "--batch-size", "10", "--chunk-size", "100", "--max-attempts", "1"}, redis...), flaky.apiArgs(apiKey)...)...)
	run.wantExit(t, 60*time.Second, 3)
	dir := filepath.Join(n.out, id)
	before := checkOutputs(t, dir, l, func(r row) string {
		if r.refuse {
			return "rejected|failed"
		}
		return "accepted|failed"
	})
	count := map[string]int{}
	failedAccept := 0 // failed numbers the simulator will accept
	for row, rec := range before {
		count[rec[3]]++
		if rec[3] == "failed" && !l.rows[row-1].refuse {
			failedAccept++
		}
	}
	if count["accepted"] == 0 || count["rejected"] == 0 || count["failed"] == 0 {
		t.Fatalf("the flaky run left %v: the test needs accepted, rejected and failed numbers", count)
	}
	t.Logf("before the retry: %v", count)
	flaky.p.signal(t, syscall.SIGTERM)
	flaky.p.wantExit(t, patience, 0)

	up := n.startMock("mock-api (back)", "--reject-suffix", "13")
	wk := n.start("worker", nil, append(append([]string{"worker", "--out", n.out, "--rate", "100", "--batch-size", "10"}, redis...), up.apiArgs(apiKey)...)...)
	r := n.exec("retry", 30*time.Second, append(append([]string{"retry"}, redis...), id)...)
	r.wantExit(t, 0, 0)
	if r.out.String() != id+"\n" {
		t.Errorf("retry printed %q, want the job ID", r.out.String())
	}
	w := n.exec("wait", 60*time.Second, append(append([]string{"wait"}, redis...), id)...)
	w.wantExit(t, 0, 0)
	after := checkOutputs(t, dir, l, wantAPI)
	checkSummary(t, dir, l, after, "done", 1)
	for row, rec := range before {
		if rec[3] != "failed" && !slices.Equal(rec, after[row]) {
			t.Errorf("row %d was %s before the retry: %q, now %q", row, rec[3], rec, after[row])
		}
	}
	if st := up.stats(t); st.Accepted != int64(failedAccept) || st.Repeated != 0 {
		t.Errorf("the retry had %d numbers accepted (%d twice), want exactly the %d failed ones", st.Accepted, st.Repeated, failedAccept)
	}

	again := n.exec("retry (nothing failed)", 30*time.Second, append(append([]string{"retry"}, redis...), id)...)
	again.wantExit(t, 0, 0)
	if again.out.String() != id+"\n" || !strings.Contains(again.err.String(), "nothing to retry") {
		t.Errorf("retry of a job with nothing failed: stdout %q stderr %q; want the ID and 'nothing to retry'", again.out.String(), again.err.String())
	}
	st := n.exec("status --json", patience, append(append([]string{"status", "--json"}, redis...), id)...)
	st.wantExit(t, 0, 0)
	checkStatus(t, []byte(st.out.String()), statusWant{id: id, input: l.path, list: l, chunkSize: 100, gen: 1, phase: "done"})
	wk.signal(t, syscall.SIGTERM)
	wk.wantExit(t, patience, 0)
	n.assertNoKey(apiKey)
}

// TestNightlyWaitUnauthorized: a wrong key (from CAPCHECK_API_KEY) stops the
// job: run and wait exit 1 naming the 401 and what to fix, status shows why,
// and no output holds either key. With the key fixed, retry finishes it.
func TestNightlyWaitUnauthorized(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	m := n.startMock("mock-api")
	l := n.genList("nightly.csv", 300, 51, "", 0)
	const id = "nightly-401"
	redis := n.redisArgs()
	run := n.start("run", []string{"CAPCHECK_API_KEY=" + badKey}, append([]string{"run", "--job", id, "--input", l.path,
		"--column", "phone", "--out", n.out, "--rate", "50", "--batch-size", "10", "--chunk-size", "100",
		"--api-url", m.url, "--sid", sid}, redis...)...)
	if got := run.firstLine(t, 30*time.Second); got != id {
		t.Fatalf("run printed %q first, want %s", got, id)
	}
	w := n.start("wait", nil, append(append([]string{"wait"}, redis...), id)...)
	w.wantExit(t, 60*time.Second, 1)
	if msg := w.err.String(); !strings.Contains(msg, "job "+id+" failed") || !strings.Contains(msg, "401") || !strings.Contains(msg, "check --api-key") {
		t.Errorf("wait's message %q does not name the 401 and --api-key", msg)
	}
	run.wantExit(t, patience, 1)
	if msg := run.err.String(); !strings.Contains(msg, "401") {
		t.Errorf("run's message does not name the 401:\n%s", tail(msg, 5))
	}
	valid, _ := l.count()
	chunks := (valid + 99) / 100
	if st := m.stats(t); st.ByStatus[401] != st.Requests || st.Requests > int64(chunks)+1 {
		t.Errorf("the simulator saw %d requests (%v), want at most one per chunk in flight (%d) + 1, all 401", st.Requests, st.ByStatus, chunks)
	}
	sj := n.exec("status --json", patience, append(append([]string{"status", "--json"}, redis...), id)...)
	sj.wantExit(t, 0, 0)
	checkStatus(t, []byte(sj.out.String()), statusWant{id: id, input: l.path, list: l, chunkSize: 100, phase: "stopped"})
	dir := filepath.Join(n.out, id)
	byRow := checkOutputs(t, dir, l, func(row) string { return "failed" })
	checkSummary(t, dir, l, byRow, "failed", 0)

	// The key fixed.
	wk := n.start("worker", nil, append(append([]string{"worker", "--out", n.out, "--rate", "100", "--batch-size", "10"}, redis...), m.apiArgs(apiKey)...)...)
	r := n.exec("retry", 30*time.Second, append(append([]string{"retry"}, redis...), id)...)
	r.wantExit(t, 0, 0)
	w = n.exec("wait (after retry)", 60*time.Second, append(append([]string{"wait"}, redis...), id)...)
	w.wantExit(t, 0, 0)
	byRow = checkOutputs(t, dir, l, wantAPI)
	checkSummary(t, dir, l, byRow, "done", 1)
	wk.signal(t, syscall.SIGTERM)
	wk.wantExit(t, patience, 0)
	n.assertNoKey(apiKey, badKey)
}

// TestNightlyWaitUsage: wait's bad usage exits 2 saying what to fix; an
// unknown job exits 1.
func TestNightlyWaitUsage(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	redis := n.redisArgs()
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "needs one JOB argument"},
		{[]string{"a", "b"}, 2, "needs one JOB argument"},
		{[]string{"--timeout", "-1s", "nightly"}, 2, "--timeout must be >= 0"},
		{[]string{"--timeout", "soon", "nightly"}, 2, "timeout"},
		{[]string{"--nope", "nightly"}, 2, "unknown flag --nope"},
		{[]string{"bad/id"}, 2, "job ID"},
		{[]string{"no-such-job"}, 1, "no such job"},
	} {
		p := n.exec("wait "+strings.Join(tc.args, " "), patience, append(append([]string{"wait"}, redis...), tc.args...)...)
		if code := p.exitCode(t, 0); code != tc.code || !strings.Contains(p.err.String(), tc.msg) {
			t.Errorf("wait %q: exit %d, stderr %q; want %d and %q", tc.args, code, p.err.String(), tc.code, tc.msg)
		}
	}
}

// TestNightlyOverlappingRuns: cron started the nightly command while the
// last one still runs. On the embedded Redis the second refuses at once (it
// would send every number again); on a shared Redis both work on the one job
// as a fleet and each number is sent once.
func TestNightlyOverlappingRuns(t *testing.T) {
	t.Parallel()
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		n := newEnv(t, false)
		m := n.startMock("mock-api", "--latency", "50ms", "--reject-suffix", "13")
		l := n.genList("nightly.csv", 300, 61, "13", 2)
		valid, refused := l.count()
		args := n.runArgs(l, m, apiKey)
		a := n.start("run-a", nil, args...)
		id := a.firstLine(t, 30*time.Second)
		// run-b gives up at once: while run-a is still at work (the
		// simulator's count below says so), not once run-a is done.
		b := n.start("run-b", nil, args...)
		code := b.exitCode(t, patience)
		msg := b.err.String()
		switch {
		case code == 0:
			t.Errorf("run-b exited 0, want non-zero")
		case !strings.Contains(msg, "another 'capcheck run'") || !strings.Contains(msg, "is using --out "+n.out):
			t.Errorf("run-b's message %q does not say another run uses --out", msg)
		case b.out.String() != "":
			t.Errorf("run-b printed %q", b.out.String())
		}
		if st := m.stats(t); st.Accepted >= int64(valid-refused) {
			t.Errorf("run-a had every number accepted when run-b gave up: run-b waited for it (or run-a was done before run-b started)")
		}
		a.wantExit(t, 60*time.Second, 0)
		dir := filepath.Join(n.out, id)
		byRow := checkOutputs(t, dir, l, wantAPI)
		checkSummary(t, dir, l, byRow, "done", 0)
		if st := m.stats(t); st.Distinct != int64(valid-refused) || st.Repeated != 0 {
			t.Errorf("the simulator accepted %d distinct numbers (%d again), want %d once each", st.Distinct, st.Repeated, valid-refused)
		}
		n.assertNoKey(apiKey)
	})
	t.Run("shared", func(t *testing.T) {
		t.Parallel()
		n := newEnv(t, true)
		m := n.startMock("mock-api", "--latency", "20ms", "--reject-suffix", "13")
		l := n.genList("nightly.csv", 400, 62, "13", 2)
		valid, refused := l.count()
		args := append(n.runArgs(l, m, apiKey, "--chunk-size", "50", "--rate", "40"), n.redisArgs()...)
		a := n.start("run-a", nil, args...)
		b := n.start("run-b", nil, args...)
		ida, idb := a.firstLine(t, 60*time.Second), b.firstLine(t, 60*time.Second)
		if ida != idb {
			t.Fatalf("the runs printed jobs %q and %q, want one job", ida, idb)
		}
		if st := m.stats(t); st.Accepted >= int64(valid-refused) {
			t.Errorf("the job was done before both runs were at work: the test proves nothing")
		}
		a.wantExit(t, 60*time.Second, 0)
		b.wantExit(t, 60*time.Second, 0)
		dir := filepath.Join(n.out, ida)
		byRow := checkOutputs(t, dir, l, wantAPI)
		checkSummary(t, dir, l, byRow, "done", 0)
		if st := m.stats(t); st.Distinct != int64(valid-refused) || st.Repeated != 0 {
			t.Errorf("the simulator accepted %d distinct numbers (%d again), want %d once each", st.Distinct, st.Repeated, valid-refused)
		}
		for _, p := range []*proc{a, b} {
			if !strings.Contains(p.out.String(), "job "+ida+" done: ") {
				t.Errorf("%s printed %q, want the job's outcome", p.name, p.out.String())
			}
		}
		n.assertNoKey(apiKey)
	})
}
