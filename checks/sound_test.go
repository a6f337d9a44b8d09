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
