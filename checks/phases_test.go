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

func ph(name string, a, b time.Duration) result.Phase {
	return result.Phase{Name: name, Start: result.Duration(a), End: result.Duration(b)}
}

func TestPhases(t *testing.T) {
	two := scenario(func(sc *scenarios.Scenario) {
		sc.Faults = append(sc.Faults, scenarios.FaultSpec{Name: "crash", Type: "crash",
			At: scenarios.Duration(4 * sec), For: scenarios.Duration(3 * sec)})
	})
	tests := []struct {
		name      string
		sc        *scenarios.Scenario
		faults    []result.Fault
		start, to time.Duration
		want      []result.Phase
	}{
		{
			name: "no faults: the steady state is the second half of the load",
			sc:   scenario(func(sc *scenarios.Scenario) { sc.Faults = nil }),
			to:   8 * sec,
			want: []result.Phase{ph("steady_state:before", 4*sec, 8*sec), ph("before", 0, 8*sec), ph("overall", 0, 8*sec)},
		},
		{
			name:   "actual times win over the plan",
			sc:     scenario(nil),
			faults: []result.Fault{{Name: "slow", Injected: result.Duration(2100 * ms), Healed: result.Duration(6300 * ms)}},
			to:     10 * sec,
			want: []result.Phase{
				ph("steady_state:before", 1050*ms, 2100*ms), ph("before", 0, 2100*ms),
				ph("during:slow", 2100*ms, 6300*ms),
				ph("after", 6300*ms, 10*sec), ph("overall", 0, 10*sec), ph("steady_state:after", 8150*ms, 10*sec),
			},
		},
		{
			name:  "an unrecorded fault runs as planned, from the load's start",
			sc:    scenario(nil),
			start: 500 * ms, to: 10500 * ms,
			want: []result.Phase{
				ph("steady_state:before", 1500*ms, 2500*ms), ph("before", 500*ms, 2500*ms),
				ph("during:slow", 2500*ms, 6500*ms),
				ph("after", 6500*ms, 10500*ms), ph("overall", 500*ms, 10500*ms), ph("steady_state:after", 8500*ms, 10500*ms),
			},
		},
		{
			name:   "a fault never healed lasts until the end; after is empty",
			sc:     scenario(nil),
			faults: []result.Fault{{Name: "slow", Injected: result.Duration(2 * sec)}},
			to:     10 * sec,
			want: []result.Phase{
				ph("steady_state:before", 1*sec, 2*sec), ph("before", 0, 2*sec), ph("during:slow", 2*sec, 10*sec),
				ph("after", 10*sec, 10*sec), ph("overall", 0, 10*sec), ph("steady_state:after", 10*sec, 10*sec),
			},
		},
		{
			name: "overlapping faults: after starts at the last heal",
			sc:   two,
			to:   10 * sec,
			want: []result.Phase{
				ph("steady_state:before", 1*sec, 2*sec), ph("before", 0, 2*sec),
				ph("during:slow", 2*sec, 6*sec), ph("during:crash", 4*sec, 7*sec),
				ph("after", 7*sec, 10*sec), ph("overall", 0, 10*sec), ph("steady_state:after", 8500*ms, 10*sec),
			},
		},
		{
			name: "long phases cap the steady-state windows",
			sc: scenario(func(sc *scenarios.Scenario) {
				sc.Faults[0].At = scenarios.Duration(60 * sec)
			}),
			to: 120 * sec,
			want: []result.Phase{
				ph("steady_state:before", 50*sec, 60*sec), ph("before", 0, 60*sec), ph("during:slow", 60*sec, 64*sec),
				ph("after", 64*sec, 120*sec), ph("overall", 0, 120*sec), ph("steady_state:after", 110*sec, 120*sec),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checks.Phases(tt.sc, tt.faults, tt.start, tt.to)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A request belongs to the phase in which it started, except that one still in flight at
// a fault's injection belongs to that fault's phase; boundaries belong to the phase they
// open. Each case is one request, and wants the phases whose error_rate counted it.
func TestPhaseAssignment(t *testing.T) {
	const us = time.Microsecond
	all := []string{"steady_state:before", "before", "during:slow", "after", "overall", "steady_state:after"}
	tests := []struct {
		name string
		req  history.Event
		want []string
	}{
		{"started before and ended before the injection", req(500*ms, 100*ms), []string{"before", "overall"}},
		{"started and ended in the steady state before", req(1500*ms, 100*ms), []string{"steady_state:before", "before", "overall"}},
		{"ended exactly at the injection: not in flight", req(1950*ms, 50*ms), []string{"steady_state:before", "before", "overall"}},
		{"started 130 µs before the injection, ended after it", req(2*sec-130*us, 50*ms, failed(0, "reset")), []string{"during:slow", "overall"}},
		{"in flight over the whole fault", req(1*sec, 6*sec, failed(0, "timeout")), []string{"during:slow", "overall"}},
		{"started at the injection: inject is inclusive", req(2*sec, 10*ms), []string{"during:slow", "overall"}},
		{"started during, ended after the heal", req(5900*ms, 500*ms, failed(503, "")), []string{"during:slow", "overall"}},
		{"started at the heal: heal is inclusive", req(6*sec, 10*ms), []string{"after", "overall"}},
		{"started in the load's grace period", req(10*sec+200*ms, 10*ms), []string{"after", "overall", "steady_state:after"}},
	}
	sc := scenario(func(sc *scenarios.Scenario) {
		er := func() scenarios.Check { return check(&scenarios.ErrorRateCheck{Max: 1}) }
		sc.SteadyState = []scenarios.Check{er()}
		sc.Expect.Before = []scenarios.Check{er()}
		sc.Expect.During["slow"] = []scenarios.Check{er()}
		sc.Expect.After = []scenarios.Check{er()}
		sc.Expect.Overall = []scenarios.Check{er()}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := evaluate(t, sc, []history.Event{tt.req}, inputs(sc, slowFault))
			var got []string
			for _, phase := range all {
				if c := one(t, res, phase+"/error_rate"); !c.Skipped {
					got = append(got, phase)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// The partition-order-product case: requests in flight when the fault lands, one slow and
// one failed, are the fault's effect in every per-phase aggregate and leave the before
// phase and its steady state clean; throughput alone still counts them where they started.
func TestInFlightRequestsAreTheFaults(t *testing.T) {
	const us = time.Microsecond
	events := cat(
		spread(20, 0, 2),
		spread(10, 2, 6),
		[]history.Event{
			req(2*sec-130*us, 900*ms, fallback("cached")),
			req(2*sec-1*ms, 5*sec, failed(0, "timeout")),
		},
	)
	sc := scenario(func(sc *scenarios.Scenario) {
		fast := func() scenarios.Check {
			return check(&scenarios.LatencyCheck{Percentile: "p99", Max: scenarios.Duration(100 * ms)})
		}
		clean := func() scenarios.Check { return check(&scenarios.ErrorRateCheck{Max: 0}) }
		tput := func() scenarios.Check { return check(&scenarios.ThroughputCheck{Min: 0.1}) }
		sc.SteadyState = []scenarios.Check{clean(), fast()}
		sc.Expect.Before = []scenarios.Check{clean(), fast(), check(&scenarios.FallbackServedCheck{Min: 1}), tput()}
		sc.Expect.During["slow"] = []scenarios.Check{clean(), fast(), check(&scenarios.FallbackServedCheck{Min: 1}), tput()}
	})
	got := evaluate(t, sc, events, inputs(sc, slowFault))
	tests := []struct {
		name   string
		passed bool
		figure float64
		msg    string
	}{
		{"steady_state:before/error_rate", true, 0, "error rate 0% <= 0% in the steady state before the first fault (0 of 10 requests failed)"},
		{"steady_state:before/latency_p99", true, 20, "p99 latency 20 ms <= 100 ms in the steady state before the first fault"},
		{"before/error_rate", true, 0, "error rate 0% <= 0% before the first fault (0 of 20 requests failed)"},
		{"before/latency_p99", true, 20, "p99 latency 20 ms <= 100 ms before the first fault"},
		{"before/fallback_served", false, 0, "0 fallbacks served before the first fault, < 1"},
		{"before/throughput", true, 22.0 / 20, "throughput 110% of plan >= 10% before the first fault (22 requests started of 20 planned)"},
		{"during:slow/error_rate", false, 1.0 / 12, "error rate 8.33% > 0% during slow (1 of 12 requests failed)"},
		{"during:slow/latency_p99", false, 5000, "p99 latency 5000 ms > 100 ms during slow (1 of 12 requests failed and count with their time to failure)"},
		{"during:slow/fallback_served", true, 1, "1 fallbacks served during slow, >= 1"},
		{"during:slow/throughput", true, 10.0 / 40, "throughput 25% of plan >= 10% during slow (10 requests started of 40 planned)"},
	}
	assert.Len(t, got, len(tests)+2, "results (and the skipped steady_state:after ones): %v", keys(got))
	for _, tt := range tests {
		c := one(t, got, tt.name)
		assert.Equal(t, tt.passed, c.Passed, "%s: %s", tt.name, c.Message)
		assert.InDelta(t, tt.figure, c.Figure, 1e-2, tt.name)
		assert.Equal(t, tt.msg, c.Message, tt.name)
	}
}
