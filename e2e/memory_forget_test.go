package e2e_test

import (
	"testing"
	"time"

	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
)

// TestForgetAfterSendsAgain: with --recheck-after a year and --forget-after
// 30 days, an answer of two hours ago is cached, one of 40 days ago is
// forgotten (sent again, as a number never answered is), end to end.
func TestForgetAfterSendsAgain(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	l := n.genList("forget.csv", 90, 47, "", 0)
	now := time.Now().UTC().Truncate(time.Second)
	recent, old := now.Add(-2*time.Hour), now.Add(-40*24*time.Hour)
	var ans []capstore.Answer
	kind := map[string]int{} // E.164 -> i%3 of its valid row: 0 recent, 1 old, 2 unknown
	for i, r := range l.valid() {
		kind[r.e164] = i % 3
		k, err := jobstore.NumberToUint(r.e164)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			ans = append(ans, capstore.Answer{Number: k, Capability: capstore.Capable, At: recent})
		case 1:
			ans = append(ans, capstore.Answer{Number: k, Capability: capstore.NotCapable, At: old})
		}
	}
	if err := capstore.New(n.redis.Client(t), capstore.Options{}).Remember(t.Context(), ans); err != nil {
		t.Fatal(err)
	}
	m := n.startMock("mock-api", "--seed", "3")
	n.startWorker("worker", m, apiKey)
	const id = "forget"
	n.exec("enqueue", 60*time.Second, append([]string{"enqueue", "--out", n.out, "--input", l.path, "--column", "phone",
		"--job", id, "--chunk-size", "20", "--recheck-after", "8760h", "--forget-after", "720h"}, n.redisArgs()...)...).wantExit(t, 0, 0)
	if j := n.waitJob(id, 60*time.Second); j.State != jobstore.Done || j.Cached != int64(len(l.valid())+2)/3 {
		t.Fatalf("job %s: %s, %d cached; want done, %d cached", id, j.State, j.Cached, (len(l.valid())+2)/3)
	}
	sent := int64(0)
	res := n.resultsByRow(id)
	for i, r := range l.rows {
		if r.reason != "" {
			continue
		}
		rec := res[i+1]
		if kind[r.e164] == 0 {
			if rec[3] != "cached" || rec[6] != "0" || rec[8] != "capable" || rec[9] != recent.Format(time.RFC3339) {
				t.Errorf("row %d (%s), answered 2 h ago: %q, want cached capable at %s", i+1, r.e164, rec, recent.Format(time.RFC3339))
			}
			continue
		}
		sent++
		if rec[3] != "accepted" || rec[6] == "0" {
			t.Errorf("row %d (%s), answered 40 days ago or never: %q, want sent and accepted", i+1, r.e164, rec)
		}
	}
	if st := m.stats(t); st.Accepted != sent || st.Repeated != 0 {
		t.Errorf("the simulator accepted %d numbers (%d repeated), want the %d forgotten or unknown ones once", st.Accepted, st.Repeated, sent)
	}
}
