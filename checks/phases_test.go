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

// A request belongs to the phase in which it started, whatever its latency; boundaries
// belong to the phase they open.
func TestPhaseAssignmentAtBoundaries(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		er := func() scenarios.Check { return check(&scenarios.ErrorRateCheck{Max: 1}) }
		sc.Expect.Before = []scenarios.Check{er()}
		sc.Expect.During["slow"] = []scenarios.Check{er()}
		sc.Expect.After = []scenarios.Check{er()}
		sc.Expect.Overall = []scenarios.Check{er()}
	})
	events := []history.Event{
		req(0, 10*ms), // before
		req(1999*ms, 3*sec, failed(0, "timeout")),   // before, although it ends during the fault
		req(2000*ms, 10*ms, failed(503, "")),        // during: inject is inclusive
		req(5999*ms, 10*ms),                         // during
		req(6000*ms, 10*ms, failed(502, "")),        // after: heal is inclusive
		req(10*sec+200*ms, 10*ms, failed(0, "eof")), // after: the load's grace period
	}
	got := evaluate(t, sc, events, inputs(sc, slowFault))
	tests := []struct {
		name   string
		figure float64
		msg    string
	}{
		{"before/error_rate", 0.5, "error rate 50% <= 100% before the first fault (1 of 2 requests failed)"},
		{"during:slow/error_rate", 0.5, "error rate 50% <= 100% during slow (1 of 2 requests failed)"},
		{"after/error_rate", 1, "error rate 100% <= 100% after the last heal (2 of 2 requests failed)"},
		{"overall/error_rate", 4.0 / 6, "error rate 66.67% <= 100% over the whole run (4 of 6 requests failed)"},
	}
	for _, tt := range tests {
		c := one(t, got, tt.name)
		assert.InDelta(t, tt.figure, c.Figure, 1e-9, tt.name)
		assert.Equal(t, tt.msg, c.Message)
	}
	assert.Equal(t, "failed requests by status: no answer: 1, 502: 1", got["after/error_rate"].Detail)
}
