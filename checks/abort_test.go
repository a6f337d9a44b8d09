package checks_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/scenarios"
)

// monitorVerdict feeds events to a Monitor whose window is the after phase of the fixture
// run ([6s, 10s)) and reports whether a stop condition fired, and why.
func monitorVerdict(t *testing.T, c scenarios.Check, events []history.Event) (fired bool, why string) {
	t.Helper()
	sc := scenario(func(sc *scenarios.Scenario) { sc.AbortWhen = []scenarios.Check{c} })
	now := 10 * sec
	m := checks.NewMonitor(sc, 4*sec, func() time.Duration { return now })
	require.NotNil(t, m, "%s is a stop condition", c.Type)
	for _, ev := range events {
		switch ev.Kind {
		case history.KindRequest:
			m.Request(*ev.Request)
		case history.KindMetric:
			m.Metric(ev.T, *ev.Metric)
		}
	}
	e := m.Check()
	if e == nil {
		return false, ""
	}
	return true, e.Check.Message
}

// browses makes n requests in the after phase, failed of them failing with a 503 after
// failLat, the others succeeding in okLat.
func browses(n, failed int, okLat, failLat time.Duration, opts ...reqOpt) []history.Event {
	var out []history.Event
	for i := range n {
		start := 6*sec + time.Duration(i)*(3*sec/time.Duration(n))
		if i < failed {
			out = append(out, req(start, failLat, append([]reqOpt{failed503}, opts...)...))
			continue
		}
		out = append(out, req(start, okLat, opts...))
	}
	return out
}

var failed503 = failed(503, "")

// TestAbortAndExpectAgree holds a stop condition (abort_when) and the same check under
// expect to one verdict on the same stretch of history: a check fails under expect
// exactly when, as a stop condition over that stretch, it fires. Each case sits at the
// boundary of one predicate the two used to compute separately.
func TestAbortAndExpectAgree(t *testing.T) {
	bucket := "http_request_duration_seconds_bucket"
	tests := []struct {
		name     string
		spec     scenarios.CheckSpec
		events   []history.Event
		wantFail bool
	}{
		{"error rate at its bound passes", &scenarios.ErrorRateCheck{Max: 0.1},
			browses(30, 3, 20*ms, 20*ms), false},
		{"error rate above its bound fails", &scenarios.ErrorRateCheck{Max: 0.1},
			browses(30, 4, 20*ms, 20*ms), true},
		{"route with a query string matches its pattern",
			&scenarios.ErrorRateCheck{Max: 0.1, Route: "GET /orders/{id}"},
			browses(30, 30, 20*ms, 20*ms, path("GET", "/orders/42?full=1")), true},
		{"route with an escaped slash is two segments, not one",
			&scenarios.ErrorRateCheck{Max: 0.1, Route: "GET /orders/{id}"},
			browses(30, 30, 20*ms, 20*ms, path("GET", "/orders/a%2Fb")), false},
		{"route with a fragment matches its pattern",
			&scenarios.ErrorRateCheck{Max: 0.1, Route: "GET /orders/{id}"},
			browses(30, 30, 20*ms, 20*ms, path("GET", "/orders/42#top")), true},
		{"latency at its bound passes", &scenarios.LatencyCheck{Percentile: "p50", Max: scenarios.Duration(20 * ms)},
			browses(30, 0, 20*ms, 0), false},
		{"latency above its bound fails", &scenarios.LatencyCheck{Percentile: "p50", Max: scenarios.Duration(19 * ms)},
			browses(30, 0, 20*ms, 0), true},
		{"failed requests count with their time to failure",
			&scenarios.LatencyCheck{Percentile: "p50", Max: scenarios.Duration(100 * ms)},
			browses(30, 20, 20*ms, time.Second), true},
		{"successful_only leaves failed requests out",
			&scenarios.LatencyCheck{Percentile: "p50", Max: scenarios.Duration(100 * ms), SuccessfulOnly: true},
			browses(30, 20, 20*ms, time.Second), false},
		{"an unknown operator holds for no value",
			&scenarios.MetricCheck{Component: "gateway", Metric: "queue_depth", Op: "=<", Value: ptr(5.0)},
			[]history.Event{sample(7*sec, "gateway", "queue_depth", 1), sample(9*sec, "gateway", "queue_depth", 1)}, true},
		{"a _bucket series is a counter, judged by its increase: at the bound",
			&scenarios.MetricCheck{Component: "gateway", Metric: bucket, Labels: map[string]string{"le": "0.5"}, Op: "<=", Value: ptr(30.0)},
			[]history.Event{sample(5*sec, "gateway", bucket, 100, "le", "0.5"), sample(7*sec, "gateway", bucket, 110, "le", "0.5"),
				sample(9*sec, "gateway", bucket, 130, "le", "0.5")}, false},
		{"a _bucket series is a counter, judged by its increase: above it",
			&scenarios.MetricCheck{Component: "gateway", Metric: bucket, Labels: map[string]string{"le": "0.5"}, Op: "<=", Value: ptr(29.0)},
			[]history.Event{sample(5*sec, "gateway", bucket, 100, "le", "0.5"), sample(7*sec, "gateway", bucket, 110, "le", "0.5"),
				sample(9*sec, "gateway", bucket, 130, "le", "0.5")}, true},
		{"a service's numbered replica is the service",
			&scenarios.MetricCheck{Component: "api", Metric: "queue_depth", Op: "<=", Value: ptr(1.0)},
			[]history.Event{sample(7*sec, "api-2", "queue_depth", 5), sample(9*sec, "api-2", "queue_depth", 5)}, true},
		{"another service whose name starts with the service's is not",
			&scenarios.MetricCheck{Component: "api", Metric: "queue_depth", Op: "<=", Value: ptr(1.0)},
			[]history.Event{sample(7*sec, "api-gateway", "queue_depth", 5), sample(9*sec, "api-gateway", "queue_depth", 5)}, false},
		{"a gauge at its bound passes",
			&scenarios.MetricCheck{Component: "gateway", Metric: "queue_depth", Op: "<=", Value: ptr(5.0)},
			[]history.Event{sample(7*sec, "gateway", "queue_depth", 1), sample(9*sec, "gateway", "queue_depth", 5)}, false},
		{"a gauge above its bound fails",
			&scenarios.MetricCheck{Component: "gateway", Metric: "queue_depth", Op: "<", Value: ptr(5.0)},
			[]history.Event{sample(7*sec, "gateway", "queue_depth", 1), sample(9*sec, "gateway", "queue_depth", 5)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := named("cond", tt.spec)
			sc := scenario(func(sc *scenarios.Scenario) { sc.Expect.After = []scenarios.Check{c} })
			got := one(t, evaluate(t, sc, tt.events, inputs(sc, slowFault)), "cond")
			expectFailed := !got.Passed && !got.Skipped
			assert.Equal(t, tt.wantFail, expectFailed, "expect: %s", got.Message)
			fired, why := monitorVerdict(t, c, tt.events)
			assert.Equal(t, tt.wantFail, fired, "abort_when fired (%s); expect said: %s", why, got.Message)
		})
	}
}

