package worker

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/capcheck/capcheck/capapi"
	"github.com/capcheck/capcheck/jobstore"
)

// verb is what the sender does with an API answer.
type verb int

const (
	// settle records the outcome: the range's numbers are decided.
	settle verb = iota + 1
	// split records a split marker and sends the two halves of the range.
	split
	// retryAfter sends the range again after the wait.
	retryAfter
	// pauseFleet pauses the whole fleet for the wait, then sends the range
	// again; the call is not an attempt.
	pauseFleet
	// abortJob stops the job (no more calls for it), then records the
	// outcome (failed).
	abortJob
	// handBack leaves the range unrecorded (the call's outcome is unknown)
	// and hands the chunk back to the queue.
	handBack
)

var verbNames = [...]string{
	settle: "settle", split: "split", retryAfter: "retry after", pauseFleet: "pause the fleet",
	abortJob: "abort the job", handBack: "hand the chunk back",
}

func (v verb) String() string {
	if v > 0 && int(v) < len(verbNames) {
		return verbNames[v]
	}
	return fmt.Sprintf("verb(%d)", int(v))
}

// answer is one API answer for a range, with what the range spent before it.
type answer struct {
	res      capapi.Result
	r        jobstore.Range
	tries    int   // calls of this range alone before this one (429s excluded)
	at       int64 // when the answer came, Unix ms
	canceled bool  // the call was canceled in flight: its answer says nothing
}

// decision is what to do with an answer.
type decision struct {
	verb verb
	// wait is how long to wait before sending again (retryAfter, pauseFleet).
	wait time.Duration
	// capped says a 429's Retry-After was longer than pauseMax.
	capped bool
	// outcome is what to record (settle, split, abortJob); for abortJob its
	// Message is completed with the reason the job shows.
	outcome jobstore.Outcome
	// calls are the counters of the call: recorded with the outcome, or
	// added alone when the range is sent again.
	calls jobstore.Counters
	// reason says why the job must be aborted (abortJob).
	reason string
}

// policy is the part of the configuration decide needs.
type policy struct {
	maxAttempts  int
	pauseDefault time.Duration
	pauseMax     time.Duration
	backoffBase  time.Duration
	backoffMax   time.Duration
	// jitter picks the actual wait below a backoff; nil: no jitter.
	jitter func(time.Duration) time.Duration
}

func newPolicy(cfg Config) policy {
	return policy{
		maxAttempts: cfg.MaxAttempts, pauseDefault: cfg.PauseDefault, pauseMax: pauseMax,
		backoffBase: cfg.BackoffBase, backoffMax: cfg.BackoffMax,
		jitter: func(d time.Duration) time.Duration { return rand.N(d + 1) },
	}
}

// abortedMessage is the message of the numbers of an aborted job.
func abortedMessage(reason string) string { return "job stopped: " + reason }

// notSent is the outcome of a range not sent (again) because the job was
// aborted, after tries calls of its own.
func notSent(r jobstore.Range, tries int, reason string) jobstore.Outcome {
	return jobstore.Outcome{Lo: r.Lo, Hi: r.Hi, Status: jobstore.Failed,
		Message: "not sent: " + abortedMessage(reason), Attempts: r.Attempts + tries}
}

// decide says what to do with an answer. It is pure: the sender carries it
// out.
func decide(a answer, p policy) decision {
	if a.canceled && a.res.Class != capapi.Accepted {
		// The answer is unknown: the chunk is resumed and the call
		// repeated. A 202 is known whatever befell its body: the provider
		// took the numbers, and they are not sent again.
		return decision{verb: handBack}
	}
	res, r := a.res, a.r
	sent := jobstore.Counters{Requests: 1}
	o := jobstore.Outcome{Lo: r.Lo, Hi: r.Hi, Code: res.Code, Attempts: r.Attempts + a.tries + 1, CheckedAt: a.at}
	switch res.Class {
	case capapi.RateLimited:
		d := orDefault(res.RetryAfter, p.pauseDefault)
		return decision{verb: pauseFleet, wait: min(d, p.pauseMax), capped: d > p.pauseMax,
			calls: jobstore.Counters{Requests: 1, RateLimited: 1}}
	case capapi.Accepted:
		o.Status, o.Message = jobstore.Accepted, res.Message
		return decision{verb: settle, outcome: o, calls: sent}
	case capapi.Invalid:
		if r.Hi-r.Lo > 1 {
			o.Split, o.Code, o.CheckedAt = true, "", 0
			return decision{verb: split, outcome: o, calls: sent}
		}
		o.Status, o.Message = jobstore.Rejected, res.Message
		return decision{verb: settle, outcome: o, calls: sent}
	case capapi.Unauthorized, capapi.Fatal:
		o.Status = jobstore.Failed
		return decision{verb: abortJob, outcome: o, calls: sent, reason: abortReason(res)}
	}
	// Transient, or a class this worker does not know.
	tries := a.tries + 1
	if tries >= p.maxAttempts {
		o.Status, o.Message = jobstore.Failed, fmt.Sprintf("gave up after %d attempts: %s", tries, cause(res))
		return decision{verb: settle, outcome: o, calls: sent}
	}
	return decision{verb: retryAfter, wait: p.backoff(tries), calls: jobstore.Counters{Requests: 1, Retries: 1}}
}

// backoff returns the wait before the call after the n-th transient failure
// of a range: full jitter over backoffBase·2^(n-1), capped at backoffMax.
func (p policy) backoff(n int) time.Duration {
	d := p.backoffBase
	for i := 1; i < n && d < p.backoffMax; i++ {
		d *= 2
	}
	d = min(d, p.backoffMax)
	if p.jitter == nil {
		return d
	}
	return p.jitter(d)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// abortReason says why res aborts the job and what to fix.
func abortReason(res capapi.Result) string {
	answer := strings.TrimSpace(fmt.Sprintf("%d %s %s", res.StatusCode, res.Code, res.Message))
	answer = strings.Join(strings.Fields(answer), " ")
	switch {
	case res.Class == capapi.Unauthorized && res.StatusCode == 403:
		return fmt.Sprintf("the API refused the key (%s): check the API key and that the account may use the capability check", answer)
	case res.Class == capapi.Unauthorized:
		return fmt.Sprintf("the API refused the key (%s): check the API key", answer)
	case res.StatusCode == http.StatusPaymentRequired:
		return fmt.Sprintf("the API refused the account (%s): check the account's balance and plan with the provider", answer)
	case res.StatusCode == 404 || res.StatusCode == 405:
		return fmt.Sprintf("the API answered %d for the capability-check URL: check the API URL and the SID", res.StatusCode)
	case res.StatusCode == 0:
		return fmt.Sprintf("the API cannot be reached (%s): check the API URL", cause(res))
	default:
		return fmt.Sprintf("the API gave an answer no retry can fix (%s): check the API URL", cause(res))
	}
}

// cause is the text of a failed result for messages and logs.
func cause(res capapi.Result) string {
	if res.Err != nil {
		return res.Err.Error()
	}
	return res.String()
}
