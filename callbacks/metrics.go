package callbacks

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/capcheck/capcheck/internal/metric"
)

// Outcomes of capcheck_callbacks_total besides capstore's results (stored,
// duplicate, unsolicited).
const (
	outcomeRefused    = "refused"     // wrong or missing token, source not allowed
	outcomeBadRequest = "bad_request" // unparseable, numberless, too large
	outcomeOverloaded = "overloaded"  // queue full: 503

	outcomeUnreplicated = "unreplicated" // no replica confirmed the write in time: 503
	outcomeFailed       = "failed"       // storing them failed (Redis, the replica count): 503
)

// Metrics are a receiver's Prometheus metrics; docs/metrics.md describes
// each.
type Metrics struct {
	callbacks *prometheus.CounterVec // capcheck_callbacks_total{outcome}
	latency   prometheus.Histogram   // capcheck_callback_ingest_seconds
	batch     prometheus.Histogram   // capcheck_callback_batch_size

	replicated prometheus.Gauge // capcheck_callback_replicated
}

// NewMetrics returns the receiver metrics, registered with reg when reg is
// not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		callbacks: metric.CounterVec(reg, "capcheck_callbacks_total",
			"Callbacks received, by outcome (stored, duplicate, unsolicited); requests refused (refused, bad_request) and callbacks turned away (overloaded, unreplicated, failed).",
			"outcome", "stored", "duplicate", "unsolicited", outcomeRefused, outcomeBadRequest, outcomeOverloaded, outcomeUnreplicated, outcomeFailed),
		latency: metric.Histogram(reg, "capcheck_callback_ingest_seconds",
			"Time from a callback request's arrival to its answer, once written to Redis.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}),
		batch: metric.Histogram(reg, "capcheck_callback_batch_size",
			"Callbacks written to Redis in one round trip (group commit).",
			prometheus.ExponentialBuckets(1, 2, 11)),
		replicated: metric.Gauge(reg, "capcheck_callback_replicated",
			"1 when callbacks are acknowledged once a replica of Redis has them (the master has replicas), 0 when once the master has them."),
	}
}

func (r *Receiver) observe(start time.Time) {
	if m := r.cfg.Metrics; m != nil {
		m.latency.Observe(r.cfg.Now().Sub(start).Seconds())
	}
}
