package checks_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

type want struct {
	passed, skipped bool
	figure          float64
	threshold       float64
	msg             string // exact message, unless empty
	contains        string // a part of the message
}

type kindCase struct {
	name   string
	during []scenarios.Check // placed in expect.during.slow
	after  []scenarios.Check
	over   []scenarios.Check
	events []history.Event
	in     func(*checks.Inputs)
	want   map[string]want
}

func runKindCases(t *testing.T, cases []kindCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			sc := scenario(func(sc *scenarios.Scenario) {
				sc.Expect.During["slow"] = tt.during
				sc.Expect.After = tt.after
				sc.Expect.Overall = tt.over
			})
			in := inputs(sc, slowFault)
			if tt.in != nil {
				tt.in(&in)
			}
			got := evaluate(t, sc, tt.events, in)
			assert.Len(t, got, len(tt.want), "results: %v", keys(got))
			for name, w := range tt.want {
				c := one(t, got, name)
				assert.Equal(t, w.passed, c.Passed, "%s passed: %s", name, c.Message)
				assert.Equal(t, w.skipped, c.Skipped, "%s skipped: %s", name, c.Message)
				assert.InDelta(t, w.figure, c.Figure, 1e-9, "%s figure: %s", name, c.Message)
				if !w.skipped {
					assert.InDelta(t, w.threshold, c.Threshold, 1e-9, "%s threshold", name)
				}
				if w.msg != "" {
					assert.Equal(t, w.msg, c.Message, name)
				}
				assert.Contains(t, c.Message, w.contains, name)
			}
		})
	}
}

// during returns n browse requests spread over the fault, with the given options.
func spread(n int, from, to int, opts ...reqOpt) []history.Event {
	var out []history.Event
	for i := range n {
		start := sec*time.Duration(from) + time.Duration(i)*(sec*time.Duration(to-from))/time.Duration(n)
		out = append(out, req(start, 20*ms, opts...))
	}
	return out
}

func cat(parts ...[]history.Event) []history.Event {
	var out []history.Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestErrorRate(t *testing.T) {
	events := cat(
		spread(90, 2, 6),
		spread(10, 2, 6, failed(503, "")),
		spread(20, 2, 6, journey("view_order"), path("GET", "/orders/o-1")),
		spread(20, 2, 6, journey("view_order"), path("GET", "/orders/o-1?x=1"), failed(0, "timeout")),
		spread(50, 0, 2, failed(500, "")), // before: not counted during
	)
	runKindCases(t, []kindCase{
		{
			name:   "all traffic",
			during: []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.25}), check(&scenarios.ErrorRateCheck{Max: 0.1})},
			events: events,
			want: map[string]want{
				"during:slow/error_rate":   {passed: true, figure: 30.0 / 140, threshold: 0.25, msg: "error rate 21.43% <= 25% during slow (30 of 140 requests failed)"},
				"during:slow/error_rate#2": {figure: 30.0 / 140, threshold: 0.1, msg: "error rate 21.43% > 10% during slow (30 of 140 requests failed)"},
			},
		},
		{
			name: "journey and route filters",
			during: []scenarios.Check{
				check(&scenarios.ErrorRateCheck{Max: 0.05, Journey: "browse"}),
				named("orders-ok", &scenarios.ErrorRateCheck{Max: 0.05, Route: "GET /orders/{id}"}),
				check(&scenarios.ErrorRateCheck{Max: 0.05, Route: "POST /orders"}),
			},
			events: events,
			want: map[string]want{
				"during:slow/error_rate/browse":       {figure: 0.1, threshold: 0.05, msg: "browse error rate 10% > 5% during slow (10 of 100 requests failed)"},
				"orders-ok":                           {figure: 0.5, threshold: 0.05, msg: "GET /orders/{id} error rate 50% > 5% during slow (20 of 40 requests failed)"},
				"during:slow/error_rate/POST /orders": {skipped: true, msg: "no POST /orders requests started during slow"},
			},
		},
		{
			// 1 of 10 judged requests failed: at the bound. Counted as failures the cut
			// requests would make it 6 of 15, counted as successes 1 of 15.
			name:   "requests cut by the load's stop are judged neither way",
			during: []scenarios.Check{check(&scenarios.ErrorRateCheck{Max: 0.1})},
			events: cat(spread(9, 2, 6), spread(1, 2, 6, failed(503, "")), spread(5, 5, 6, cut())),
			want: map[string]want{
				"during:slow/error_rate": {passed: true, figure: 0.1, threshold: 0.1, msg: "error rate 10% <= 10% during slow (1 of 10 requests failed)"},
			},
		},
	})
}

