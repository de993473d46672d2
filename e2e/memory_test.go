package e2e_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nyaruka/phonenumbers"

	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/mockapi"
)

// The simulator's answers in the nights: capable at 0.4, and on night 3 a
// twentieth of the numbers the other way round.
const (
	nightsCapable = 0.4
	nightsFlip    = 0.05
)

// night runs one nightly job on n's Redis: a simulator of its own (with
// callbacks to the receiver at cbAddr, and extra flags), a worker on it,
// the enqueue with extra flags, the wait. It returns the simulator's
// counts and results.csv by row.
func (n *env) night(id string, l *list, cbAddr string, enqueueArgs []string, mockArgs ...string) (mockStats, map[int][]string) {
	n.t.Helper()
	m := n.startMock("mock-api "+id, append(nightMockArgs(cbAddr), mockArgs...)...)
	w := n.startWorker("worker "+id, m, apiKey)
	eargs := append([]string{"enqueue", "--out", n.out, "--input", l.path, "--column", "phone",
		"--job", id, "--chunk-size", "100", "--callback-wait", "2m"}, n.redisArgs()...)
	n.exec("enqueue "+id, 60*time.Second, append(eargs, enqueueArgs...)...).wantExit(n.t, 0, 0)
	if j := n.waitJob(id, 150*time.Second); j.State != "done" {
		n.t.Fatalf("job %s: %s", id, j.State)
	}
	w.signal(n.t, syscall.SIGTERM)
	w.exitCode(n.t, patience)
	return m.stats(n.t), n.resultsByRow(id)
}

// nightMockArgs are the simulator's options in the nights, its callbacks
// going to the receiver at cbAddr.
func nightMockArgs(cbAddr string) []string {
	return []string{"--reject-suffix", rejectSuffix, "--seed", "3",
		"--callback-url", "http://" + cbAddr + "/callback", "--callback-token", callbackToken,
		"--callback-delay", "100ms", "--callback-jitter", "400ms",
		"--capable-fraction", strconv.FormatFloat(nightsCapable, 'f', -1, 64)}
}

// resultsByRow reads results.csv of job id by row.
func (n *env) resultsByRow(id string) map[int][]string {
	n.t.Helper()
	byRow := map[int][]string{}
	for _, rec := range filetest.ReadCSV(n.t, filepath.Join(n.out, id, "results.csv"))[1:] {
		r, _ := strconv.Atoi(rec[0])
		byRow[r] = rec
	}
	return byRow
}

// replaced returns a copy of l, written to name, whose valid numbers are
// replaced by new ones in about pct percent of the rows (rows that no
// duplicate refers to), and the rows replaced.
func (n *env) replaced(l *list, name string, pct int, seed uint64) (*list, map[int]bool) {
	n.t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	refs := map[string]int{}
	for _, r := range l.rows {
		if r.e164 != "" {
			refs[r.e164]++
		}
	}
	out := &list{path: filepath.Join(n.dir, name), rows: append([]row(nil), l.rows...)}
	changed := map[int]bool{}
	var b strings.Builder
	b.WriteString("id,phone,name\n")
	for i, r := range out.rows {
		if r.reason == "" && refs[r.e164] == 1 && rng.IntN(100) < pct {
			for {
				d := fmt.Sprintf("8%09d", rng.IntN(1_000_000_000))
				num, err := phonenumbers.Parse(d, "IN")
				if err != nil || !phonenumbers.IsValidNumber(num) || strings.HasSuffix(d, rejectSuffix) {
					continue
				}
				e := phonenumbers.Format(num, phonenumbers.E164)
				if refs[e] > 0 {
					continue
				}
				refs[e] = 1
				out.rows[i] = row{input: d, e164: e}
				changed[i+1] = true
				break
			}
		}
		fmt.Fprintf(&b, "%d,%s,name %d\n", i+1, out.rows[i].input, i+1)
	}
	if err := os.WriteFile(out.path, []byte(b.String()), 0o644); err != nil {
		n.t.Fatal(err)
	}
	return out, changed
}

