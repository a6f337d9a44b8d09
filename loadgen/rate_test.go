package loadgen_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/loadgen"
)

func TestRateOf(t *testing.T) {
	tests := []struct {
		in      string
		want    loadgen.Rate
		perSec  float64
		wantErr bool
	}{
		{in: "50/s", want: loadgen.Rate{Freq: 50, Per: time.Second}, perSec: 50},
		{in: "3000/m", want: loadgen.Rate{Freq: 3000, Per: time.Minute}, perSec: 50},
		{in: "36/h", want: loadgen.Rate{Freq: 36, Per: time.Hour}, perSec: 0.01},
		{in: "5/100ms", want: loadgen.Rate{Freq: 5, Per: 100 * time.Millisecond}, perSec: 50},
		{in: "1/2s", want: loadgen.Rate{Freq: 1, Per: 2 * time.Second}, perSec: 0.5},
		{in: " 20 ", want: loadgen.Rate{Freq: 20, Per: time.Second}, perSec: 20},
		{in: "0/s", want: loadgen.Rate{Freq: 0, Per: time.Second}, perSec: 0},
		{in: "", wantErr: true},
		{in: "fast", wantErr: true},
		{in: "-5/s", wantErr: true},
		{in: "5/0s", wantErr: true},
		{in: "5/-1s", wantErr: true},
		{in: "5/fortnight", wantErr: true},
		{in: "1.5/s", wantErr: true},
		{in: "99999999999/ns", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := loadgen.RateOf(tt.in)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.InDelta(t, tt.perSec, got.PerSecond(), 1e-9)
			back, err := loadgen.RateOf(got.String())
			require.NoError(t, err)
			assert.Equal(t, got, back, "String must round-trip")
		})
	}
}

func TestRateText(t *testing.T) {
	var r loadgen.Rate
	require.NoError(t, r.UnmarshalText([]byte("3000/m")))
	got, err := r.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "3000/m", string(got))
	assert.Error(t, r.UnmarshalText([]byte("3000/moon")))
}

func FuzzRateOf(f *testing.F) {
	for _, s := range []string{"50/s", "3000/m", "1/2s", "7", "5/100ms", "0/h", "-1/s", "1/0s", "/", "9/µs"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := loadgen.RateOf(s)
		if err != nil {
			return
		}
		if r.Freq < 0 || r.Per <= 0 || r.PerSecond() > 1e7 {
			t.Fatalf("RateOf(%q) = %+v: accepted an unusable rate", s, r)
		}
		back, err := loadgen.RateOf(r.String())
		if err != nil || back != r {
			t.Fatalf("RateOf(%q) = %+v; String %q reads back as %+v, %v", s, r, r.String(), back, err)
		}
	})
}

func TestPacerPlansExactCounts(t *testing.T) {
	rate := func(s string) loadgen.Rate {
		r, err := loadgen.RateOf(s)
		require.NoError(t, err)
		return r
	}
	tests := []struct {
		name     string
		spec     loadgen.Spec
		want     uint64
		duration time.Duration
	}{
		{name: "constant", spec: loadgen.Spec{Rate: rate("50/s"), Duration: 2 * time.Second}, want: 100, duration: 2 * time.Second},
		{name: "per minute", spec: loadgen.Spec{Rate: rate("3000/m"), Duration: 10 * time.Second}, want: 500, duration: 10 * time.Second},
		{name: "linear ramp from zero", spec: loadgen.Spec{Ramp: []loadgen.Step{{Rate: rate("100/s"), Duration: 2 * time.Second, Shape: loadgen.ShapeLinear}}}, want: 100, duration: 2 * time.Second},
		{name: "linear ramp then hold", spec: loadgen.Spec{Ramp: []loadgen.Step{
			{Rate: rate("200/s"), Duration: time.Second, Shape: loadgen.ShapeLinear}, {Rate: rate("200/s"), Duration: time.Second},
		}}, want: 300, duration: 2 * time.Second},
		{name: "linear ramp then hold until duration", spec: loadgen.Spec{Rate: rate("10/s"), Duration: 3 * time.Second,
			Ramp: []loadgen.Step{{Rate: rate("30/s"), Duration: time.Second, Shape: loadgen.ShapeLinear}}}, want: 20 + 60, duration: 3 * time.Second},
		{name: "linear ramp down", spec: loadgen.Spec{Rate: rate("100/s"), Ramp: []loadgen.Step{{Rate: rate("0/s"), Duration: 2 * time.Second, Shape: loadgen.ShapeLinear}}}, want: 100, duration: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.spec.Pacer()
			assert.Equal(t, tt.want, p.Planned())
			assert.Equal(t, tt.duration, p.Duration())
			assert.Equal(t, p.Planned(), p.DueBy(p.Duration()))
			var prev time.Duration
			for i := range p.Planned() {
				at := p.PlannedAt(i)
				require.GreaterOrEqual(t, at, prev, "request %d is planned before request %d", i, i-1)
				require.Less(t, at, p.Duration(), "request %d is planned after the end", i)
				prev = at
			}
			wait, stop := p.Pace(0, p.Planned())
			assert.True(t, stop, "the pacer must stop after the plan, waited %s", wait)
		})
	}
}

func TestPacerFollowsTheRamp(t *testing.T) {
	r, err := loadgen.RateOf("100/s")
	require.NoError(t, err)
	p := loadgen.Spec{Ramp: []loadgen.Step{{Rate: r, Duration: 2 * time.Second, Shape: loadgen.ShapeLinear}}}.Pacer()
	// The integral of a 0→100/s ramp over its first second is a quarter of the whole.
	assert.Equal(t, uint64(25), p.DueBy(time.Second))
	assert.InDelta(t, 50, p.Rate(time.Second), 1e-9)
	// Request 25 is due when the integral reaches 25: at exactly 1 s.
	assert.InDelta(t, float64(time.Second), float64(p.PlannedAt(25)), float64(time.Millisecond))
}
