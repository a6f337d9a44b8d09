package harness

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
)

func TestMixWeights(t *testing.T) {
	tests := []struct {
		name string
		mix  map[string]float64
		want map[string]int
	}{
		{"whole numbers kept", map[string]float64{"browse": 50, "place_order": 25}, map[string]int{"browse": 50, "place_order": 25}},
		{"fractions scaled", map[string]float64{"browse": 0.7, "place_order": 0.3}, map[string]int{"browse": 700, "place_order": 300}},
		{"mixed", map[string]float64{"browse": 1, "place_order": 0.25}, map[string]int{"browse": 1000, "place_order": 250}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mixWeights(tt.mix)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDecide(t *testing.T) {
	full := loadgen.Summary{Due: 100, Issued: 100}
	landed := result.Fault{Name: "f", Injected: result.Duration(time.Second), Healed: result.Duration(2 * time.Second), Effect: &result.Effect{Landed: true}}
	missed := landed
	missed.Effect = &result.Effect{Landed: false, Detail: "added 0s"}
	ok := result.Check{Name: "overall/error_rate", Phase: "overall", Passed: true, Message: "fine"}
	bad := result.Check{Name: "latency", Phase: "overall", Message: "p99 latency 900 ms > 300 ms"}
	steadyBad := result.Check{Name: "steady_state:before/error_rate", Phase: "steady_state:before", Message: "error rate 5%"}
	ef := &scenarios.ExpectFailure{Check: "latency", Reason: `p99 latency \d+ ms`, Explanation: "no breaker"}
	withFault := &scenarios.Scenario{Faults: []scenarios.FaultSpec{{Name: "f"}}}
	// A fault whose links carried nothing but the harness's probes showed nothing.
	uncrossed := landed
	uncrossed.Name = "slow-order"
	uncrossed.Traffic = &result.Traffic{Links: []string{"gateway->order-1"}, Connections: 0, Probes: 5, Bytes: 95}
	crossed := landed
	crossed.Traffic = &result.Traffic{Links: []string{"gateway->order-1"}, Connections: 1, Probes: 5, Bytes: 4000}
	tests := []struct {
		name       string
		sc         *scenarios.Scenario
		faults     []result.Fault
		checks     []result.Check
		load       loadgen.Summary
		want       result.Verdict
		wantReason string
	}{
		{"all passed", &scenarios.Scenario{}, nil, []result.Check{ok}, full, result.Passed, ""},
		{"a check failed", &scenarios.Scenario{}, nil, []result.Check{ok, bad}, full, result.Failed, "latency failed"},
		{"fault did not land", withFault, []result.Fault{missed}, []result.Check{ok}, full, result.Invalid, "fault f did not land"},
		{"no request crossed the fault's link", withFault, []result.Fault{uncrossed}, []result.Check{ok}, full, result.Invalid, "no request crossed gateway->order-1 during slow-order (only the harness's 5 probes did)"},
		{"one connection crossed the fault's link", withFault, []result.Fault{crossed}, []result.Check{ok}, full, result.Passed, ""},
		{"fault never injected", withFault, []result.Fault{{Name: "f"}}, []result.Check{ok}, full, result.Invalid, "fault f was never injected"},
		{"load short of its rate", &scenarios.Scenario{}, nil, []result.Check{ok}, loadgen.Summary{Due: 100, Issued: 80}, result.Invalid, "80 of 100"},
		{"load at 90 percent is enough", &scenarios.Scenario{}, nil, []result.Check{ok}, loadgen.Summary{Due: 100, Issued: 90}, result.Passed, ""},
		{"steady state broken before a fault", withFault, []result.Fault{landed}, []result.Check{steadyBad}, full, result.Invalid, "steady state"},
		{"expected failure observed", &scenarios.Scenario{ExpectFailure: ef}, nil, []result.Check{ok, bad}, full, result.Passed, "expected failure observed"},
		{"expected failure did not happen", &scenarios.Scenario{ExpectFailure: ef}, nil, []result.Check{ok, {Name: "latency", Passed: true, Message: "p99 10 ms"}}, full, result.Failed, "but passed"},
		{"expected failure with another message", &scenarios.Scenario{ExpectFailure: ef}, nil, []result.Check{{Name: "latency", Message: "no data"}}, full, result.Failed, "not as expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &result.Run{Faults: tt.faults, Checks: tt.checks}
			decide(tt.sc, res, tt.load)
			got := res.Verdict
			assert.Equal(t, tt.want, got, "reason: %s", res.Reason)
			assert.Contains(t, res.Reason, tt.wantReason)
		})
	}
}

// A scenario's ramp means steps unless a step says linear, and the plan printed before a
// run says so with the requests it will send.
func TestLoadPlanOfScenario(t *testing.T) {
	parse := func(yaml string) scenarios.LoadSpec {
		t.Helper()
		sc, err := scenarios.Parse("ramp.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return sc.Load
	}
	head := "name: ramp\ndescription: A ramp.\nload:\n  mix: {browse: 1}\n"
	tests := []struct {
		name, load, want string
		planned          uint64
	}{
		{"steps", head + "  duration: 20s\n  ramp:\n" +
			"    - {rate: 20/s, for: 4s}\n    - {rate: 65/s, for: 4s}\n    - {rate: 110/s, for: 4s}\n    - {rate: 155/s, for: 4s}\n    - {rate: 200/s, for: 4s}\n",
			"20→200/s in 5 steps of 4s: 20, 65, 110, 155, 200/s; 2,200 requests planned", 2200},
		{"linear from zero", head + "  duration: 4s\n  ramp:\n    - {rate: 100/s, for: 2s, shape: linear}\n",
			"linear from 0/s to 100/s over 2s, then 100/s until 4s; 300 requests planned", 300},
		{"constant", head + "  duration: 10s\n  rate: 50/s\n", "50/s for 10s; 500 requests planned", 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := parse(tt.load)
			assert.Equal(t, tt.want, LoadPlan(l))
			spec := loadgen.Spec{Rate: loadgen.Rate{Freq: l.Rate.Freq, Per: l.Rate.Per}, Ramp: rampOf(l), Duration: l.Duration.Std()}
			assert.Equal(t, tt.planned, spec.Pacer().Planned())
		})
	}
}

// A ramp step's own mix reaches the load generator's step, in its whole-number weights;
// a step without one keeps the mix before it.
func TestRampOfCarriesStepMixes(t *testing.T) {
	sc, err := scenarios.Parse("mix.yaml", []byte("name: mix\ndescription: A mix changed.\nload:\n  mix: {browse: 1}\n  duration: 6s\n  ramp:\n"+
		"    - {rate: 20/s, for: 2s}\n    - {rate: 20/s, for: 2s, mix: {browse: 1, place_order: 3}}\n    - {rate: 40/s, for: 2s, mix: {browse: 0.5, view_order: 0.25}}\n"))
	require.NoError(t, err)
	require.Empty(t, sc.Validate(scenarios.SystemShape{}))
	var got []map[string]int
	for _, st := range rampOf(sc.Load) {
		got = append(got, st.Mix)
	}
	assert.Equal(t, []map[string]int{nil, {"browse": 1, "place_order": 3}, {"browse": 500, "view_order": 250}}, got)
}

// The result says where on its own clock the load started, so reports can count every
// time from load start as the scenario does.
func TestClosePhasesRecordsLoadStart(t *testing.T) {
	sc := &scenarios.Scenario{Name: "s", Faults: []scenarios.FaultSpec{{Name: "f", Type: "latency", At: scenarios.Duration(6 * time.Second), For: scenarios.Duration(2 * time.Second)}}}
	r := &runner{sc: sc, res: &result.Run{}}
	r.faults = []result.Fault{{Name: "f", At: result.Duration(6 * time.Second), For: result.Duration(2 * time.Second),
		Injected: result.Duration(7450 * time.Millisecond), Healed: result.Duration(9450 * time.Millisecond)}}
	r.closePhases(1450*time.Millisecond, 11450*time.Millisecond)
	assert.Equal(t, result.Duration(1450*time.Millisecond), r.res.LoadStart)
}

// stopRecorder is a system under test that records how the pipeline ended it.
type stopRecorder struct {
	sut.System
	ended []string
}

func (s *stopRecorder) Stop(context.Context) error { s.ended = append(s.ended, "stop"); return nil }

// discardRecorder can also be discarded (sut.Discarder).
type discardRecorder struct{ stopRecorder }

func (s *discardRecorder) Discard(context.Context) error {
	s.ended = append(s.ended, "discard")
	return nil
}

// TestStopSystemDiscardsOnlyAContainerRun: a container run's runtime removes every
// instance right after the stop, so a system that can be discarded is, without its
// graceful stop; local processes are stopped, and a system that cannot be discarded is
// stopped wherever it runs.
func TestStopSystemDiscardsOnlyAContainerRun(t *testing.T) {
	tests := []struct {
		name      string
		container bool
		discards  bool
		want      []string
	}{
		{"container run, discardable", true, true, []string{"discard"}},
		{"container run, not discardable", true, false, []string{"stop"}},
		{"local run, discardable", false, true, []string{"stop"}},
		{"local run, not discardable", false, false, []string{"stop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &discardRecorder{}
			r := &runner{sys: &rec.stopRecorder}
			if tt.discards {
				r.sys = rec
			}
			if tt.container {
				r.docker = &containerRun{}
			}
			if err := r.stopSystem(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := rec.ended; !slices.Equal(got, tt.want) {
				t.Errorf("ended by %v, want %v", got, tt.want)
			}
		})
	}
}
