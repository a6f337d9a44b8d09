package loadgen_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/faultline-dev/faultline/loadgen"
)

// attackHits replays vegeta's attack loop (Attacker.Attack: stop once elapsed passes du,
// ask the pacer how long to wait for hit number count, sleep, send, count++) on a virtual
// clock, and returns the offsets at which hits are sent. Virtual time makes the count a
// pure function of the pacer's Pace, with none of a busy machine's timing.
func attackHits(p vegeta.Pacer, du time.Duration) []time.Duration {
	var out []time.Duration
	var elapsed time.Duration
	for count := uint64(0); ; count++ {
		if elapsed > du {
			return out
		}
		wait, stop := p.Pace(elapsed, count)
		if stop {
			return out
		}
		elapsed += max(wait, 0)
		out = append(out, elapsed)
	}
}

// countIn counts the hits in [from, to).
func countIn(hits []time.Duration, from, to time.Duration) int {
	n := 0
	for _, h := range hits {
		if h >= from && h < to {
			n++
		}
	}
	return n
}

// A ramp of steps holds each step's rate for the step's whole duration, so every step
// sends exactly what vegeta's own ConstantPacer sends at that rate over that time, and the
// last step runs at the target rate from its first moment.
func TestStepRampHoldsEachRate(t *testing.T) {
	rates := []string{"20/s", "65/s", "110/s", "155/s", "200/s"}
	const step = 4 * time.Second
	var ramp []loadgen.Step
	for _, r := range rates {
		ramp = append(ramp, loadgen.Step{Rate: mustRate(t, r), Duration: step})
	}
	spec := loadgen.Spec{Ramp: ramp, Duration: 5 * step}
	p := spec.Pacer()
	assert.Equal(t, uint64(2200), p.Planned(), "20+65+110+155+200 per second, 4 s each")

	hits := attackHits(p, p.Duration())
	assert.Equal(t, 2200, len(hits), "hits the attack loop sends over the load")
	for i, r := range rates {
		from := time.Duration(i) * step
		// vegeta's ConstantPacer sends its first hit one interval in, so its step is (0, step].
		want := countIn(attackHits(vegeta.ConstantPacer(mustRate(t, r).Vegeta()), step), 1, step+1)
		assert.Equal(t, want, countIn(hits, from, from+step), "step %d (%s) from %s", i+1, r, from)
		assert.InDelta(t, mustRate(t, r).PerSecond(), p.Rate(from+step/2), 1e-9, "planned rate in step %d", i+1)
		assert.InDelta(t, mustRate(t, r).PerSecond(), p.Rate(from), 1e-9, "the rate jumps at the start of step %d", i+1)
	}
	// The last second runs at the target rate, not at the end of a slope.
	assert.Equal(t, 200, countIn(hits, 19*time.Second, 20*time.Second))
	assert.InDelta(t, 110, float64(len(hits))/p.Duration().Seconds(), 1e-9, "mean planned rate")
}

// A linear step is the explicit choice of a slope: from the previous step's rate (the
// spec's Rate, zero for a ramp from nothing) to its own.
func TestLinearRampIsExplicit(t *testing.T) {
	spec := loadgen.Spec{Ramp: []loadgen.Step{
		{Rate: mustRate(t, "20/s"), Duration: 4 * time.Second},
		{Rate: mustRate(t, "200/s"), Duration: 4 * time.Second, Shape: loadgen.ShapeLinear},
	}}
	p := spec.Pacer()
	// 20/s for 4 s, then the mean of 20 and 200 over 4 s.
	assert.Equal(t, uint64(80+440), p.Planned())
	hits := attackHits(p, p.Duration())
	assert.Equal(t, 80+440, len(hits))
	assert.Equal(t, 80, countIn(hits, 0, 4*time.Second))
	assert.InDelta(t, 110, p.Rate(6*time.Second), 1e-9, "halfway up the slope")

	fromZero := loadgen.Spec{Ramp: []loadgen.Step{{Rate: mustRate(t, "100/s"), Duration: 2 * time.Second, Shape: loadgen.ShapeLinear}}}.Pacer()
	assert.Equal(t, uint64(100), fromZero.Planned(), "0→100/s over 2 s")
}

func TestSpecPlan(t *testing.T) {
	steps := func(shape loadgen.Shape, d time.Duration, rates ...string) []loadgen.Step {
		var out []loadgen.Step
		for _, r := range rates {
			out = append(out, loadgen.Step{Rate: mustRate(t, r), Duration: d, Shape: shape})
		}
		return out
	}
	tests := []struct {
		name string
		spec loadgen.Spec
		want string
	}{
		{name: "constant", spec: loadgen.Spec{Rate: mustRate(t, "50/s"), Duration: 20 * time.Second},
			want: "50/s for 20s; 1,000 requests planned"},
		{name: "equal steps", spec: loadgen.Spec{Ramp: steps("", 4*time.Second, "20/s", "65/s", "110/s", "155/s", "200/s")},
			want: "20→200/s in 5 steps of 4s: 20, 65, 110, 155, 200/s; 2,200 requests planned"},
		{name: "steps then hold", spec: loadgen.Spec{Ramp: steps("", 2*time.Second, "10/s", "20/s"), Duration: 10 * time.Second},
			want: "10→20/s in 2 steps of 2s: 10, 20/s, then 20/s until 10s; 180 requests planned"},
		{name: "mixed", spec: loadgen.Spec{Ramp: []loadgen.Step{
			{Rate: mustRate(t, "30/s"), Duration: 2 * time.Second},
			{Rate: mustRate(t, "300/s"), Duration: 4 * time.Second},
			{Rate: mustRate(t, "30/s"), Duration: time.Second, Shape: loadgen.ShapeLinear},
		}}, want: "30/s for 2s, 300/s for 4s, linear to 30/s over 1s; 1,425 requests planned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Empty(t, tt.spec.Validate()[:0])
			assert.Equal(t, tt.want, tt.spec.Plan())
		})
	}
}

// The summary holds a run to the plan of steps: 50/s then 150/s for a second each plans
// 200 requests, a mean of 100/s, and the second second is planned at 150.
func TestStepRampSummaryPlansSteps(t *testing.T) {
	target := serve(t, newGateway())
	spec := refSpec(t, 3, "1/s", 0)
	spec.Rate = loadgen.Rate{}
	spec.Ramp = []loadgen.Step{
		{Rate: mustRate(t, "50/s"), Duration: time.Second},
		{Rate: mustRate(t, "150/s"), Duration: time.Second},
	}
	_, sum := collect(t, spec, target)
	assert.Equal(t, uint64(200), sum.Planned)
	require.Len(t, sum.Windows, 2)
	assert.Equal(t, uint64(50), sum.Windows[0].Planned)
	assert.Equal(t, uint64(150), sum.Windows[1].Planned)
	assert.InDelta(t, 100, sum.PlannedRate, 1e-9)
}
