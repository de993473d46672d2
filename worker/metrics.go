package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capcheck/capcheck/internal/metric"
)

// Metrics are a worker's Prometheus metrics; docs/metrics.md describes each.
// One Metrics may be shared by several workers of a process.
type Metrics struct {
	apiRequests *prometheus.CounterVec // capcheck_api_requests_total{class}
	unreadBody  prometheus.Counter     // capcheck_api_accepted_unread_body_total
	apiDuration prometheus.Histogram   // capcheck_api_request_duration_seconds
	rateWait    prometheus.Histogram   // capcheck_ratelimit_wait_seconds
	numbers     *prometheus.CounterVec // capcheck_numbers_total{status}
	rateLimited prometheus.Counter     // capcheck_rate_limited_total
	retries     prometheus.Counter     // capcheck_retries_total
	chunkDur    prometheus.Histogram   // capcheck_chunk_duration_seconds
	chunks      *prometheus.CounterVec // capcheck_chunks_total{result}
	memory      *prometheus.CounterVec // capcheck_memory_lookups_total{result}
}

// Results of capcheck_chunks_total.
const (
	chunkDone     = "done"     // every number settled
	chunkDraining = "draining" // handed back on shutdown
	chunkError    = "error"    // returned an error; asynq retries it
	chunkGaveUp   = "gave_up"  // asynq gave up; pending numbers recorded failed
	chunkStale    = "stale"    // job finished or re-driven (skipped), or chunk held by another run (tried again)
)

// NewMetrics returns the worker metrics, registered with reg when reg is not
// nil. When a metric of the same name is already registered there (a second
// worker in one process), the registered one is used, so both count together.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		apiRequests: metric.CounterVec(reg, "capcheck_api_requests_total",
			"Capability-check API calls sent, by result class (accepted, invalid, unauthorized, rate_limited, transient, fatal).",
			"class", "accepted", "invalid", "unauthorized", "rate_limited", "transient", "fatal"),
		unreadBody: metric.Counter(reg, "capcheck_api_accepted_unread_body_total",
			"API answers 202 whose body could not be read or parsed (empty, not JSON, over 1 MiB, cut short): their numbers are accepted, without the provider's code and message."),
		apiDuration: metric.Histogram(reg, "capcheck_api_request_duration_seconds",
			"Latency of capability-check API calls, from sending to the end of the answer.",
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}),
		rateWait: metric.Histogram(reg, "capcheck_ratelimit_wait_seconds",
			"Time a call waited for the fleet rate limit before it was sent.",
			[]float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}),
		numbers: metric.CounterVec(reg, "capcheck_numbers_total",
			"Numbers settled, by final status (accepted, rejected, failed).",
			"status", "accepted", "rejected", "failed"),
		rateLimited: metric.Counter(reg, "capcheck_rate_limited_total",
			"API answers 429 (each pauses the fleet; not counted as an attempt)."),
		retries: metric.Counter(reg, "capcheck_retries_total",
			"API calls repeated after a transient error."),
		chunkDur: metric.Histogram(reg, "capcheck_chunk_duration_seconds",
			"Time to handle one chunk task, whatever its result.",
			prometheus.ExponentialBuckets(0.05, 2, 14)), // 50ms .. ~7min
		chunks: metric.CounterVec(reg, "capcheck_chunks_total",
			"Chunk tasks handled, by result (done, draining, error, gave_up, stale).",
			"result", chunkDone, chunkDraining, chunkError, chunkGaveUp, chunkStale),
		memory: metric.CounterVec(reg, "capcheck_memory_lookups_total",
			"Valid numbers of the jobs this worker finished, by what the capability memory did for them (hit: not sent, its answer used; miss: sent).",
			"result", memoryHit, memoryMiss),
	}
}