// capabilityOf is the simulator's answer for a number.
func capabilityOf(e164 string, flip float64) string {
	if mockapi.CapableAfterFlips(e164, nightsCapable, flip) {
		return "capable"
	}
	return "not_capable"
}

// TestNights: three nights of one list on a real Redis, the provider's
// answers coming back by callbacks. Night 1 sends every number. Night 2,
// the list with 5% of its numbers replaced and three numbers forgotten,
// with --recheck-after 24h: only the new and forgotten numbers are sent;
// the others are cached with night 1's capability (a remembered rejection
// stays rejected, not sent). Night 3, after the provider changed its
// answer for a twentieth of the numbers, with --recheck-after 0: every
// number is sent, and changes.csv holds exactly the changed ones.
func TestNights(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	cbAddr := freeAddr(t)
	n.startReceiver("callbacks", cbAddr)
	l1 := n.genList("night1.csv", 500, 17, rejectSuffix, 4)

	_, r1 := n.night("night1", l1, cbAddr, nil)
	checkOutputs(t, filepath.Join(n.out, "night1"), l1, wantAPI)
	for num, rec := range r1 {
		if rec[3] == "accepted" && rec[8] != capabilityOf(rec[2], 0) {
			t.Fatalf("night 1 row %d: capability %q", num, rec[8])
		}
	}

	// Night 2.
	l2, fresh := n.replaced(l1, "night2.csv", 5, 23)
	var forgotten []string
	for i, r := range l2.valid() {
		if i%97 == 5 && !fresh[slices.Index(l2.rows, r)+1] {
			forgotten = append(forgotten, r.e164)
		}
	}
	n.exec("memory forget", 30*time.Second, append(append([]string{"memory", "forget"}, forgotten...), n.redisArgs()...)...).wantExit(t, 0, 0)
	st2, r2 := n.night("night2", l2, cbAddr, []string{"--recheck-after", "24h"})
	sent := checkNight2(t, filepath.Join(n.out, "night2"), l2, fresh, forgotten, r1, r2, st2)
	// export writes the same files again, though the memory has changed
	// since (the forgotten numbers were answered again).
	n.checkExportSame("night2", "results.csv", "changes.csv", "summary.json")

	// Night 3: the provider's answer changed for some numbers.
	_, r3 := n.night("night3", l2, cbAddr, []string{"--recheck-after", "0"}, "--flip-fraction", strconv.FormatFloat(nightsFlip, 'f', -1, 64))
	changes := checkNight3(t, l2, r2, r3, filepath.Join(n.out, "night3", "changes.csv"))
	n.checkExportSame("night3", "results.csv", "changes.csv")
	// The morning reports: night 2's counts the cached numbers, night 3's
	// the changes since the previous job of the list.
	checkReport(t, filepath.Join(n.out, "night2", "report.html"), "<td>cached</td>", `id="changes">0 numbers changed capability`)
	checkReport(t, filepath.Join(n.out, "night3", "report.html"), fmt.Sprintf(`id="changes">%d numbers changed capability`, changes),
		"<td>capable → not_capable</td>", "<td>not_capable → capable</td>")
	t.Logf("night 2: %d of %d valid sent; night 3: %d changes", sent, len(l2.valid()), changes)
}

// checkReport fails the test unless the report at path holds each of want.
func checkReport(t *testing.T, path string, want ...string) {
	t.Helper()
	b := filetest.Read(t, path)
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s does not say %q", path, w)
		}
	}
}

