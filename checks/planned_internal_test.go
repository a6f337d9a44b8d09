package checks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/scenarios"
)

// The throughput plan a phase is held to follows the ramp's shape: plateaus by default,
// a slope only for a step that says linear.
func TestPlannedRequestsFollowRampShape(t *testing.T) {
	step := func(freq int, d time.Duration, shape string) scenarios.RampStep {
		return scenarios.RampStep{Rate: scenarios.Rate{Freq: freq, Per: time.Second}, For: scenarios.Duration(d), Shape: shape}
	}
	stairs := scenarios.LoadSpec{Duration: scenarios.Duration(20 * time.Second), Ramp: []scenarios.RampStep{
		step(20, 4*time.Second, ""), step(65, 4*time.Second, ""), step(110, 4*time.Second, ""),
		step(155, 4*time.Second, ""), step(200, 4*time.Second, ""),
	}}
	slope := scenarios.LoadSpec{Duration: scenarios.Duration(10 * time.Second), Ramp: []scenarios.RampStep{
		step(20, 4*time.Second, ""), step(200, 4*time.Second, "linear"),
	}}
	s := time.Second
	tests := []struct {
		name string
		load scenarios.LoadSpec
		a, b time.Duration
		want float64
	}{
		{"whole staircase", stairs, 0, 20 * s, 2200},
		{"last step at the target rate", stairs, 19 * s, 20 * s, 200},
		{"across a step edge", stairs, 3 * s, 5 * s, 20 + 65},
		{"plateau before the slope", slope, 0, 4 * s, 80},
		{"the slope", slope, 4 * s, 8 * s, 440},
		{"half the slope", slope, 4 * s, 6 * s, (20 + 110) / 2.0 * 2},
		{"slope then hold", slope, 6 * s, 10 * s, (110+200)/2.0*2 + 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.InDelta(t, tt.want, plannedRequests(tt.load, tt.a, tt.b), 1e-6)
		})
	}
}
