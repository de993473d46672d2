package capapi

import (
	"fmt"
	"strings"
	"time"
)

// Class is what an API answer means for the caller.
type Class int

// The zero Class is not a valid outcome, so that a forgotten Result is never
// read as Accepted.
const (
	// Accepted: HTTP 202, the provider took every number of the request,
	// whatever the body says: one that could not be read or parsed is
	// told by Result.BodyErr, and the numbers are not to be sent again.
	Accepted Class = iota + 1
	// Invalid: the provider refused the request's input (HTTP 400, 413 or
	// 422 with a provider error body). The request fails as a whole when
	// any number in it is invalid, so a batch should be bisected.
	Invalid
	// Unauthorized: HTTP 401 or 403. Stop the job: no call can succeed.
	Unauthorized
	// RateLimited: HTTP 429. Pause for Result.RetryAfter; not an attempt.
	RateLimited
	// Transient: 5xx, 408, another 4xx with a provider error body (an
	// answer about the request or the account, not its numbers), network
	// errors, timeouts, resets, malformed error answers and cancellation.
	// Retry with backoff.
	Transient
	// Fatal: an answer that shows the configuration or the account is
	// wrong (402, 404, 405, a redirect, another unexpected status without a
	// provider body). Stop the job like Unauthorized: retrying cannot help.
	Fatal
)

var classNames = [...]string{
	Accepted:     "accepted",
	Invalid:      "invalid",
	Unauthorized: "unauthorized",
	RateLimited:  "rate_limited",
	Transient:    "transient",
	Fatal:        "fatal",
}

// String returns the class's name: "accepted", "invalid", "unauthorized",
// "rate_limited", "transient" or "fatal".
func (c Class) String() string {
	if c > 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Result is the outcome of one call to [Client.Check].
type Result struct {
	// Class tells the caller what to do next.
	Class Class
	// StatusCode is the HTTP status, 0 when no answer was received.
	StatusCode int
	// Code is the provider's code from the body, e.g. "MSG402" or "RBC529";
	// "" when the body had none.
	Code string
	// Message is the provider's message, followed by its error detail when
	// present ("Invalid input or validation error!: invalid number: 91..."),
	// or the HTTP status text when the body had neither.
	Message string
	// RetryAfter is the parsed Retry-After of a RateLimited answer (delta
	// seconds or HTTP date); 0 when absent.
	RetryAfter time.Duration
	// Err is the cause of a Transient or Fatal result (timeout, reset, 5xx,
	// malformed body, wrong URL...), nil otherwise. It never holds the API key
	// or a URL query.
	Err error
	// BodyErr says why the body of an Accepted answer could not be read or
	// parsed (empty, not JSON, over 1 MiB, cut short); nil otherwise. The
	// numbers are accepted all the same; Code is then "" and Message the
	// status text. It never holds the API key or a URL query.
	BodyErr error
	// Latency is the time from sending the request to the end of reading the
	// answer (or to the failure).
	Latency time.Duration
}

// String describes r in one line for logs, e.g.
// "invalid HTTP 400 RBC529: Invalid input or validation error!".
func (r Result) String() string {
	var b strings.Builder
	b.WriteString(r.Class.String())
	if r.StatusCode != 0 {
		fmt.Fprintf(&b, " HTTP %d", r.StatusCode)
	}
	if r.Code != "" {
		b.WriteString(" " + r.Code)
	}
	if r.Message != "" {
		b.WriteString(": " + r.Message)
	}
	if r.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", r.RetryAfter)
	}
	if r.Err != nil {
		b.WriteString(" (" + r.Err.Error() + ")")
	}
	if r.BodyErr != nil {
		b.WriteString(" (" + r.BodyErr.Error() + ")")
	}
	return b.String()
}
