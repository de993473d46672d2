package worker

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	p := policy{maxAttempts: 10, pauseDefault: 5 * time.Second, pauseMax: time.Minute,
		backoffBase: 100 * time.Millisecond, backoffMax: time.Second}
	batch := jobstore.Range{Lo: 10, Hi: 20, Attempts: 1}
	one := jobstore.Range{Lo: 7, Hi: 8}
	const at = 1700000000000
	sent := jobstore.Counters{Requests: 1}
	transient := capapi.Result{Class: capapi.Transient, StatusCode: 503, Err: errors.New("HTTP 503")}
	unauth := capapi.Result{Class: capapi.Unauthorized, StatusCode: 401, Code: "RBC401", Message: "Unauthorized"}
	payment := capapi.Result{Class: capapi.Fatal, StatusCode: 402, Code: "BAL", Message: "Insufficient balance",
		Err: errors.New("HTTP 402 Payment Required from POST x: BAL Insufficient balance: the account cannot use the API")}
	tests := []struct {
		name string
		a    answer
		want decision
	}{{
		name: "accepted settles, attempts inherited",
		a:    answer{res: capapi.Result{Class: capapi.Accepted, Code: "MSG402", Message: "ok"}, r: batch, tries: 1, at: at},
		want: decision{verb: settle, calls: sent, outcome: jobstore.Outcome{
			Lo: 10, Hi: 20, Status: jobstore.Accepted, Code: "MSG402", Message: "ok", Attempts: 3, CheckedAt: at}},
	}, {
		name: "invalid batch splits",
		a:    answer{res: capapi.Result{Class: capapi.Invalid, Code: "RBC529"}, r: batch, at: at},
		want: decision{verb: split, calls: sent, outcome: jobstore.Outcome{Lo: 10, Hi: 20, Split: true, Attempts: 2}},
	}, {
		name: "invalid single number is rejected",
		a:    answer{res: capapi.Result{Class: capapi.Invalid, Code: "RBC529", Message: "bad"}, r: one, at: at},
		want: decision{verb: settle, calls: sent, outcome: jobstore.Outcome{
			Lo: 7, Hi: 8, Status: jobstore.Rejected, Code: "RBC529", Message: "bad", Attempts: 1, CheckedAt: at}},
	}, {
		name: "transient retries after a backoff",
		a:    answer{res: transient, r: one, tries: 1, at: at},
		want: decision{verb: retryAfter, wait: 200 * time.Millisecond, calls: jobstore.Counters{Requests: 1, Retries: 1}},
	}, {
		name: "backoff capped",
		a:    answer{res: transient, r: one, tries: 8, at: at},
		want: decision{verb: retryAfter, wait: time.Second, calls: jobstore.Counters{Requests: 1, Retries: 1}},
	}, {
		name: "transient on the last attempt settles failed",
		a:    answer{res: transient, r: one, tries: 9, at: at},
		want: decision{verb: settle, calls: sent, outcome: jobstore.Outcome{
			Lo: 7, Hi: 8, Status: jobstore.Failed, Message: "gave up after 10 attempts: HTTP 503", Attempts: 10, CheckedAt: at}},
	}, {
		name: "429 pauses the fleet for Retry-After",
		a:    answer{res: capapi.Result{Class: capapi.RateLimited, RetryAfter: 2 * time.Second}, r: batch, tries: 2},
		want: decision{verb: pauseFleet, wait: 2 * time.Second, calls: jobstore.Counters{Requests: 1, RateLimited: 1}},
	}, {
		name: "429 without Retry-After pauses for the default",
		a:    answer{res: capapi.Result{Class: capapi.RateLimited}, r: batch},
		want: decision{verb: pauseFleet, wait: 5 * time.Second, calls: jobstore.Counters{Requests: 1, RateLimited: 1}},
	}, {
		name: "429 with a bogus Retry-After is capped",
		a:    answer{res: capapi.Result{Class: capapi.RateLimited, RetryAfter: 24 * time.Hour}, r: batch},
		want: decision{verb: pauseFleet, wait: time.Minute, capped: true, calls: jobstore.Counters{Requests: 1, RateLimited: 1}},
	}, {
		name: "401 aborts the job",
		a:    answer{res: unauth, r: batch, at: at},
		want: decision{verb: abortJob, calls: sent, reason: abortReason(unauth), outcome: jobstore.Outcome{
			Lo: 10, Hi: 20, Status: jobstore.Failed, Code: "RBC401", Attempts: 2, CheckedAt: at}},
	}, {
		name: "fatal aborts the job",
		a:    answer{res: capapi.Result{Class: capapi.Fatal, StatusCode: 404}, r: one, at: at},
		want: decision{verb: abortJob, calls: sent, reason: abortReason(capapi.Result{StatusCode: 404}), outcome: jobstore.Outcome{
			Lo: 7, Hi: 8, Status: jobstore.Failed, Attempts: 1, CheckedAt: at}},
	}, {
		name: "402 aborts the job naming the account",
		a:    answer{res: payment, r: batch, at: at},
		want: decision{verb: abortJob, calls: sent,
			reason:  "the API refused the account (402 BAL Insufficient balance): check the account's balance and plan with the provider",
			outcome: jobstore.Outcome{Lo: 10, Hi: 20, Status: jobstore.Failed, Code: "BAL", Attempts: 2, CheckedAt: at}},
	}, {
		name: "canceled in flight hands the chunk back",
		a:    answer{res: capapi.Result{Class: capapi.Transient}, r: batch, canceled: true},
		want: decision{verb: handBack},
	}, {
		name: "a 202 as the run was canceled is accepted",
		a:    answer{res: capapi.Result{Class: capapi.Accepted, StatusCode: 202, Message: "Accepted"}, r: batch, canceled: true, at: at},
		want: decision{verb: settle, calls: sent, outcome: jobstore.Outcome{
			Lo: 10, Hi: 20, Status: jobstore.Accepted, Message: "Accepted", Attempts: 2, CheckedAt: at}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := decide(tt.a, p)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(decision{})); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	t.Parallel()
	p := policy{backoffBase: 100 * time.Millisecond, backoffMax: time.Second}
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, p.backoff(n))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	p.jitter = func(d time.Duration) time.Duration { return d / 2 }
	if d := p.backoff(2); d != 100*time.Millisecond {
		t.Errorf("backoff with jitter = %s, want half of 200ms", d)
	}
}

func TestNotSentKeepsTheAttemptsSpent(t *testing.T) {
	t.Parallel()
	got := notSent(jobstore.Range{Lo: 0, Hi: 5, Attempts: 1}, 2, "the API refused the key")
	want := jobstore.Outcome{Lo: 0, Hi: 5, Status: jobstore.Failed, Attempts: 3,
		Message: "not sent: job stopped: the API refused the key"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("notSent (-want +got):\n%s", diff)
	}
}