// checkNight2 checks night 2 (its folder dir, results.csv by row r2, the
// simulator's counts st2) against night 1's results r1, row by row: each
// row once, in results.csv or rejects.csv (with its reason); the new and
// forgotten numbers sent, with the simulator's capability; the others
// cached with night 1's capability; a remembered rejection rejected as
// night 1 said and not sent; nothing else sent and nothing twice; no
// change. It returns how many were sent.
func checkNight2(t *testing.T, dir string, l2 *list, fresh map[int]bool, forgotten []string, r1, r2 map[int][]string, st2 mockStats) int {
	t.Helper()
	sent := 0
	sentAccepted, sentRejected := int64(0), 0
	cached, remembered := int64(0), int64(0)
	checkNight2Rows(t, dir, l2, r2)
	for i, r := range l2.rows {
		num := i + 1
		rec := r2[num]
		if r.reason != "" {
			continue
		}
		isNew := fresh[num] || slices.Contains(forgotten, r.e164)
		status, attempts := rec[3], rec[6]
		switch {
		case isNew:
			sent++
			if status != wantAPI(r) || attempts == "0" {
				t.Errorf("night 2 row %d (%s), new or forgotten: %s attempts %s, want %s sent", num, r.e164, status, attempts, wantAPI(r))
			}
			if status == "accepted" {
				sentAccepted++
				if rec[8] != capabilityOf(r.e164, 0) || rec[9] == "" {
					t.Errorf("night 2 row %d (%s), sent: capability %q at %q, want the simulator's %s", num, r.e164, rec[8], rec[9], capabilityOf(r.e164, 0))
				}
			} else {
				sentRejected++
			}
		case r.refuse:
			remembered++
			// A remembered rejection: rejected with the API's code, not sent.
			old := r1[num]
			if status != "rejected" || attempts != "0" || rec[4] != old[4] || rec[5] != old[5] || !sameSecond(rec[7], old[7]) || rec[8] != "" {
				t.Errorf("night 2 row %d (%s): %q, want night 1's rejection %q remembered", num, r.e164, rec, old)
			}
		default:
			cached++
			old := r1[num]
			if status != "cached" || attempts != "0" || rec[4] != "" || rec[5] != "" || rec[7] != "" ||
				rec[8] != capabilityOf(r.e164, 0) || rec[8] != old[8] || rec[9] != old[9] {
				t.Errorf("night 2 row %d (%s): %q, want cached with night 1's %q %q", num, r.e164, rec, old[8], old[9])
			}
		}
	}
	if len(fresh) < 10 || sent != len(fresh)+len(forgotten) {
		t.Fatalf("night 2: %d rows replaced, %d forgotten, %d sent", len(fresh), len(forgotten), sent)
	}
	// Nothing else reached the simulator, and nothing twice: it refuses a
	// request (400) only when a number it rejects is in it.
	if st2.Accepted != sentAccepted || st2.Repeated != 0 || (st2.ByStatus[400] > 0) != (sentRejected > 0) {
		t.Errorf("night 2: the simulator accepted %d numbers (%d repeated) and refused %d requests; results.csv says %d were sent and accepted, %d sent and rejected",
			st2.Accepted, st2.Repeated, st2.ByStatus[400], sentAccepted, sentRejected)
	}
	// summary.json says which rejections are remembered (not sent).
	var sum struct {
		Results              map[string]int64 `json:"results"`
		RememberedRejections int64            `json:"remembered_rejections"`
		Changes              int64            `json:"changes"`
	}
	if err := json.Unmarshal(filetest.Read(t, filepath.Join(dir, "summary.json")), &sum); err != nil {
		t.Fatal(err)
	}
	if remembered == 0 || sum.RememberedRejections != remembered || sum.Results["cached"] != cached || sum.Changes != 0 {
		t.Errorf("night 2 summary.json: %+v; want %d cached, %d remembered rejections, no change", sum, cached, remembered)
	}
	if got := filetest.ReadCSV(t, filepath.Join(dir, "changes.csv")); len(got) != 1 {
		t.Errorf("night 2 changes.csv: %q, want the header alone (no answer changed)", got)
	}
	return sent
}