func TestLatency(t *testing.T) {
	events := cat(
		spread(98, 2, 6),
		[]history.Event{req(3*sec, 812*ms), req(4*sec, 812*ms), req(4*sec, 5*sec, failed(0, "timeout"))},
		spread(10, 2, 6, journey("view_order"), path("GET", "/orders/o-1")),
	)
	runKindCases(t, []kindCase{
		{
			name: "percentiles of every request, a failed one at its time to failure",
			during: []scenarios.Check{
				check(&scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(300 * ms), Journey: "browse"}),
				check(&scenarios.LatencyCheck{Percentile: "p50", Max: scenarios.Duration(300 * ms)}),
				named("orders-fast", &scenarios.LatencyCheck{Percentile: "p90", Max: scenarios.Duration(10 * ms), Route: "GET /orders/{id}"}),
			},
			events: events,
			want: map[string]want{
				"during:slow/latency_p99/browse": {figure: 812, threshold: 300, msg: "browse p99 latency 812 ms > 300 ms during slow (1 of 101 requests failed and count with their time to failure)"},
				"during:slow/latency_p50":        {passed: true, figure: 20, threshold: 300, msg: "p50 latency 20 ms <= 300 ms during slow (1 of 111 requests failed and count with their time to failure)"},
				"orders-fast":                    {figure: 20, threshold: 10, msg: "GET /orders/{id} p90 latency 20 ms > 10 ms during slow"},
			},
		},
		{
			name:   "only a failed request",
			after:  []scenarios.Check{check(&scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(300 * ms)})},
			events: []history.Event{req(7*sec, sec, failed(0, "timeout"))},
			want: map[string]want{
				"after/latency_p99": {figure: 1000, threshold: 300,
					msg: "p99 latency 1000 ms > 300 ms after the last heal (1 of 1 requests failed and count with their time to failure)"},
			},
		},
		{
			name: "no successful request, successful_only",
			after: []scenarios.Check{check(&scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(300 * ms),
				SuccessfulOnly: true})},
			events: []history.Event{req(7*sec, sec, failed(0, "timeout"))},
			want: map[string]want{
				"after/latency_p99": {skipped: true, msg: "no successful requests started after the last heal (1 failed)"},
			},
		},
	})
}

func breakerSample(t time.Duration, comp string, v float64) history.Event {
	return sample(t, comp, "faultline_breaker_state", v, "caller", "gateway", "dependency", "product")
}

func TestBreakerOpened(t *testing.T) {
	opened := &scenarios.BreakerOpenedCheck{Caller: "gateway", Dependency: "product", Within: scenarios.Duration(2 * sec)}
	runKindCases(t, []kindCase{
		{
			name:   "opens in time",
			during: []scenarios.Check{check(opened)},
			events: []history.Event{
				breakerSample(1*sec, "gateway-1", 2), // open before the fault: not this fault's doing
				breakerSample(2500*ms, "gateway-1", 0),
				sample(2600*ms, "gateway-1", "faultline_breaker_state", 2, "caller", "gateway", "dependency", "merchant"),
				breakerSample(2700*ms, "gateway-1", 2),
			},
			want: map[string]want{"during:slow/breaker_opened/gateway->product": {passed: true, figure: 0.7, threshold: 2,
				msg: "breaker gateway->product opened 0.70 s after slow was injected (seen open at 2.70 s), <= 2.00 s"}},
		},
		{
			name:   "opens too late",
			during: []scenarios.Check{check(opened)},
			events: []history.Event{breakerSample(2500*ms, "gateway-1", 1), breakerSample(5*sec, "gateway-2", 2)},
			want: map[string]want{"during:slow/breaker_opened/gateway->product": {figure: 3, threshold: 2,
				msg: "breaker gateway->product opened 3.00 s after slow was injected (seen open at 5.00 s), > 2.00 s"}},
		},
		{
			name:   "never opens",
			during: []scenarios.Check{check(opened)},
			events: []history.Event{breakerSample(2500*ms, "gateway-1", 0), breakerSample(3500*ms, "gateway-1", 1)},
			want: map[string]want{"during:slow/breaker_opened/gateway->product": {figure: -1, threshold: 2,
				msg: "breaker gateway->product did not open while slow was active (2.00 s to 6.00 s, grace 1.00 s; 2 samples, none open)"}},
		},
		{
			name:   "never sampled",
			during: []scenarios.Check{check(opened)},
			want: map[string]want{"during:slow/breaker_opened/gateway->product": {skipped: true, figure: -1,
				contains: "never sampled"}},
		},
	})
}

