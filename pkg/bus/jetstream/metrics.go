package jetstream

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Results of one delivery, the values of the result label of
// passerelle_bus_consumed_total.
const (
	resultOK         = "ok"
	resultRetry      = "retry"
	resultDeadLetter = "dead_letter"
	resultSkipped    = "skipped"
)

// Reasons of a retried delivery, the values of the reason label of
// passerelle_handler_retries_total: a version conflict means that another
// writer changed a resource between the handler's read and its write, which
// one owner per write should make rare; it is counted apart from other errors
// so that it can be watched (docs/architecture.md, "Who writes what").
const (
	reasonVersionConflict = "version_conflict"
	reasonError           = "error"
)

// retryReason is the reason label of a handler error that is retried.
func retryReason(err error) string {
	if errors.Is(err, store.ErrVersionConflict) {
		return reasonVersionConflict
	}
	return reasonError
}

// metrics are the bus's Prometheus collectors. They exist even when no
// registerer is given, so the code that updates them has no nil checks.
type metrics struct {
	published    prometheus.Counter
	consumed     *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	retries      *prometheus.CounterVec
	handler      *prometheus.HistogramVec
	pending      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "passerelle_bus_published_total",
			Help: "Messages published and acknowledged by JetStream.",
		}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passerelle_bus_consumed_total",
			Help: "Deliveries handled by durable consumers, by result (ok, retry, dead_letter, skipped).",
		}, []string{"durable", "result"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passerelle_bus_dead_lettered_total",
			Help: "Messages moved to the dead-letter stream.",
		}, []string{"durable"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passerelle_handler_retries_total",
			Help: "Handler errors answered with a redelivery, by reason (version_conflict, error).",
		}, []string{"durable", "reason"}),
		handler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "passerelle_bus_handler_seconds",
			Help:    "Time spent in message handlers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5ms .. ~131s
		}, []string{"durable"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "passerelle_bus_consumer_pending",
			Help: "Messages matching a durable consumer's filter not yet delivered to it (consumer lag).",
		}, []string{"durable"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.published = register(reg, m.published, &err)
	m.consumed = register(reg, m.consumed, &err)
	m.deadLettered = register(reg, m.deadLettered, &err)
	m.retries = register(reg, m.retries, &err)
	m.handler = register(reg, m.handler, &err)
	m.pending = register(reg, m.pending, &err)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under the
// same name: several buses in one process (one per service in the single
// binary) then share the same series instead of failing to start.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		if *errp == nil {
			*errp = fmt.Errorf("register bus metrics: %w", err)
		}
	}
	return c
}
