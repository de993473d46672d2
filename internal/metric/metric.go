// Package metric defines capcheck's Prometheus metrics in one line each:
// a name, a help text, and the labels' values or the histogram's buckets.
// Each is registered with a registry when one is given; a metric of the same
// name already registered there (a second worker in one process) is used
// instead, so that both count together.
package metric

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter returns the counter name.
func Counter(reg prometheus.Registerer, name, help string) prometheus.Counter {
	return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec returns the counter name with one label, whose values are
// created at once so that dashboards see zeros rather than no series.
func CounterVec(reg prometheus.Registerer, name, help, label string, values ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, v := range values {
		c.WithLabelValues(v)
	}
	return register(reg, c)
}

// Histogram returns the histogram name with buckets.
func Histogram(reg prometheus.Registerer, name, help string, buckets []float64) prometheus.Histogram {
	return register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// Gauge returns the gauge name.
func Gauge(reg prometheus.Registerer, name, help string) prometheus.Gauge {
	return register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// register registers c with reg, or returns the collector already registered
// under its name. Registration cannot fail otherwise: the descriptors are
// fixed and valid.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}