func TestBreakerClosed(t *testing.T) {
	closed := &scenarios.BreakerClosedCheck{Caller: "gateway", Dependency: "product", Within: scenarios.Duration(3 * sec)}
	open := []history.Event{breakerSample(5*sec, "gateway-1", 2), breakerSample(5*sec, "gateway-2", 2)}
	runKindCases(t, []kindCase{
		{
			name:  "every instance closes",
			after: []scenarios.Check{check(closed)},
			events: cat(open, []history.Event{
				breakerSample(6500*ms, "gateway-1", 0),
				breakerSample(6500*ms, "gateway-2", 1),
				breakerSample(7200*ms, "gateway-2", 0),
			}),
			want: map[string]want{"after/breaker_closed/gateway->product": {passed: true, figure: 1.2, threshold: 3,
				msg: "breaker gateway->product closed on every instance 1.20 s after slow was healed (at 7.20 s), <= 3.00 s"}},
		},
		{
			name:  "a half-open breaker without traffic is not closed",
			after: []scenarios.Check{check(closed)},
			events: cat(open, []history.Event{
				breakerSample(6500*ms, "gateway-1", 0),
				breakerSample(6500*ms, "gateway-2", 1),
				breakerSample(9*sec, "gateway-2", 1),
			}),
			want: map[string]want{"after/breaker_closed/gateway->product": {figure: -1, threshold: 3,
				contains: "did not close after slow was healed; still half-open on gateway-2 (a half-open breaker closes only after trial calls succeed"}},
		},
		{
			name:   "a crashed instance that stays open keeps the edge open",
			during: []scenarios.Check{check(closed)},
			events: cat(open, []history.Event{breakerSample(6500*ms, "gateway-1", 0)}),
			want: map[string]want{"during:slow/breaker_closed/gateway->product": {figure: -1, threshold: 3,
				msg: "breaker gateway->product did not close after slow was healed; still open on gateway-2"}},
		},
	})
}

func fallbackSample(t time.Duration, comp, caller string, v float64) history.Event {
	return sample(t, comp, "faultline_policy_events_total", v, "caller", caller, "dependency", "product", "event", "fallback")
}

func TestFallbackServed(t *testing.T) {
	events := cat(
		spread(7, 2, 6, fallback("cached")),
		spread(3, 0, 2, fallback("cached")), // before the fault
		[]history.Event{
			fallbackSample(1*sec, "gateway-1", "gateway", 3), // baseline
			fallbackSample(4*sec, "gateway-1", "gateway", 10),
			fallbackSample(5500*ms, "gateway-1", "gateway", 15),
			fallbackSample(7*sec, "gateway-1", "gateway", 40), // after the fault
			fallbackSample(3*sec, "order-1", "order", 4),      // first seen during: counts whole
		},
	)
	runKindCases(t, []kindCase{
		{
			name: "header and counter",
			during: []scenarios.Check{
				check(&scenarios.FallbackServedCheck{Caller: "gateway", Dependency: "product", Min: 10}),
				check(&scenarios.FallbackServedCheck{Caller: "order", Dependency: "product", Min: 5}),
				check(&scenarios.FallbackServedCheck{Min: 5}),
			},
			events: events,
			want: map[string]want{
				"during:slow/fallback_served/gateway->product": {passed: true, figure: 12, threshold: 10,
					msg: "12 fallbacks served by gateway->product during slow, >= 10"},
				"during:slow/fallback_served/order->product": {figure: 4, threshold: 5,
					msg: "4 fallbacks served by order->product during slow, < 5"},
				"during:slow/fallback_served": {passed: true, figure: 16, threshold: 5},
			},
		},
		{
			name:   "headers alone",
			during: []scenarios.Check{check(&scenarios.FallbackServedCheck{Min: 8})},
			events: spread(7, 2, 6, fallback("cached")),
			want: map[string]want{"during:slow/fallback_served": {figure: 7, threshold: 8,
				msg: "7 fallbacks served during slow, < 8"}},
		},
	})
}

