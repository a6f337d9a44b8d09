package harness_test

import (
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/scenarios"
)

func TestRuntimeProblems(t *testing.T) {
	sc := &scenarios.Scenario{Faults: []scenarios.FaultSpec{
		{Name: "slow", Type: "latency"}, {Name: "cut", Type: "disconnect"}, {Name: "kill", Type: "crash"}, {Name: "loop", Type: "crash_loop"},
	}}
	tests := []struct {
		rt   string
		want []string // the refused faults' places
	}{
		{"local", nil},
		{"docker", nil},
		{"kubernetes", []string{"faults[1] (disconnect)", "faults[3] (crash_loop)"}},
	}
	for _, tt := range tests {
		t.Run(tt.rt, func(t *testing.T) {
			errs := harness.RuntimeProblems(sc, tt.rt)
			if len(errs) != len(tt.want) {
				t.Fatalf("RuntimeProblems(%s) = %v, want %d problems", tt.rt, errs, len(tt.want))
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) || !strings.Contains(err.Error(), "not available on kubernetes: ") {
					t.Errorf("problem %d = %q, want it to name %s and say why", i, err, tt.want[i])
				}
			}
		})
	}
}
