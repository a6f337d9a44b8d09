package harness_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
)

func TestRuntimeProblems(t *testing.T) {
	sc := &scenarios.Scenario{Faults: []scenarios.FaultSpec{
		{Name: "slow", Type: "latency"}, {Name: "cut", Type: "disconnect"}, {Name: "kill", Type: "crash"}, {Name: "loop", Type: "crash_loop"},
		{Name: "evict", Type: "delete"},
	}}
	tests := []struct {
		rt   string
		want []string // the refused faults' places
		why  string   // what every refusal says
	}{
		{"local", []string{"faults[4] (delete)"}, "not available on local: delete needs a controller that replaces the deleted instance: only the kubernetes runtime has one"},
		{"docker", []string{"faults[4] (delete)"}, "not available on docker: delete needs a controller that replaces the deleted instance: only the kubernetes runtime has one"},
		{"kubernetes", []string{"faults[1] (disconnect)", "faults[3] (crash_loop)"}, "not available on kubernetes: "},
	}
	for _, tt := range tests {
		t.Run(tt.rt, func(t *testing.T) {
			errs := harness.RuntimeProblems(sc, tt.rt)
			if len(errs) != len(tt.want) {
				t.Fatalf("RuntimeProblems(%s) = %v, want %d problems", tt.rt, errs, len(tt.want))
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) || !strings.Contains(err.Error(), tt.why) {
					t.Errorf("problem %d = %q, want it to name %s and say %q", i, err, tt.want[i], tt.why)
				}
			}
		})
	}
}

// TestDeleteRefusedOnEveryRuntimeButKubernetes: a scenario with a delete fault is refused
// before anything starts on local and docker (a ValidationError naming the reason), and
// accepted on kubernetes.
func TestDeleteRefusedOnEveryRuntimeButKubernetes(t *testing.T) {
	sc, err := scenarios.Parse("pod-delete.yaml", []byte(`name: pod-delete
description: One of two order pods is deleted and replaced by its Deployment.
system:
  replicas: {order: 2}
load:
  rate: 10/s
  duration: 5s
  mix: {browse: 50, place_order: 50}
faults:
  - name: evict-order-1
    type: delete
    at: 1s
    for: 3s
    target: order-1
`))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if errs := sc.Validate(scenarios.SystemShape{}); len(errs) > 0 {
		t.Fatalf("the scenario itself is valid, got %v", errs)
	}
	tests := []struct {
		rt      string
		refused bool
	}{
		{"local", true},
		{"docker", true},
		{"kubernetes", false},
	}
	for _, tt := range tests {
		t.Run(tt.rt, func(t *testing.T) {
			errs := harness.RuntimeProblems(sc, tt.rt)
			if got := len(errs) > 0; got != tt.refused {
				t.Fatalf("refused = %t (%v), want %t", got, errs, tt.refused)
			}
			if !tt.refused {
				return
			}
			// Through Run: refused at validation, nothing started (no system is even asked).
			res, err := harness.Run(t.Context(), sc, harness.WithRuntime(tt.rt), harness.WithSystem(refuseStart{}), harness.WithDir(t.TempDir()))
			var verr *harness.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Run on %s = %v, want a ValidationError", tt.rt, err)
			}
			want := "the scenario has 1 fault(s) the " + tt.rt + " runtime refuses; the first: faults[0] (delete): not available on " + tt.rt + ": delete needs a controller"
			if !strings.HasPrefix(res.Reason, want) {
				t.Errorf("reason = %q, want it to start %q", res.Reason, want)
			}
		})
	}
}

// refuseStart is a system that accepts every scenario and runtime and can do nothing else:
// a run that got past validation would call one of its missing methods and panic.
type refuseStart struct{ sut.System }

func (refuseStart) Validate(*scenarios.Scenario) []error { return nil }
func (refuseStart) Runnable(string) error                { return nil }