// TestMonitorNeedsEnoughRequests keeps a handful of early failures from stopping a run: a
// rate over fewer than MinAbortRequests requests is not a trend.
func TestMonitorNeedsEnoughRequests(t *testing.T) {
	spec := &scenarios.ErrorRateCheck{Max: 0.1}
	for _, n := range []int{checks.MinAbortRequests - 1, checks.MinAbortRequests} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			fired, _ := monitorVerdict(t, named("cond", spec), browses(n, n, 20*ms, 20*ms))
			assert.Equal(t, n >= checks.MinAbortRequests, fired)
		})
	}
}

// TestMonitorWindowSlides keeps only the last window: failures that completed before it
// no longer count.
func TestMonitorWindowSlides(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.AbortWhen = []scenarios.Check{named("cond", &scenarios.ErrorRateCheck{Max: 0.1})}
	})
	now := 3 * sec
	m := checks.NewMonitor(sc, 2*sec, func() time.Duration { return now })
	for i := range 30 {
		m.Request(*req(time.Duration(i)*50*ms, 10*ms, failed503).Request) // all done by 1.5 s
	}
	for i := range 30 {
		m.Request(*req(2*sec+time.Duration(i)*20*ms, 10*ms).Request)
	}
	e := m.Check()
	require.NotNil(t, e)
	assert.Equal(t, "cond", e.Check.Name)
	assert.Equal(t, scenarios.PlaceAbort, e.Check.Phase)
	now = 4 * sec
	assert.Nil(t, m.Check(), "the failures fell out of the window")
}

// TestUnjudgedStopConditions names the kinds a window cannot judge, which a run ignores
// with a warning, and leaves no monitor when nothing is left to judge.
func TestUnjudgedStopConditions(t *testing.T) {
	tests := []struct {
		name        string
		conds       []scenarios.Check
		wantIgnored []string
		wantMonitor bool
	}{
		{"judged kinds", []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.1}),
			check(&scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(sec)}),
			check(&scenarios.MetricCheck{Component: "gateway", Metric: "up", Op: "==", Value: ptr(1.0)})}, nil, true},
		{"only kinds with no meaning before the end", []scenarios.Check{check(&scenarios.FallbackServedCheck{Min: 5}),
			check(&scenarios.BreakerClosedCheck{Caller: "gateway", Dependency: "product", Within: scenarios.Duration(sec)})},
			[]string{scenarios.CheckFallbackServed, scenarios.CheckBreakerClosed}, false},
		{"a mix", []scenarios.Check{check(&scenarios.ThroughputCheck{Min: 0.9}), check(&scenarios.ErrorRateCheck{Max: 0.1})},
			[]string{scenarios.CheckThroughput}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scenario(func(sc *scenarios.Scenario) { sc.AbortWhen = tt.conds })
			assert.Equal(t, tt.wantIgnored, checks.Unjudged(sc))
			m := checks.NewMonitor(sc, checks.DefaultAbortWindow, func() time.Duration { return 0 })
			assert.Equal(t, tt.wantMonitor, m != nil)
		})
	}
}

// TestMonitorIsSafeWhileFed judges while the request sink and a scraper feed the monitor,
// as a run does (go test -race).
func TestMonitorIsSafeWhileFed(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.AbortWhen = []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.5}),
			check(&scenarios.MetricCheck{Component: "gateway", Metric: "queue_depth", Op: "<=", Value: ptr(100.0)})}
	})
	var clock atomic.Int64
	m := checks.NewMonitor(sc, 100*ms, func() time.Duration { return time.Duration(clock.Load()) })
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 2000 {
			clock.Store(int64(time.Duration(i) * ms))
			m.Request(*req(time.Duration(i)*ms, ms).Request)
		}
	})
	wg.Go(func() {
		for i := range 2000 {
			m.Metric(time.Duration(i)*ms, *sample(time.Duration(i)*ms, "gateway", "queue_depth", 1).Metric)
		}
	})
	for range 200 {
		assert.Nil(t, m.Check())
	}
	wg.Wait()
	assert.Nil(t, m.Check())
}
