package reports

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

func sweepFixture() *result.Sweep {
	pt := func(rate, p50, p99, errs float64, invalid bool) result.SweepPoint {
		p := result.SweepPoint{Rate: rate, Achieved: rate, SentShare: 1, Requests: 100, P50MS: p50, P99MS: p99, ErrorRate: errs, LagP99MS: 1.5, CPU: 0.4, HarnessCPU: 0.1}
		if invalid {
			p.Invalid, p.Reason, p.SentShare = true, "the load generator fell behind", 0.5
		}
		return p
	}
	return &result.Sweep{
		Version: 1, Scenario: "cascading-failure", Rates: []float64{50, 100, 200},
		WindowStartMS: 2000, WindowEndMS: 6000,
		Bounds:  result.SweepBounds{P99MS: 500, P99Source: "default (--knee-p99)", ErrorRate: 0.01, ErrorRateSource: "check steady_state error_rate"},
		Harness: result.SweepHarness{MinRateShare: 0.9, MaxLagP99MS: 100, BusyCPU: 0.95, CPUs: 2},
		Designs: []result.SweepDesign{
			{Design: "breaker-off", Curves: []result.SweepCurve{
				{Faults: true, Points: []result.SweepPoint{pt(50, 900, 1500, 0.2, false), pt(100, 1000, 1600, 0.3, false), pt(200, 1000, 4000, 0.6, true)},
					Knee: result.SweepKnee{Found: true, Rate: 50, Why: "p99 1.5s > 500ms", Excluded: 1}},
				{Faults: false, Points: []result.SweepPoint{pt(50, 3, 8, 0, false), pt(100, 3, 9, 0, false), pt(200, 4, 12, 0, false)},
					Knee: result.SweepKnee{LastGood: 200, Why: "within bounds up to 200/s"}},
			}},
			{Design: "breaker-on", Curves: []result.SweepCurve{
				{Faults: true, Points: []result.SweepPoint{pt(50, 4, 30, 0, false), pt(100, 4, 40, 0.002, false), pt(200, 5, 700, 0.004, false)},
					Knee: result.SweepKnee{Found: true, Rate: 200, LastGood: 100, Why: "p99 700ms > 500ms"}},
				{Faults: false, Points: []result.SweepPoint{pt(50, 3, 8, 0, false), pt(100, 3, 9, 0, false), pt(200, 4, 12, 0, false)},
					Knee: result.SweepKnee{LastGood: 200, Why: "within bounds up to 200/s"}},
			}},
		},
	}
}

func TestSweepChartAndMarkdown(t *testing.T) {
	sw := sweepFixture()
	var svg bytes.Buffer
	require.NoError(t, SweepChart(&svg, sw))
	doc := svg.String()
	assert.True(t, strings.HasPrefix(strings.TrimSpace(doc), "<?xml") || strings.Contains(doc, "<svg"), "an SVG document")
	for _, want := range []string{"breaker-off with faults", "breaker-on without faults", "knee breaker-off with faults", "knee breaker-on with faults", "bound 500 ms (default (--knee-p99))", "bound 1 % (check steady_state error_rate)"} {
		assert.Contains(t, doc, want)
	}
	assert.NotContains(t, doc, "knee breaker-off without faults", "a curve without a knee gets no ring")

	var md bytes.Buffer
	require.NoError(t, SweepMarkdown(&md, sw))
	out := md.String()
	assert.Contains(t, out, "| breaker-off | **50/s** (p99 1.5s > 500ms), 1 invalid point(s) left out | none up to the highest rate (within bounds up to 200/s) |")
	assert.Contains(t, out, "| breaker-on | **200/s** (p99 700ms > 500ms) |")
	assert.Contains(t, out, "| breaker-off | yes | 200 | 200.0 | 1 s | 4 s | 60 % | 1.5 ms | 40 % (10 %) | **invalid**: the load generator fell behind |")
	assert.Contains(t, out, "2 s–6 s of the load")
}

func TestSweepChartNamesACurveWithNoValidPoint(t *testing.T) {
	sw := sweepFixture()
	c := &sw.Designs[1].Curves[0]
	for i := range c.Points {
		c.Points[i].Invalid = true
	}
	var svg bytes.Buffer
	require.NoError(t, SweepChart(&svg, sw))
	assert.Contains(t, svg.String(), "breaker-on with faults", "its crosses need a legend entry")
}

func TestSweepChartRefusesNothing(t *testing.T) {
	assert.Error(t, SweepChart(&bytes.Buffer{}, &result.Sweep{}))
}
