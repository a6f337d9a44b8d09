package console

import (
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
	type want struct {
		rate     string
		ramp     []string // rate@for
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
			loads: []loadStep{{at(1), 50}},
			fs:    func(t *testing.T) []recFault { return []recFault{latency(t, 1, at(3.5), at(7))} },
			now:   at(11),
			want:  want{rate: "50/1s", duration: "10s", faults: []string{"latency-1 latency 2.5s 3.5s"}},
		},
		{
			name:  "rate change and stop; a fault still in place outlasts the stop",
			loads: []loadStep{{at(0), 20}, {at(4), 80}, {at(6), 0}},
			fs:    func(t *testing.T) []recFault { return []recFault{latency(t, 2, at(5), time.Time{})} },
			now:   at(9),
			want:  want{ramp: []string{"20/1s@4s", "80/1s@2s", "1/1m0s@3s"}, duration: "9s", faults: []string{"latency-2 latency 5s 4s"}},
		},
		{
			name:  "a fault before the load starts with it; one healed before it is left out",
			loads: []loadStep{{at(10), 40}, {at(20), 0}},
			fs: func(t *testing.T) []recFault {
				return []recFault{latency(t, 1, at(2), at(5)), latency(t, 2, at(8), at(12))}
			},
			now:  at(30),
			want: want{rate: "40/1s", duration: "10s", faults: []string{"latency-2 latency 0s 2s"}},
		},
		{
			name:  "the same rate twice is one step",
			loads: []loadStep{{at(0), 30}, {at(2), 30}},
			fs:    func(*testing.T) []recFault { return nil },
			now:   at(5),
			want:  want{rate: "30/1s", duration: "5s"},
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
				got.ramp = append(got.ramp, s.Rate.String()+"@"+s.For.String())
			}
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
			assert.Equal(t, base.Load.Mix, back.Load.Mix)
		})
	}
}

func TestExportSessionRefusesWithoutLoad(t *testing.T) {
	base, err := scenarios.Builtin("baseline")
	require.NoError(t, err)
	_, err = exportSession(base, nil, nil, time.Now())
	assert.ErrorContains(t, err, "start the load first")
}