func discovery(t time.Duration, comp string, v float64) history.Event {
	return sample(t, comp, "faultline_discovery_instances", v, "service", "order")
}

func TestFailover(t *testing.T) {
	fo := func(max time.Duration, lease bool) scenarios.Check {
		return check(&scenarios.FailoverCheck{MaxErrorWindow: scenarios.Duration(max), LeaseExpiryObserved: lease})
	}
	crash := func(in *checks.Inputs) {
		in.Faults = []result.Fault{{Name: "slow", Type: "crash", Targets: []string{"order-2"},
			Injected: result.Duration(2 * sec), Healed: result.Duration(6 * sec)}}
		in.LeaseTTL = sec
	}
	errorsDuring := cat(spread(40, 2, 6), []history.Event{
		req(2100*ms, 200*ms, failed(502, "")),
		req(2500*ms, 600*ms, failed(0, "connection reset")),
		req(1900*ms, 2*sec, failed(0, "timeout")),  // in flight at the crash: the crash's
		req(1500*ms, 400*ms, failed(0, "timeout")), // ended before the crash: not counted
	})
	runKindCases(t, []kindCase{
		{
			name:   "short window, lease seen expiring",
			during: []scenarios.Check{fo(2*sec, true)},
			events: cat(errorsDuring, []history.Event{
				discovery(1*sec, "gateway-1", 2), discovery(2500*ms, "gateway-1", 2),
				discovery(3500*ms, "gateway-1", 1), discovery(4*sec, "gateway-1", 0),
			}),
			in: crash,
			want: map[string]want{
				"during:slow/failover": {passed: true, figure: 1.6, threshold: 2,
					msg: "clients saw errors for 1.60 s after slow (3 failed requests) during slow, <= 2.00 s"},
				"during:slow/failover/lease_expiry": {passed: true, figure: 1.5, threshold: 2,
					msg: "gateway-1 dropped from 2 to 1 order instances 1.50 s after slow, <= lease TTL + 1 s = 2.00 s"},
			},
		},
		{
			name:   "long window, lease expiry too late",
			during: []scenarios.Check{fo(500*ms, true)},
			events: cat(errorsDuring, []history.Event{discovery(1*sec, "gateway-1", 2), discovery(4500*ms, "gateway-1", 1)}),
			in:     crash,
			want: map[string]want{
				"during:slow/failover":              {figure: 1.6, threshold: 0.5, contains: "1.60 s after slow (3 failed requests) during slow, > 0.50 s"},
				"during:slow/failover/lease_expiry": {figure: 2.5, threshold: 2, contains: "2.50 s after slow, > lease TTL + 1 s"},
			},
		},
		{
			name:   "no errors, lease never seen",
			during: []scenarios.Check{fo(sec, true)},
			events: cat(spread(10, 2, 6), []history.Event{discovery(1*sec, "gateway-1", 2), discovery(3*sec, "gateway-1", 2)}),
			in:     crash,
			want: map[string]want{
				"during:slow/failover":              {passed: true, figure: 0, threshold: 1},
				"during:slow/failover/lease_expiry": {figure: -1, threshold: 2, contains: "never seen leaving"},
			},
		},
	})
}

