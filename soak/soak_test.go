package soak

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/observe"
)

func TestSoakJudge(t *testing.T) {
	spec := SoakSpec{Duration: 100 * time.Second, WarmUp: 20 * time.Second, Window: 10 * time.Second}.withDefaults()
	// series feeds one process's samples: rss and goroutines in the start window (20–30 s)
	// and the end window (90–100 s), with start time started at the end.
	series := func(startRSS, endRSS, startG, startGMax, endG, endStarted float64) *sampler {
		s := &sampler{series: map[string][]SoakSample{}}
		for sec := 20; sec < 30; sec++ {
			g := startG
			if sec == 25 {
				g = startGMax
			}
			for _, x := range []observe.Sample{
				{Name: "process_resident_memory_bytes", Value: startRSS}, {Name: "go_goroutines", Value: g}, {Name: "process_start_time_seconds", Value: 1},
			} {
				x.T, x.Component = time.Duration(sec)*time.Second, "p"
				s.add(x)
			}
		}
		for sec := 90; sec < 100; sec++ {
			for _, x := range []observe.Sample{
				{Name: "process_resident_memory_bytes", Value: endRSS}, {Name: "go_goroutines", Value: endG}, {Name: "process_start_time_seconds", Value: endStarted},
			} {
				x.T, x.Component = time.Duration(sec)*time.Second, "p"
				s.add(x)
			}
		}
		return s
	}
	tests := []struct {
		name           string
		s              *sampler
		judged, passed bool
		wantGrowth     float64
	}{
		{"steady", series(100, 105, 30, 34, 30, 1), true, true, 0.05},
		{"rss grew 20 %", series(100, 120, 30, 34, 30, 1), true, false, 0.20},
		{"goroutines wobble within the start's range", series(100, 100, 30, 34, 34, 1), true, true, 0},
		{"goroutines climbed past the start's max", series(100, 100, 30, 34, 35, 1), true, false, 0},
		{"restarted: not judged", series(100, 200, 30, 34, 90, 2), false, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.judge(spec)
			require.Len(t, got, 1)
			assert.Equal(t, tt.judged, got[0].Judged, got[0].Reason)
			assert.Equal(t, tt.passed, got[0].Passed, got[0].Reason)
			assert.InDelta(t, tt.wantGrowth, got[0].Growth, 1e-9)
			rep := &SoakReport{Processes: got}
			assert.Equal(t, tt.judged && tt.passed, rep.Passed())
		})
	}
}

func TestSoakSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec SoakSpec
		want int
	}{
		{"ten minutes", SoakSpec{Duration: 10 * time.Minute}, 0},
		{"two minutes", SoakSpec{Duration: 2 * time.Minute}, 0},
		{"zero", SoakSpec{}, 1},
		{"too short for its windows", SoakSpec{Duration: 30 * time.Second}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Len(t, tt.spec.Validate(), tt.want)
		})
	}
}

func TestCatalogFaultsAreDistinct(t *testing.T) {
	fs, err := CatalogFaults()
	require.NoError(t, err)
	require.NotEmpty(t, fs)
	seen := map[string]bool{}
	for _, f := range fs {
		assert.False(t, seen[f.Name], "fault %s listed twice", f.Name)
		seen[f.Name] = true
	}
}
