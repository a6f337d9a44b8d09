package console

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/scenarios"
)

func TestExportSession(t *testing.T) {
	base, err := scenarios.Builtin("baseline")
	require.NoError(t, err)
	t0 := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	latency := func(t *testing.T, id int, in, healed time.Time) recFault {
		params := map[string]string{"target": "gateway->product", "latency": "1500ms"}
		f, err := NewFault("latency", params)
		require.NoError(t, err)
		return recFault{id: id, kind: "latency", params: params, fault: f, injected: in, healed: healed}
	}
	baseMix := mixString(base.Load.Mix)
	type want struct {
		rate     string
		ramp     []string // rate@for, and the step's own mix
		mix      string   // the load's mix
		duration string
		faults   []string // name type at for
	}
	tests := []struct {
		name  string
		loads []loadStep
		fs    func(t *testing.T) []recFault
		now   time.Time
		want  want
	}{
		{
			name:  "one rate, a fault healed, load still running",
			loads: []loadStep{{at: at(1), rate: 50}},
			fs:    func(t *testing.T) []recFault { return []recFault{latency(t, 1, at(3.5), at(7))} },
			now:   at(11),
			want:  want{rate: "50/1s", mix: baseMix, duration: "10s", faults: []string{"latency-1 latency 2.5s 3.5s"}},
		},
		{
			name:  "rate change and stop; a fault still in place outlasts the stop",
			loads: []loadStep{{at: at(0), rate: 20}, {at: at(4), rate: 80}, {at: at(6), rate: 0}},
			fs:    func(t *testing.T) []recFault { return []recFault{latency(t, 2, at(5), time.Time{})} },
			now:   at(9),
			want:  want{ramp: []string{"20/1s@4s", "80/1s@2s", "1/1m0s@3s"}, mix: baseMix, duration: "9s", faults: []string{"latency-2 latency 5s 4s"}},
		},
		{
			name:  "a fault before the load starts with it; one healed before it is left out",
			loads: []loadStep{{at: at(10), rate: 40}, {at: at(20), rate: 0}},
			fs: func(t *testing.T) []recFault {
				return []recFault{latency(t, 1, at(2), at(5)), latency(t, 2, at(8), at(12))}
			},
			now:  at(30),
			want: want{rate: "40/1s", mix: baseMix, duration: "10s", faults: []string{"latency-2 latency 0s 2s"}},
		},
		{
			name:  "the same rate twice is one step",
			loads: []loadStep{{at: at(0), rate: 30}, {at: at(2), rate: 30}},
			fs:    func(*testing.T) []recFault { return nil },
			now:   at(5),
			want:  want{rate: "30/1s", mix: baseMix, duration: "5s"},
		},
		{
			name: "a mix changed by hand, at one rate, then with the rate",
			loads: []loadStep{
				{at: at(0), rate: 30, mix: map[string]float64{"browse": 1}},
				{at: at(2), rate: 30, mix: map[string]float64{"browse": 1, "place_order": 3}},
				{at: at(4), rate: 60, mix: map[string]float64{"browse": 1, "place_order": 3}},
				{at: at(5), rate: 60, mix: map[string]float64{"browse": 1}},
			},
			fs:   func(*testing.T) []recFault { return nil },
			now:  at(7),
			want: want{ramp: []string{"30/1s@2s", "30/1s@2s browse 1, place_order 3", "60/1s@1s", "60/1s@2s browse 1"}, mix: "browse 1", duration: "7s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := exportSession(base, tt.loads, tt.fs(t), tt.now)
			require.NoError(t, err)
			var got want
			if !sc.Load.Rate.IsZero() {
				got.rate = sc.Load.Rate.String()
			}
			for _, s := range sc.Load.Ramp {
				step := s.Rate.String() + "@" + s.For.String()
				if s.Mix != nil {
					step += " " + mixString(s.Mix)
				}
				got.ramp = append(got.ramp, step)
			}
			got.mix = mixString(sc.Load.Mix)
			got.duration = sc.Load.Duration.String()
			for _, f := range sc.Faults {
				got.faults = append(got.faults, f.Name+" "+f.Type+" "+f.At.String()+" "+f.For.String())
			}
			assert.Equal(t, tt.want, got)
			for _, s := range tt.loads {
				if s.rate == 0 && s.at.Before(tt.now) && len(sc.Load.Ramp) > 0 {
					assert.Contains(t, sc.Description, "stopped by hand", "a stop written as a rate says so")
				}
			}
			// What the CLI's validate reads: the marshalled text, parsed and validated.
			b, err := scenarios.Marshal(sc)
			require.NoError(t, err)
			back, err := scenarios.Parse("session.yaml", b)
			require.NoError(t, err, "%s", b)
			assert.Empty(t, back.Validate(scenarios.SystemShape{}), "%s", b)
			assert.Equal(t, base.System, back.System)
			assert.Equal(t, sc.Load, back.Load, "the load read back as exported")
		})
	}
}

func TestExportSessionRefusesWithoutLoad(t *testing.T) {
	base, err := scenarios.Builtin("baseline")
	require.NoError(t, err)
	_, err = exportSession(base, nil, nil, time.Now())
	assert.ErrorContains(t, err, "start the load first")
}

// TestCheckMix: a mix set by hand is refused with what is wrong and what to do.
func TestCheckMix(t *testing.T) {
	journeys := []string{"browse", "view_order", "place_order", "retry_order"}
	tests := []struct {
		name string
		mix  map[string]float64
		want string // "" for accepted
	}{
		{"weights", map[string]float64{"browse": 1, "place_order": 3}, ""},
		{"a journey left at 0", map[string]float64{"browse": 0, "place_order": 0.5}, ""},
		{"nothing", map[string]float64{}, "set mix: no weights given; give each journey to send a weight above 0"},
		{"not a journey", map[string]float64{"checkout": 1}, `set mix: "checkout" is not a journey of this system (journeys: browse, view_order, place_order, retry_order)`},
		{"negative", map[string]float64{"browse": -1, "place_order": 1}, "set mix: weight -1 of browse is not a relative share; use 0 or more"},
		{"not a number", map[string]float64{"browse": math.NaN()}, "set mix: weight NaN of browse is not a relative share; use 0 or more"},
		{"all zero", map[string]float64{"browse": 0, "place_order": 0}, "set mix: every weight is 0; give at least one journey a weight above 0"},
		{"too small to share out", map[string]float64{"browse": 0.0001}, "set mix: the weights are too small to share out; use weights such as 1 and 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkMix(tt.mix, journeys)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.want)
		})
	}
}