func TestFaultLanded(t *testing.T) {
	with := func(eff *result.Effect) func(*checks.Inputs) {
		return func(in *checks.Inputs) {
			f := slowFault
			f.Effect = eff
			in.Faults = []result.Fault{f}
		}
	}
	landed := []scenarios.Check{check(&scenarios.FaultLandedCheck{})}
	// The fault's own tolerance (the one its measurement used and the fault table shows)
	// is the check's unless the check sets a tighter one: one number, one place.
	own := &result.Effect{Configured: 0.3, Measured: 0.33, Unit: "s", Tolerance: 0.03, Landed: true}
	runKindCases(t, []kindCase{
		{
			name: "landed within the fault's own tolerance", during: landed, in: with(own),
			want: map[string]want{"during:slow/fault_landed": {passed: true, figure: 0.1, threshold: 0.1,
				msg: "fault slow measured 0.33 s against 0.3 s configured (10% off, tolerance ± 0.03 s)"}},
		},
		{
			name: "landed, but outside a tight tolerance", during: []scenarios.Check{check(&scenarios.FaultLandedCheck{Tolerance: 0.05})}, in: with(own),
			want: map[string]want{"during:slow/fault_landed": {figure: 0.1, threshold: 0.05,
				msg: "fault slow landed too far from its configuration: measured 0.33 s against 0.3 s configured (10% off, tolerance 5% set by the check)"}},
		},
		{
			name: "a looser tolerance on the check does not land a fault that missed its own", during: []scenarios.Check{check(&scenarios.FaultLandedCheck{Tolerance: 0.5})},
			in: with(&result.Effect{Configured: 0.3, Measured: 0.2, Unit: "s", Tolerance: 0.03, Landed: false}),
			want: map[string]want{"during:slow/fault_landed": {figure: 1.0 / 3, threshold: 0.5,
				msg: "fault slow did not land: measured 0.2 s against 0.3 s configured (33.33% off, tolerance 50% set by the check)"}},
		},
		{
			name: "did not land", during: landed,
			in: with(&result.Effect{Configured: 0.3, Measured: 0, Unit: "s", Tolerance: 0.03, Landed: false}),
			want: map[string]want{"during:slow/fault_landed": {figure: 1, threshold: 0.1,
				msg: "fault slow did not land: measured 0 s against 0.3 s configured (100% off, tolerance ± 0.03 s)"}},
		},
		{
			name: "a count must match", during: landed,
			in: with(&result.Effect{Configured: 5, Measured: 5, Unit: "kills", Landed: true}),
			want: map[string]want{"during:slow/fault_landed": {passed: true, figure: 0, threshold: 0,
				msg: "fault slow measured 5 kills against 5 kills configured (0% off, must match)"}},
		},
		{
			name: "nothing configured: the deviation is absolute, in the unit", during: landed,
			in: with(&result.Effect{Configured: 0, Measured: 1.7, Unit: "s", Tolerance: 60, Landed: true}),
			want: map[string]want{"during:slow/fault_landed": {passed: true, figure: 1.7, threshold: 60,
				msg: "fault slow measured 1.7 s against 0 s configured (1.7 s off, tolerance ± 60 s)"}},
		},
		{
			name: "no effect recorded", over: []scenarios.Check{check(&scenarios.FaultLandedCheck{Fault: "slow"})},
			in: with(nil),
			want: map[string]want{"overall/fault_landed/slow": {
				msg: "fault slow has no measured effect, so nothing shows it landed"}},
		},
	})
}

func TestThroughput(t *testing.T) {
	runKindCases(t, []kindCase{
		{
			name:   "overall from the load summary, a phase from its own plan",
			over:   []scenarios.Check{check(&scenarios.ThroughputCheck{Min: 0.9})},
			during: []scenarios.Check{check(&scenarios.ThroughputCheck{Min: 0.9})},
			events: spread(30, 2, 6),
			in:     func(in *checks.Inputs) { in.Load = result.Load{PlannedRate: 10, AchievedRate: 9.5} },
			want: map[string]want{
				"overall/throughput": {passed: true, figure: 0.95, threshold: 0.9,
					msg: "throughput 95% of plan >= 90% over the whole run (achieved 9.5 req/s of 10.0 planned)"},
				"during:slow/throughput": {figure: 0.75, threshold: 0.9,
					msg: "throughput 75% of plan < 90% during slow (30 requests started of 40 planned)"},
			},
		},
	})
}

