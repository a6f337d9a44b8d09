package compare_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/compare"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

var harnessLimits = result.SweepHarness{MinRateShare: 0.9, MaxLagP99MS: 100, BusyCPU: 0.95, CPUs: 2}

// healthy is a point the harness kept up with.
func healthy(rate float64) result.SweepPoint {
	return result.SweepPoint{Rate: rate, Achieved: rate, SentShare: 1, Requests: 100, LagP99MS: 2, CPU: 0.5, Verdict: result.Passed}
}

func TestJudgeHarness(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(p *result.SweepPoint)
		wantInvalid bool
		wantReason  string
		wantBusy    bool
		exact       bool // the reason is wantReason and nothing more
	}{
		{name: "kept up", edit: func(*result.SweepPoint) {}},
		{name: "sent exactly 90% of the due requests", edit: func(p *result.SweepPoint) { p.SentShare, p.Achieved = 0.9, 90 }},
		{name: "sent just under 90%", edit: func(p *result.SweepPoint) { p.SentShare, p.Achieved = 0.899, 89.9 },
			wantInvalid: true, wantReason: "sent 90% of the requests due (89.9 of 100/s), below 90%"},
		{name: "lag exactly at its bound", edit: func(p *result.SweepPoint) { p.LagP99MS = 100 }},
		{name: "lag just over its bound", edit: func(p *result.SweepPoint) { p.LagP99MS = 100.1 },
			wantInvalid: true, wantReason: "scheduling lag p99 100.1ms > 100ms"},
		{name: "a pegged machine whose generator kept up is flagged, not invalid", edit: func(p *result.SweepPoint) { p.CPU = 0.97 }, wantBusy: true},
		{name: "a pegged machine that made the generator lag", edit: func(p *result.SweepPoint) { p.CPU, p.LagP99MS = 0.99, 450 },
			wantInvalid: true, wantBusy: true, wantReason: "scheduling lag p99 450ms > 100ms"},
		{name: "the fault did not land", edit: func(p *result.SweepPoint) { p.Reason = "fault product-hangs did not land" },
			wantInvalid: true, wantReason: "fault product-hangs did not land"},
		{name: "no request in the window", edit: func(p *result.SweepPoint) { p.Requests = 0 },
			wantInvalid: true, wantReason: "no request started in the window"},
		{name: "a run that ended in a harness error", edit: func(p *result.SweepPoint) {
			p.Verdict, p.Reason, p.SentShare, p.Achieved, p.Requests = result.Error, "the run failed: start system: timeout", 0, 0, 0
		}, wantInvalid: true, wantReason: "the run failed: start system: timeout", exact: true},
		// Slow answers and errors are the system's: the harness stays valid.
		{name: "the system is slow and failing", edit: func(p *result.SweepPoint) { p.P99MS, p.ErrorRate, p.Verdict = 4000, 0.6, result.Failed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := healthy(100)
			tt.edit(&p)
			compare.JudgeHarness(&p, harnessLimits)
			assert.Equal(t, tt.wantInvalid, p.Invalid, p.Reason)
			assert.Equal(t, tt.wantBusy, p.Busy)
			switch {
			case tt.wantReason == "":
				assert.Empty(t, p.Reason)
			case tt.exact:
				assert.Equal(t, tt.wantReason, p.Reason)
			default:
				assert.Contains(t, p.Reason, tt.wantReason)
			}
		})
	}
}

func TestFindKnee(t *testing.T) {
	bounds := result.SweepBounds{P99MS: 500, ErrorRate: 0.01}
	pt := func(rate, p99, errs float64) result.SweepPoint {
		p := healthy(rate)
		p.P99MS, p.ErrorRate = p99, errs
		return p
	}
	invalid := func(p result.SweepPoint) result.SweepPoint { p.Invalid, p.Reason = true, "lag"; return p }
	tests := []struct {
		name   string
		points []result.SweepPoint
		want   result.SweepKnee
	}{
		{name: "every point within bounds",
			points: []result.SweepPoint{pt(50, 10, 0), pt(100, 20, 0), pt(200, 40, 0.002)},
			want:   result.SweepKnee{LastGood: 200, Why: "within bounds up to 200/s"}},
		{name: "p99 at its bound holds",
			points: []result.SweepPoint{pt(50, 10, 0), pt(100, 500, 0)},
			want:   result.SweepKnee{LastGood: 100, Why: "within bounds up to 100/s"}},
		{name: "p99 just over its bound is the knee",
			points: []result.SweepPoint{pt(50, 10, 0), pt(100, 500.1, 0), pt(200, 900, 0)},
			want:   result.SweepKnee{Found: true, Rate: 100, LastGood: 50, Why: "p99 500.1ms > 500ms"}},
		{name: "error rate at its bound holds",
			points: []result.SweepPoint{pt(50, 10, 0.01)},
			want:   result.SweepKnee{LastGood: 50, Why: "within bounds up to 50/s"}},
		{name: "error rate just over its bound is the knee",
			points: []result.SweepPoint{pt(50, 10, 0), pt(100, 10, 0.0101)},
			want:   result.SweepKnee{Found: true, Rate: 100, LastGood: 50, Why: "errors 1.01% > 1%"}},
		{name: "both out at the lowest rate",
			points: []result.SweepPoint{pt(50, 1200, 0.3)},
			want:   result.SweepKnee{Found: true, Rate: 50, Why: "p99 1.2s > 500ms, errors 30% > 1%"}},
		{name: "an invalid point out of bounds is not the knee",
			points: []result.SweepPoint{pt(50, 10, 0), invalid(pt(100, 3000, 0.5)), pt(200, 900, 0)},
			want:   result.SweepKnee{Found: true, Rate: 200, LastGood: 50, Excluded: 1, Why: "p99 900ms > 500ms"}},
		{name: "points out of order are read in rate order",
			points: []result.SweepPoint{pt(400, 900, 0), pt(50, 10, 0), pt(200, 40, 0)},
			want:   result.SweepKnee{Found: true, Rate: 400, LastGood: 200, Why: "p99 900ms > 500ms"}},
		{name: "no valid point",
			points: []result.SweepPoint{invalid(pt(50, 10, 0))},
			want:   result.SweepKnee{Excluded: 1, Why: "no valid point"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, compare.FindKnee(tt.points, bounds))
		})
	}
}

