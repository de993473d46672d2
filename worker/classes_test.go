package worker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/capstore"
	"github.com/capcheck/capcheck/jobstore"
	"github.com/capcheck/capcheck/tasks"
	"github.com/capcheck/capcheck/worker"
)

const apiKey = "Ac0ffee5ecret0000key"

// throughClient has b's fake API call a real client of a server that
// answers the i-th request (from 0) with status and body(i), and returns
// the number of requests it got.
func (b *bundle) throughClient(t *testing.T, status int, body func(i int) string) *atomic.Int32 {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := calls.Add(1) - 1
		w.WriteHeader(status)
		io.WriteString(w, body(int(i)))
	}))
	t.Cleanup(srv.Close)
	c, err := capapi.New(capapi.Config{BaseURL: srv.URL, SID: "SID1", APIKey: apiKey, Timeout: patience})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	b.api.fn = func(_ int, numbers []string) capapi.Result { return c.Check(context.Background(), numbers) }
	return &calls
}

// wantNoneRemembered fails the test if the memory holds any of the first n
// rows' numbers.
func (b *bundle) wantNoneRemembered(t *testing.T, n int) {
	t.Helper()
	nums := make([]uint64, n)
	for k := range nums {
		x, err := strconv.ParseUint(number(k + 1)[1:], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		nums[k] = x
	}
	recs, err := capstore.New(b.rdb.Client(t), capstore.Options{}).Lookup(b.ctx, nums)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for k, r := range recs {
		if !r.IsZero() {
			held = append(held, fmt.Sprintf("%d: %+v", nums[k], r))
		}
	}
	if len(held) > 0 {
		t.Errorf("memory holds %d of %d numbers, want none; first %s", len(held), n, held[0])
	}
}

// An answer about the account (402) stops the job: its numbers are not
// refused, not bisected, not remembered.
func TestPaymentRequiredStopsTheJob(t *testing.T) {
	// A Redis of its own: the memory is checked for the numbers.
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 1}, true, 30)
	calls := b.throughClient(t, http.StatusPaymentRequired, func(int) string {
		return `{"code":"BAL","message":"Insufficient balance for ` + apiKey + `"}`
	})
	b.mustRun(t, 0)
	if n := calls.Load(); n != 1 {
		t.Errorf("%d requests, want 1: the job stops at the first 402", n)
	}
	j := b.jobRecord(t)
	const reason = "the API refused the account (402 BAL Insufficient balance for [REDACTED]): check the account's balance and plan with the provider"
	if j.Abort != reason {
		t.Errorf("abort reason %q, want %q", j.Abort, reason)
	}
	if j.Failed != 30 || j.Rejected != 0 || j.Requests != 1 {
		t.Errorf("job counters = %+v, want 30 failed, none rejected, 1 request", j.Counters)
	}
	b.wantNoneRemembered(t, 30)
	b.finalize(t)
	if st := b.jobRecord(t).State; st != jobstore.FailedJob {
		t.Errorf("state %s, want failed", st)
	}
}

// Another 4xx with a provider body is about the request, not its numbers:
// retried, then failed, never rejected nor remembered.
func TestUnknownClientErrorFailsTheNumbers(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, MaxAttempts: 3}, true, 20)
	calls := b.throughClient(t, http.StatusConflict, func(int) string { return `{"code":"E409","message":"conflict"}` })
	b.mustRun(t, 0)
	if n := calls.Load(); n != 6 {
		t.Errorf("%d requests, want 6 (3 attempts of each batch, no bisection)", n)
	}
	for k, o := range b.settled(t, 0) {
		if o.Status != jobstore.Failed || o.Attempts != 3 || !strings.Contains(o.Message, "HTTP 409 Conflict: E409 conflict") {
			t.Fatalf("entry %d: %+v, want failed after 3 attempts naming the 409", k, o)
		}
	}
	if j := b.jobRecord(t); j.Failed != 20 || j.Rejected != 0 || j.Abort != "" {
		t.Errorf("job = abort %q, %+v, want 20 failed, none rejected, not aborted", j.Abort, j.Counters)
	}
	b.wantNoneRemembered(t, 20)
}

// A 202 whose body cannot be read is accepted: sent again, its numbers
// would be checked (and called back) twice. Counted, and logged once.
func TestAcceptedWithAnUnreadableBody(t *testing.T) {
	logs := newLogSeen(t)
	b := setup(t, worker.Config{BatchSize: 10, Logger: logs.Logger()}, false, 30)
	bodies := []string{"", "\x00\xffgarbage", `{"message":"` + strings.Repeat("x", 1<<20) + `"}`}
	calls := b.throughClient(t, http.StatusAccepted, func(i int) string { return bodies[i%len(bodies)] })
	b.mustRun(t, 0)
	if n := calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3: one per batch", n)
	}
	for k, o := range b.settled(t, 0) {
		if o.Status != jobstore.Accepted || o.Attempts != 1 {
			t.Fatalf("entry %d: %+v, want accepted at the first attempt", k, o)
		}
	}
	if got := counter(t, b.reg, "capcheck_api_accepted_unread_body_total", ""); got != 3 {
		t.Errorf("capcheck_api_accepted_unread_body_total = %v, want 3", got)
	}
	const warning = "API accepted numbers with an unreadable answer: recorded accepted, without the provider's code and message"
	if n := logs.Seen(warning); n != 1 {
		t.Errorf("warning logged %d times, want once", n)
	}
}

// A 202 whose body was still arriving when the run was stopped is
// accepted: the provider took the numbers, and they are not sent again.
func TestAcceptedAsTheRunStops(t *testing.T) {
	b := setup(t, worker.Config{BatchSize: 10, CallsInFlight: 1}, false, 30)
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	b.api.fn = func(i int, _ []string) capapi.Result {
		if i > 0 {
			return capapi.Result{Class: capapi.Accepted, StatusCode: 202, Message: "Accepted"}
		}
		cancel()
		return capapi.Result{Class: capapi.Accepted, StatusCode: 202, BodyErr: context.Canceled}
	}
	if err := b.w.ProcessTask(ctx, tasks.NewChunk(tasks.Chunk{Job: b.job, Chunk: 0})); err == nil {
		t.Fatal("the stopped run returned no error")
	}
	first := b.api.calls[0]
	b.mustRun(t, 0)
	for _, c := range b.api.calls[1:] {
		for _, n := range c {
			if slices.Contains(first, n) {
				t.Fatalf("%s sent again after its 202 as the run stopped", n)
			}
		}
	}
	b.wantAccepted(t, 0, 1)
}