func TestMetric(t *testing.T) {
	backlog := func(op string, v float64, reduce string) scenarios.Check {
		return check(&scenarios.MetricCheck{Component: "order", Metric: "faultline_outbox_backlog", Op: op, Value: ptr(v), Reduce: reduce})
	}
	gauges := []history.Event{
		sample(1*sec, "order-1", "faultline_outbox_backlog", 0), // before
		sample(3*sec, "order-1", "faultline_outbox_backlog", 3),
		sample(4*sec, "order-1", "faultline_outbox_backlog", 7),
		sample(5*sec, "order-2", "faultline_outbox_backlog", 1),
		sample(5*sec, "product-1", "faultline_outbox_backlog", 100), // another service
	}
	retry := func(t time.Duration, comp string, v float64) history.Event {
		return sample(t, comp, "faultline_policy_events_total", v, "caller", "gateway", "dependency", "merchant", "event", "retry")
	}
	counters := []history.Event{
		retry(1*sec, "gateway-1", 5), // baseline for the during phase
		retry(3*sec, "gateway-1", 25),
		retry(4*sec, "gateway-2", 30), // first seen: started during the phase
		retry(5*sec, "gateway-1", 45),
		sample(5*sec, "gateway-1", "faultline_policy_events_total", 900, "caller", "gateway", "dependency", "merchant", "event", "timeout"),
	}
	retries := scenarios.MetricCheck{Component: "gateway", Metric: "faultline_policy_events_total",
		Labels: map[string]string{"caller": "gateway", "dependency": "merchant", "event": "retry"}, Op: "<=", Value: ptr(60.0), Reduce: "max"}
	overall := retries
	runKindCases(t, []kindCase{
		{
			name: "gauge reductions",
			during: []scenarios.Check{
				backlog(">", 0, "max"), named("drained", backlog("==", 0, "any").Spec), named("low", backlog("<=", 2, "").Spec),
				named("all-low", backlog("<", 10, "all").Spec), named("min", backlog(">=", 2, "min").Spec),
			},
			events: gauges,
			want: map[string]want{
				"during:slow/metric/order/faultline_outbox_backlog": {passed: true, figure: 7,
					msg: "max of faultline_outbox_backlog on order during slow was 7, > 0"},
				"drained": {figure: 1, msg: "no sample; the last of faultline_outbox_backlog on order during slow was 1, != 0"},
				"low":     {figure: 7, threshold: 2, msg: "last of order-1 of faultline_outbox_backlog on order during slow was 7, > 2"},
				"all-low": {passed: true, figure: 1, threshold: 10},
				"min":     {figure: 1, threshold: 2, contains: "min of faultline_outbox_backlog on order during slow was 1, < 2"},
			},
		},
		{
			name:   "counter increase summed over instances",
			during: []scenarios.Check{named("retries-bounded", &retries)},
			over:   []scenarios.Check{check(&overall)},
			events: counters,
			want: map[string]want{
				"retries-bounded": {figure: 70, threshold: 60,
					msg: "max of faultline_policy_events_total{caller=gateway,dependency=merchant,event=retry} on gateway during slow was 70, > 60 (increase within the phase, summed over instances)"},
				"overall/metric/gateway/faultline_policy_events_total{caller=gateway,dependency=merchant,event=retry}": {figure: 75, threshold: 60},
			},
		},
		{
			name:   "no samples",
			after:  []scenarios.Check{backlog(">", 0, "max")},
			events: gauges,
			want: map[string]want{"after/metric/order/faultline_outbox_backlog": {skipped: true,
				msg: "no samples of faultline_outbox_backlog from order after the last heal"}},
		},
	})
}

func TestBreakerStateName(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{{checks.BreakerClosed, "closed"}, {checks.BreakerHalfOpen, "half-open"}, {checks.BreakerOpen, "open"}, {3, "unknown"}, {0.5, "unknown"}} {
		if got := checks.BreakerStateName(tc.v); got != tc.want {
			t.Errorf("BreakerStateName(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}