// checkNight2Rows checks that night 2's results.csv (by row r2) and
// rejects.csv in dir hold each row of l2 once, a valid one in results.csv
// with its number, the others in rejects.csv with their reason.
func checkNight2Rows(t *testing.T, dir string, l2 *list, r2 map[int][]string) {
	t.Helper()
	rejects := map[int]string{}
	for _, rec := range filetest.ReadCSV(t, filepath.Join(dir, "rejects.csv"))[1:] {
		num, _ := strconv.Atoi(rec[0])
		rejects[num] = rec[2]
	}
	if len(r2)+len(rejects) != len(l2.rows) {
		t.Errorf("night 2: %d rows in results.csv and %d in rejects.csv, want the list's %d once each", len(r2), len(rejects), len(l2.rows))
	}
	for i, r := range l2.rows {
		rec, inResults := r2[i+1]
		reason, inRejects := rejects[i+1]
		switch {
		case r.reason != "" && (inResults || !inRejects || reason != r.reason):
			t.Errorf("night 2 row %d (%q): in results.csv %v, in rejects.csv as %q; want rejects.csv, %q", i+1, r.input, inResults, reason, r.reason)
		case r.reason == "" && (!inResults || inRejects || rec[2] != r.e164):
			t.Fatalf("night 2 row %d (%s): results.csv %q, in rejects.csv %v", i+1, r.e164, rec, inRejects)
		}
	}
}

// checkNight3 checks night 3 (--recheck-after 0): every number sent again,
// a remembered rejection too; changes.csv at path exactly the numbers
// whose answer flipped since night 2 (results r2), with night 2's answer
// before and night 3's (r3) after. It returns how many changed.
func checkNight3(t *testing.T, l2 *list, r2, r3 map[int][]string, path string) int {
	t.Helper()
	want := [][]string{{"row", "number", "before", "after", "before_at", "after_at"}}
	for i, r := range l2.rows {
		num := i + 1
		if r.reason != "" {
			continue
		}
		rec := r3[num]
		if r.refuse { // a remembered rejection, sent again all the same
			if rec[3] != "rejected" || rec[6] == "0" {
				t.Fatalf("night 3 row %d: %q, want rejected again by the API", num, rec)
			}
			continue
		}
		if rec[3] != "accepted" || rec[8] != capabilityOf(r.e164, nightsFlip) {
			t.Fatalf("night 3 row %d: %q", num, rec)
		}
		if mockapi.Flipped(r.e164, nightsFlip) {
			want = append(want, []string{strconv.Itoa(num), r.e164, r2[num][8], rec[8], r2[num][9], rec[9]})
		}
	}
	got := filetest.ReadCSV(t, path)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("night 3 changes.csv (-want +got):\n%s", diff)
	}
	if len(want) < 5 {
		t.Errorf("only %d numbers flipped: the test needs more", len(want)-1)
	}
	return len(got) - 1
}

// sameSecond reports whether two RFC 3339 times fall in the same second.
func sameSecond(a, b string) bool {
	ta, err1 := time.Parse(time.RFC3339Nano, a)
	tb, err2 := time.Parse(time.RFC3339Nano, b)
	return err1 == nil && err2 == nil && ta.Truncate(time.Second).Equal(tb.Truncate(time.Second))
}

// checkExportSame runs capcheck export of job id into another folder and
// checks that it writes files the same as the finalize's (summary.json but
// for its time of writing).
func (n *env) checkExportSame(id string, files ...string) {
	n.t.Helper()
	out := filepath.Join(n.dir, "export")
	n.exec("export "+id, 60*time.Second, append([]string{"export", id, "--out", out}, n.redisArgs()...)...).wantExit(n.t, 0, 0)
	for _, f := range files {
		a, err1 := os.ReadFile(filepath.Join(n.out, id, f))
		b, err2 := os.ReadFile(filepath.Join(out, id, f))
		if err1 != nil || err2 != nil {
			n.t.Fatalf("%s: %v, %v", f, err1, err2)
		}
		if f == "summary.json" {
			a, b = withoutTimes(a), withoutTimes(b)
		}
		if string(a) != string(b) {
			n.t.Errorf("job %s: export's %s differs from the finalize's:\n%s\n---\n%s", id, f, a, b)
		}
	}
}

// withoutTimes drops the lines of a summary.json that say when it was
// written.
func withoutTimes(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, `"finished_at"`) && !strings.Contains(l, `"total_seconds"`) {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}
