package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/callbacks"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/internal/filetest"
	"github.com/capcheck/capcheck/jobstore"
)

// clockedReceiver serves a callback receiver of the fleet on loopback whose
// clock (the time newer-wins compares) reads *at, in Unix seconds.
func (n *env) clockedReceiver(at *atomic.Int64) string {
	n.t.Helper()
	r, err := callbacks.New(capstore.New(n.redis.Client(n.t), capstore.Options{}), callbacks.Config{
		Token: callbackToken, Now: func() time.Time { return time.Unix(at.Load(), 0).UTC() }})
	if err != nil {
		n.t.Fatal(err)
	}
	r.Start()
	srv := httptest.NewServer(r.Handler())
	n.t.Cleanup(func() {
		srv.Close()
		if err := r.Stop(context.Background()); err != nil {
			n.t.Error(err)
		}
	})
	return srv.URL + "/callback"
}

// postCallbacks sends one callback request of numbers (E.164) with status
// to url and returns the receiver's reply.
func postCallbacks(t *testing.T, url, status string, numbers []string) string {
	t.Helper()
	var parts []string
	for _, e := range numbers {
		parts = append(parts, fmt.Sprintf(`{"number":%q,"status":%q}`, e[1:], status))
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("["+strings.Join(parts, ",")+"]"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+callbackToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s (%v)", url, resp.StatusCode, b, err)
	}
	return string(b)
}

// TestLateCallbackOlderThanTheMemory: a fleet of two receivers, one whose
// callbacks are received later than the other's but stamped earlier (its
// clock lags, or it held them in its queue). The job's numbers were capable
// two hours ago; the prompt receiver says some are not capable now; the
// lagging one, after it, says capable at an older time. Newer wins: the
// memory keeps the newer answer, and results.csv and changes.csv show it,
// at finalize, after a later late callback, and in export.
func TestLateCallbackOlderThanTheMemory(t *testing.T) {
	t.Parallel()
	n := newEnv(t, true)
	l := n.genList("late.csv", 60, 43, "", 0)
	valid := l.valid()
	var numbers []uint64
	for _, r := range valid {
		k, err := jobstore.NumberToUint(r.e164)
		if err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, k)
	}
	caps := capstore.New(n.redis.Client(t), capstore.Options{})
	before := time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour)
	ans := make([]capstore.Answer, len(numbers))
	for i, k := range numbers {
		ans[i] = capstore.Answer{Number: k, Capability: capstore.Capable, At: before}
	}
	if err := caps.Remember(t.Context(), ans); err != nil {
		t.Fatal(err)
	}
	var promptAt, laggingAt atomic.Int64
	prompt, lagging := n.clockedReceiver(&promptAt), n.clockedReceiver(&laggingAt)

	m := n.startMock("mock-api", "--seed", "3") // no callbacks of its own: the test sends them
	n.startWorker("worker", m, apiKey)
	const id = "late"
	n.exec("enqueue", 60*time.Second, append([]string{"enqueue", "--out", n.out, "--input", l.path, "--column", "phone",
		"--job", id, "--chunk-size", "20", "--callback-wait", "2m", "--recheck-after", "0"}, n.redisArgs()...)...).wantExit(t, 0, 0)
	var j *jobstore.Job
	waitFor(t, "job "+id+" awaiting callbacks", 60*time.Second, func() bool {
		var err error
		if j, err = n.store.Job(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		return j.State == jobstore.AwaitingCallbacks
	})
	created := j.CreatedAt.Truncate(time.Second)
	promptAt.Store(created.Add(20 * time.Second).Unix())
	laggingAt.Store(created.Add(10 * time.Second).Unix())

	// Every third number changed: not capable now. The last number waits,
	// so the job still awaits when the lagging receiver's callbacks come.
	var changed, same []string
	for i, r := range valid[:len(valid)-1] {
		if i%3 == 0 {
			changed = append(changed, r.e164)
		} else {
			same = append(same, r.e164)
		}
	}
	postCallbacks(t, prompt, "not_capable", changed)
	postCallbacks(t, prompt, "capable", same)
	if got := postCallbacks(t, lagging, "capable", changed); !strings.Contains(got, fmt.Sprintf(`"duplicate":%d`, len(changed))) {
		t.Fatalf("the lagging receiver's callbacks: %s, want %d duplicates (the job had their answers)", got, len(changed))
	}
	postCallbacks(t, prompt, "capable", []string{valid[len(valid)-1].e164})
	if j = n.waitJob(id, 60*time.Second); j.State != jobstore.Done {
		t.Fatalf("job %s: %s", id, j.State)
	}

	atPrompt := created.Add(20 * time.Second).Format(time.RFC3339)
	wantChanges := [][]string{{"row", "number", "before", "after", "before_at", "after_at"}}
	checkLate := func(when string) {
		t.Helper()
		res := n.resultsByRow(id)
		for i, r := range l.rows {
			if r.reason != "" {
				continue
			}
			want := "capable"
			if slices.Contains(changed, r.e164) {
				want = "not_capable"
				if when == "finalize" {
					wantChanges = append(wantChanges, []string{strconv.Itoa(i + 1), r.e164, "capable", "not_capable", before.Format(time.RFC3339), atPrompt})
				}
			}
			if rec := res[i+1]; rec[3] != "accepted" || rec[8] != want || rec[9] != atPrompt {
				t.Errorf("%s: row %d (%s): %q, want accepted, %s at %s (the prompt receiver's)", when, i+1, r.e164, rec, want, atPrompt)
			}
		}
		if diff := cmp.Diff(wantChanges, filetest.ReadCSV(t, filepath.Join(n.out, id, "changes.csv"))); diff != "" {
			t.Errorf("%s: changes.csv (-want +got):\n%s", when, diff)
		}
		recs, err := caps.Lookup(t.Context(), numbers)
		if err != nil {
			t.Fatal(err)
		}
		for i, rec := range recs {
			want := capstore.Capable
			if slices.Contains(changed, valid[i].e164) {
				want = capstore.NotCapable
			}
			if rec.Capability != want || rec.At.Format(time.RFC3339) != atPrompt {
				t.Errorf("%s: the memory holds %+v for %s, want %s at %s", when, rec, valid[i].e164, want, atPrompt)
			}
		}
	}
	checkLate("finalize")
	// Later still, once the job is done: nobody awaits them now.
	if got := postCallbacks(t, lagging, "capable", changed); !strings.Contains(got, fmt.Sprintf(`"unsolicited":%d`, len(changed))) {
		t.Fatalf("the lagging receiver's callbacks after the job: %s, want %d unsolicited", got, len(changed))
	}
	n.checkExportSame(id, "results.csv", "changes.csv")
	checkLate("after a later late callback")
}
