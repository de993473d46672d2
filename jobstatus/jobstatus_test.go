package jobstatus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capcheck/capcheck/internal/redistest"
	"github.com/capcheck/capcheck/jobstatus"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func setup(t *testing.T) (context.Context, *jobstore.Store, string) {
	t.Helper()
	t.Parallel()
	ctx := context.Background()
	s := jobstore.New(redistest.Shared(t).Client(t))
	id := redistest.NewPrefix(t)
	if _, _, err := s.CreateJob(ctx, jobstore.Spec{ID: id, Input: "in.csv", Fingerprint: "fp", ChunkSize: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChunk(ctx, id, 0, []jobstore.Entry{{Row: 1, Number: "+14155550123", Input: "x"}, {Row: 2, Number: "+14155550124", Input: "y"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishEnqueue(ctx, id, jobstore.Counts{Rows: 3, Valid: 2, Invalid: 1}, 1, 1); err != nil {
		t.Fatal(err)
	}
	return ctx, s, id
}

func TestStatusJSONFields(t *testing.T) {
	ctx, s, id := setup(t)
	if err := s.Record(ctx, id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 1, Status: jobstore.Accepted}, jobstore.Counters{Requests: 1, Accepted: 1}); err != nil {
		t.Fatal(err)
	}
	st, err := jobstatus.Get(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// The documented fields of status --json (docs/status-json.md); eta_seconds
	// and finished_at appear when known.
	want := []string{"changes", "chunks", "created_at", "elapsed_seconds", "eta_seconds", "generation", "input", "job", "numbers",
		"progress", "rate_limited_429s", "rejects", "requests", "requests_per_second_last_minute", "retries", "rows",
		"started_at", "state", "valid"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("status JSON keys (-want +got):\n%s", diff)
	}
	if st.Numbers != (jobstatus.Numbers{Accepted: 1, Pending: 1}) || st.Progress != 0.5 || st.Chunks.Total != 1 {
		t.Errorf("status = %+v", st)
	}
	var buf bytes.Buffer
	if err := jobstatus.Render(&buf, st); err != nil || !strings.Contains(buf.String(), "1 accepted, 0 rejected, 0 failed, 1 pending") {
		t.Errorf("Render = %q, %v", buf.String(), err)
	}
}

func TestWait(t *testing.T) {
	ctx, s, id := setup(t)
	_, err := jobstatus.Wait(ctx, s, id, jobstatus.WaitOptions{Poll: 10 * time.Millisecond, Timeout: 100 * time.Millisecond})
	if !errors.Is(err, jobstatus.ErrTimeout) {
		t.Fatalf("Wait on a running job: err = %v, want ErrTimeout", err)
	}
	go func() {
		err := s.Record(ctx, id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Failed}, jobstore.Counters{Failed: 2})
		if err == nil {
			_, err = s.FinishChunk(ctx, id, 0, 0, 2)
		}
		if err == nil {
			_, err = s.BeginFinalize(ctx, id, 0)
		}
		if err == nil {
			_, err = s.EndFinalize(ctx, id, 0)
		}
		if err != nil {
			t.Error(err) // Wait below times out
		}
	}()
	var seen int
	st, err := jobstatus.Wait(ctx, s, id, jobstatus.WaitOptions{Poll: 10 * time.Millisecond, Timeout: time.Minute, // a hang
		Progress: func(*jobstatus.Status) { seen++ }})
	if err != nil || st.State != "done" || st.Numbers.Failed != 2 || seen == 0 {
		t.Fatalf("Wait = %+v, %v (progress calls %d)", st, err, seen)
	}
}

// Wait learns of the end from the job store's announcement, not from its
// reads: with reads an hour apart it returns once the job is finalized.
func TestWaitAnnounced(t *testing.T) {
	ctx, s, id := setup(t)
	reads := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		st, err := jobstatus.Wait(ctx, s, id, jobstatus.WaitOptions{Poll: time.Hour,
			Progress: func(st *jobstatus.Status) { reads <- st.State }})
		if err == nil && st.State != "done" {
			err = errors.New("state " + st.State)
		}
		done <- err
	}()
	if st := <-reads; st == "done" { // subscribed and read once: the job runs
		t.Fatal("the job is done before it was finalized")
	}
	if err := s.Record(ctx, id, 0, 0, jobstore.Outcome{Lo: 0, Hi: 2, Status: jobstore.Accepted}, jobstore.Counters{Accepted: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishChunk(ctx, id, 0, 0, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginFinalize(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EndFinalize(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang, not a timing bound
		t.Fatal("Wait did not return after the job was finalized")
	}
}

// A job whose record disappears while it is waited for (Redis restarted
// without persistence, FLUSHALL, expiry) ends the wait with ErrGone: it
// never finishes, and Wait polled for ever.
func TestWaitJobGone(t *testing.T) {
	ctx, s, id := setup(t)
	reads := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		_, err := jobstatus.Wait(ctx, s, id, jobstatus.WaitOptions{Poll: 10 * time.Millisecond, Timeout: time.Minute,
			Progress: func(st *jobstatus.Status) {
				select {
				case reads <- st.State:
				default:
				}
			}})
		done <- err
	}()
	<-reads // read once: the job runs
	if err := s.Expire(ctx, id, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if !errors.Is(err, jobstatus.ErrGone) || !strings.Contains(err.Error(), "enqueue the list again") {
		t.Fatalf("Wait on a job whose record is gone: err = %v, want ErrGone saying to enqueue again", err)
	}
}
