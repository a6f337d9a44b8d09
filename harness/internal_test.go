package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
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
