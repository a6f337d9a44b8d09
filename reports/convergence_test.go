package reports

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// convergenceTitle renders the run's charts from a timeline whose consumer lag series
// ends non-zero (the scraper's last sample caught one message in flight) and returns the
// convergence chart's title.
func convergenceTitle(t *testing.T, run *result.Run) string {
	t.Helper()
	a := newAggregator(time.Second)
	a.add(metric(1*time.Second, "faultline_consumer_lag", "product-1", 4))
	a.add(metric(2*time.Second, "faultline_consumer_lag", "product-1", 0))
	a.add(metric(3*time.Second, "faultline_consumer_lag", "product-1", 1))
	tl := a.finish(run, 1)
	require.False(t, tl.Converged, "the series ends non-zero")
	charts, err := runCharts(tl, run)
	require.NoError(t, err)
	for _, c := range charts {
		if c.ID == "convergence" {
			return c.Title
		}
	}
	t.Fatal("no convergence chart")
	return ""
}

func consistencyCheck(prop string, passed bool, figure float64) result.Check {
	return result.Check{Name: "overall/consistency/" + prop, Kind: "consistency", Phase: "overall", Passed: passed, Figure: figure}
}

// The convergence chart's title says what the verdict says about convergence, from the
// same checks: never "did not converge" beside consistency checks that all passed.
func TestConvergenceTitleFollowsTheChecks(t *testing.T) {
	run := func(cs ...result.Check) *result.Run {
		return &result.Run{Duration: result.Duration(5 * time.Second), Checks: cs}
	}
	tests := []struct {
		name    string
		run     *result.Run
		want    string
		notWant string
	}{
		{"every consistency check passed",
			run(consistencyCheck("exactly_once", true, 0), consistencyCheck("stock_matches", true, 0), consistencyCheck("no_double_apply", true, 0)),
			"(consistent at the end: 3 consistency checks passed)", "did not converge"},
		{"converged within its bound",
			run(consistencyCheck("stock_matches", true, 0), consistencyCheck("converge_within", true, 0.25)),
			"(converged 250ms after the last heal)", "did not converge"},
		{"converged too late", run(consistencyCheck("converge_within", false, 4)),
			"(converged 4s after the last heal)", "did not converge"},
		{"never converged", run(consistencyCheck("converge_within", false, -1)), "(did not converge)", ""},
		{"a consistency check failed", run(consistencyCheck("stock_matches", false, 1), consistencyCheck("exactly_once", true, 0)),
			"(inconsistent at the end: overall/consistency/stock_matches failed)", "did not converge"},
		{"converged, but inconsistent", run(consistencyCheck("stock_matches", false, 1), consistencyCheck("converge_within", true, 0.25)),
			"(inconsistent at the end: overall/consistency/stock_matches failed)", "(converged"},
		{"no consistency check: no verdict to state", run(), "Consistency convergence: outbox backlog and consumer lag", "converge)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			title := convergenceTitle(t, tt.run)
			assert.Contains(t, title, tt.want)
			if tt.notWant != "" {
				assert.NotContains(t, title, tt.notWant)
			}
		})
	}
}
