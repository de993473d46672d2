package worker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a worker's Prometheus metrics; docs/metrics.md describes each.
// One Metrics may be shared by several workers of a process.
type Metrics struct {
	apiRequests *prometheus.CounterVec // capcheck_api_requests_total{class}
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
	chunkStale    = "stale"    // job finished or re-driven; skipped
)

// NewMetrics returns the worker metrics, registered with reg when reg is not
// nil. When a metric of the same name is already registered there (a second
// worker in one process), the registered one is used, so both count together.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capcheck_api_requests_total",
			Help: "Capability-check API calls sent, by result class (accepted, invalid, unauthorized, rate_limited, transient, fatal).",
		}, []string{"class"}),
		apiDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "capcheck_api_request_duration_seconds",
			Help:    "Latency of capability-check API calls, from sending to the end of the answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		rateWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "capcheck_ratelimit_wait_seconds",
			Help:    "Time a call waited for the fleet rate limit before it was sent.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		numbers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capcheck_numbers_total",
			Help: "Numbers settled, by final status (accepted, rejected, failed).",
		}, []string{"status"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "capcheck_rate_limited_total",
			Help: "API answers 429 (each pauses the fleet; not counted as an attempt).",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "capcheck_retries_total",
			Help: "API calls repeated after a transient error.",
		}),
		chunkDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "capcheck_chunk_duration_seconds",
			Help:    "Time to handle one chunk task, whatever its result.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14), // 50ms .. ~7min
		}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capcheck_chunks_total",
			Help: "Chunk tasks handled, by result (done, draining, error, gave_up, stale).",
		}, []string{"result"}),
		memory: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capcheck_memory_lookups_total",
			Help: "Valid numbers of the jobs this worker finished, by what the capability memory did for them (hit: not sent, its answer used; miss: sent).",
		}, []string{"result"}),
	}
	// Pre-create the label values, so that dashboards see zeros rather than
	// no series at all.
	for _, c := range []string{"accepted", "invalid", "unauthorized", "rate_limited", "transient", "fatal"} {
		m.apiRequests.WithLabelValues(c)
	}
	for _, s := range []string{"accepted", "rejected", "failed"} {
		m.numbers.WithLabelValues(s)
	}
	for _, r := range []string{chunkDone, chunkDraining, chunkError, chunkGaveUp, chunkStale} {
		m.chunks.WithLabelValues(r)
	}
	for _, r := range []string{memoryHit, memoryMiss} {
		m.memory.WithLabelValues(r)
	}
	if reg != nil {
		m.apiRequests = register(reg, m.apiRequests)
		m.apiDuration = register(reg, m.apiDuration)
		m.rateWait = register(reg, m.rateWait)
		m.numbers = register(reg, m.numbers)
		m.rateLimited = register(reg, m.rateLimited)
		m.retries = register(reg, m.retries)
		m.chunkDur = register(reg, m.chunkDur)
		m.chunks = register(reg, m.chunks)
		m.memory = register(reg, m.memory)
	}
	return m
}

// register registers c with reg, or returns the collector already registered
// under its name. Registration cannot fail otherwise: the descriptors are
// fixed and valid.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}
