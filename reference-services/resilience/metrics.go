package resilience

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Events counted in faultline_policy_events_total.
const (
	EventRetry           = "retry"
	EventFallback        = "fallback"
	EventTimeout         = "timeout"
	EventBulkheadFull    = "bulkhead_full"
	EventRateLimited     = "rate_limited"
	EventBreakerRejected = "breaker_rejected"
	EventHedge           = "hedge"
	EventBudgetExceeded  = "budget_exceeded"
)

// Events lists every event label, so each edge exports all of them from zero and a rate
// over the first scrape is already meaningful.
var Events = []string{EventRetry, EventFallback, EventTimeout, EventBulkheadFull, EventRateLimited, EventBreakerRejected, EventHedge, EventBudgetExceeded}

type vectors struct {
	breaker *prometheus.GaugeVec
	events  *prometheus.CounterVec
	calls   *prometheus.CounterVec
}

// edgeMetrics are one edge's children of the shared vectors.
type edgeMetrics struct {
	breaker prometheus.Gauge // nil when the edge has no breaker
	events  map[string]prometheus.Counter
	ok, err prometheus.Counter
}

// newVectors registers the vectors with reg, or reuses the ones an earlier edge registered
// there: several edges share one registerer and must not collide.
func newVectors(reg prometheus.Registerer) (*vectors, error) {
	labels := []string{"caller", "dependency"}
	v := &vectors{
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "faultline_breaker_state",
			Help: "Circuit breaker state per edge: 0 closed, 1 half-open, 2 open.",
		}, labels),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_policy_events_total",
			Help: "Resilience policy events per edge.",
		}, append(labels, "event")),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_dependency_calls_total",
			Help: "Calls to a dependency after retries, breaker and the other policies (before any fallback).",
		}, append(labels, "outcome")),
	}
	if reg == nil {
		return v, nil
	}
	var err error
	if v.breaker, err = register(reg, v.breaker); err != nil {
		return nil, err
	}
	if v.events, err = register(reg, v.events); err != nil {
		return nil, err
	}
	if v.calls, err = register(reg, v.calls); err != nil {
		return nil, err
	}
	return v, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, err
}

func (v *vectors) forEdge(caller, dependency string, withBreaker bool) *edgeMetrics {
	m := &edgeMetrics{events: map[string]prometheus.Counter{}}
	for _, ev := range Events {
		m.events[ev] = v.events.WithLabelValues(caller, dependency, ev)
	}
	m.ok = v.calls.WithLabelValues(caller, dependency, "ok")
	m.err = v.calls.WithLabelValues(caller, dependency, "error")
	if withBreaker {
		m.breaker = v.breaker.WithLabelValues(caller, dependency)
		m.breaker.Set(0)
	}
	return m
}