func TestParseRates(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "50,100,200,400", want: []int{50, 100, 200, 400}},
		{in: " 50/s , 100/s", want: []int{50, 100}},
		{in: "100,50", wantErr: "ascending"},
		{in: "50,50", wantErr: "ascending"},
		{in: "0,50", wantErr: "not a whole number"},
		{in: "12.5", wantErr: "not a whole number"},
		{in: "", wantErr: "not a whole number"},
		{in: "1,2,3,4,5,6,7,8,9,10,11,12,13", wantErr: "at most 12"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := compare.ParseRates(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestSweepBoundsAndVariants(t *testing.T) {
	sc, err := scenarios.Load(filepath.Join("..", "scenarios", "compare", "cascading-failure.yaml"))
	require.NoError(t, err)

	b := compare.Bounds(sc, 0, 0)
	assert.Equal(t, result.SweepBounds{P99MS: 500, P99Source: "default (--knee-p99)", ErrorRate: 0.01, ErrorRateSource: "check steady_state error_rate"}, b,
		"the journey-filtered checks (browse) do not speak for the whole load; the steady state's error_rate does")
	b = compare.Bounds(sc, 2*time.Second, 0.05)
	assert.Equal(t, result.SweepBounds{P99MS: 2000, P99Source: "--knee-p99", ErrorRate: 0.05, ErrorRateSource: "--knee-errors"}, b)

	from, to := compare.Window(sc)
	assert.Equal(t, [2]time.Duration{2 * time.Second, 6 * time.Second}, [2]time.Duration{from, to})

	clean := compare.AtRate(sc, 200, false)
	assert.Equal(t, scenarios.Rate{Freq: 200, Per: time.Second}, clean.Load.Rate)
	assert.Empty(t, clean.Faults)
	assert.Empty(t, clean.Expect.During)
	assert.Empty(t, clean.Validate(scenarios.SystemShape{}), "the run without faults is a valid scenario")
	faulted := compare.AtRate(sc, 200, true)
	assert.Len(t, faulted.Faults, 1)
	assert.Equal(t, 50, sc.Load.Rate.Freq, "the scenario itself is left alone")
}

func TestSweepBlockValidation(t *testing.T) {
	base := "name: s\ndescription: d\nload: {rate: 10/s, duration: 2s, mix: {browse: 1}}\n"
	tests := []struct {
		name  string
		block string
		want  string // "" for a valid block
	}{
		{name: "valid", block: "sweep: {rates: [50, 100, 200], knee_p99: 300ms, knee_errors: 2%}\n"},
		{name: "descending", block: "sweep:\n  rates: [100, 50]\n", want: "s.yaml:5:16: sweep.rates[1]: 50 does not come after 100"},
		{name: "zero rate", block: "sweep:\n  rates: [0]\n", want: "s.yaml:5:11: sweep.rates[0]: 0 is outside 1..10000"},
		{name: "empty", block: "sweep:\n  rates: []\n", want: "s.yaml:5:10: sweep.rates is empty"},
		{name: "zero knee", block: "sweep:\n  rates: [10]\n  knee_p99: 0s\n", want: "s.yaml:6:13: sweep.knee_p99 must be above 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scenarios.Parse("s.yaml", []byte(base+tt.block))
			require.NoError(t, err)
			errs := sc.Validate(scenarios.SystemShape{})
			if tt.want == "" {
				assert.Empty(t, errs)
				return
			}
			require.NotEmpty(t, errs)
			assert.Contains(t, errs[0].Error(), tt.want)
		})
	}
}
