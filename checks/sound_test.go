package checks_test

import (
	"testing"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/scenarios"
)

// timeoutsInFault is the history: in a fault window, 100 requests succeed in up to
// 451 ms and 61 time out after 1 s (1001 ms). The p90 of what clients waited is 1001 ms.
func timeoutsInFault() []history.Event {
	var out []history.Event
	for i := range 100 {
		out = append(out, req(2*sec+time.Duration(i)*30*ms, 351*ms+time.Duration(i)*ms))
	}
	for i := range 61 {
		out = append(out, req(2*sec+time.Duration(i)*40*ms, 1001*ms, failed(0, "timeout")))
	}
	return out
}

func TestLatencyCountsFailedRequests(t *testing.T) {
	runKindCases(t, []kindCase{
		{
			name:   "timeouts count with their time to failure",
			during: []scenarios.Check{check(&scenarios.LatencyCheck{Percentile: "p90", Max: scenarios.Duration(600 * ms)})},
			events: timeoutsInFault(),
			want: map[string]want{"during:slow/latency_p90": {figure: 1001, threshold: 600,
				msg: "p90 latency 1001 ms > 600 ms during slow (61 of 161 requests failed and count with their time to failure)"}},
		},
		{
			name: "successful_only says so explicitly",
			during: []scenarios.Check{check(&scenarios.LatencyCheck{Percentile: "p90", Max: scenarios.Duration(600 * ms),
				SuccessfulOnly: true})},
			events: timeoutsInFault(),
			want: map[string]want{"during:slow/latency_p90": {passed: true, figure: 440, threshold: 600,
				msg: "p90 latency 440 ms <= 600 ms during slow (successful requests only; 61 failed ones not timed)"}},
		},
	})
}

// An opening counts for a fault only while it was active: one seen after a sample taken
// after the heal showed the breaker closed happened after the heal, whatever within says.
func TestBreakerOpenedOnlyInsideTheFault(t *testing.T) {
	opened := func(grace time.Duration) scenarios.Check {
		return check(&scenarios.BreakerOpenedCheck{Caller: "gateway", Dependency: "product",
			Within: scenarios.Duration(10 * sec), Grace: scenarios.Duration(grace)})
	}
	const name = "during:slow/breaker_opened/gateway->product"
	runKindCases(t, []kindCase{
		{
			name:   "opened 0.2 s after the heal, closed at the heal",
			during: []scenarios.Check{opened(0)},
			events: []history.Event{breakerSample(5900*ms, "gateway-1", 0), breakerSample(6*sec, "gateway-1", 0), breakerSample(6200*ms, "gateway-1", 2)},
			want: map[string]want{name: {figure: -1, threshold: 10,
				msg: "breaker gateway->product did not open while slow was active (2.00 s to 6.00 s, grace 1.00 s; 2 samples, none open); it opened at 6.20 s, after the heal"}},
		},
		{
			name:   "seen open exactly at the end of the grace, last seen closed before the heal",
			during: []scenarios.Check{opened(500 * ms)},
			events: []history.Event{breakerSample(5900*ms, "gateway-1", 0), breakerSample(6500*ms, "gateway-1", 2)},
			want: map[string]want{name: {passed: true, figure: 4.5, threshold: 10,
				msg: "breaker gateway->product opened 4.50 s after slow was injected (seen open at 6.50 s; grace 0.50 s after the heal at 6.00 s), <= 10.00 s"}},
		},
		{
			name:   "seen open one millisecond after the grace",
			during: []scenarios.Check{opened(500 * ms)},
			events: []history.Event{breakerSample(5900*ms, "gateway-1", 0), breakerSample(6501*ms, "gateway-1", 2)},
			want: map[string]want{name: {figure: -1, threshold: 10,
				msg: "breaker gateway->product did not open while slow was active (2.00 s to 6.00 s, grace 0.50 s; 1 samples, none open); it opened at 6.50 s, after the heal"}},
		},
	})
}

// A breaker that never opened has nothing to recover from: closed-after-heal fails, unless
// the scenario says the breaker may not open.
func TestBreakerClosedNeedsAnOpening(t *testing.T) {
	closed := func(mayNot bool) scenarios.Check {
		return check(&scenarios.BreakerClosedCheck{Caller: "gateway", Dependency: "product",
			Within: scenarios.Duration(3 * sec), MayNotOpen: mayNot})
	}
	neverOpen := []history.Event{breakerSample(3*sec, "gateway-1", 0), breakerSample(6500*ms, "gateway-1", 0)}
	const name = "after/breaker_closed/gateway->product"
	runKindCases(t, []kindCase{
		{
			name:   "never opened",
			after:  []scenarios.Check{closed(false)},
			events: neverOpen,
			want: map[string]want{name: {figure: 0.5, threshold: 3,
				msg: "breaker gateway->product never opened while slow (2.00 s to 6.00 s, grace 1.00 s) was active, so its being closed 0.50 s after the heal (at 6.50 s) shows no recovery; say may_not_open: true if it may stay closed"}},
		},
		{
			name:   "never opened, and may not",
			after:  []scenarios.Check{closed(true)},
			events: neverOpen,
			want: map[string]want{name: {passed: true, figure: 0.5, threshold: 3,
				msg: "breaker gateway->product closed on every instance 0.50 s after slow was healed (at 6.50 s), <= 3.00 s; it never opened, which may_not_open allows"}},
		},
	})
}
