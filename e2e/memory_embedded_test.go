package e2e_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// runNight runs one nightly job as `capcheck run` on the embedded Redis
// (no Redis configured) with its receiver in-process, against a simulator
// of its own (extra flags mockArgs), and returns the simulator's counts and
// results.csv by row. The process has exited when it returns: what the
// next night knows is what it left under --out.
func (n *env) runNight(id string, l *list, runArgs []string, mockArgs ...string) (mockStats, map[int][]string) {
	n.t.Helper()
	cbAddr := freeAddr(n.t)
	m := n.startMock("mock-api "+id, append(nightMockArgs(cbAddr), mockArgs...)...)
	args := append([]string{"run", "--input", l.path, "--column", "phone", "--out", n.out, "--job", id,
		"--chunk-size", "100", "--rate", "400", "--batch-size", "50", "--callback-wait", "2m",
		"--callback-listen", cbAddr, "--callback-token", callbackToken, "--log-level", "info"}, m.apiArgs(apiKey)...)
	n.exec("run "+id, 150*time.Second, append(args, runArgs...)...).wantExit(n.t, 0, 0)
	return m.stats(n.t), n.resultsByRow(id)
}

// TestNightsEmbedded: the three nights of TestNights as a cron job on a
// bare host: each night one `capcheck run` on the embedded Redis, a process
// of its own started after the last one exited, the memory kept only in
// --out. Night 2 (5% of the list replaced, three numbers forgotten with
// `memory forget` on the file, --recheck-after 24h) sends only the new and
// forgotten numbers and has the others cached with night 1's answer; night
// 3 (the simulator's answers flipped for a twentieth of the numbers,
// --recheck-after 0) has changes.csv exactly the flipped numbers.
func TestNightsEmbedded(t *testing.T) {
	t.Parallel()
	n := newEnv(t, false)
	l1 := n.genList("night1.csv", 400, 31, rejectSuffix, 4)

	_, r1 := n.runNight("night1", l1, nil)
	checkOutputs(t, filepath.Join(n.out, "night1"), l1, wantAPI)
	for num, rec := range r1 {
		if rec[3] == "accepted" && rec[8] != capabilityOf(rec[2], 0) {
			t.Fatalf("night 1 row %d: capability %q", num, rec[8])
		}
	}
	valid, _ := l1.count()
	var st struct {
		Numbers int    `json:"numbers"`
		File    string `json:"file"`
	}
	p := n.exec("memory stats", 30*time.Second, "memory", "stats", "--json", "--out", n.out)
	p.wantExit(t, 0, 0)
	if err := json.Unmarshal([]byte(p.out.String()), &st); err != nil || st.Numbers != valid || st.File == "" {
		t.Fatalf("memory stats after night 1: %+v (%v), want %d numbers in the file\n%s", st, err, valid, p.out.String())
	}

	l2, fresh := n.replaced(l1, "night2.csv", 5, 37)
	var forgotten []string
	for i, r := range l2.valid() {
		if i%97 == 5 && !fresh[slices.Index(l2.rows, r)+1] {
			forgotten = append(forgotten, r.e164)
		}
	}
	n.exec("memory forget", 30*time.Second, append([]string{"memory", "forget", "--out", n.out}, forgotten...)...).wantExit(t, 0, 0)
	st2, r2 := n.runNight("night2", l2, []string{"--recheck-after", "24h"})
	sent := checkNight2(t, filepath.Join(n.out, "night2"), l2, fresh, forgotten, r1, r2, st2)

	_, r3 := n.runNight("night3", l2, []string{"--recheck-after", "0"}, "--flip-fraction", strconv.FormatFloat(nightsFlip, 'f', -1, 64))
	changes := checkNight3(t, l2, r2, r3, filepath.Join(n.out, "night3", "changes.csv"))
	t.Logf("night 2: %d of %d valid sent; night 3: %d changes", sent, len(l2.valid()), changes)
}
