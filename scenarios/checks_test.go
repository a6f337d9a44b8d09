package scenarios_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/scenarios"
)

// TestMetricNames: the metrics a scenario's checks read, from every phase, sorted and once
// each; none for a scenario whose checks read no metric.
func TestMetricNames(t *testing.T) {
	for _, name := range scenarios.Catalog() {
		t.Run(name, func(t *testing.T) {
			sc, err := scenarios.Builtin(name)
			require.NoError(t, err)
			var want []string
			all := append(append(append(append(append([]scenarios.Check{}, sc.SteadyState...), sc.AbortWhen...), sc.Expect.Before...), sc.Expect.After...), sc.Expect.Overall...)
			for _, l := range sc.Expect.During {
				all = append(all, l...)
			}
			for _, c := range all {
				if m, ok := c.Spec.(scenarios.MetricReader); ok {
					for _, n := range m.MetricNames() {
						if !slices.Contains(want, n) {
							want = append(want, n)
						}
					}
				}
			}
			slices.Sort(want)
			got := sc.MetricNames()
			assert.Equal(t, want, got)
			assert.True(t, slices.IsSorted(got))
			assert.Equal(t, len(slices.Compact(slices.Clone(got))), len(got), "each name once")
		})
	}
	sc, err := scenarios.Builtin("broker-outage")
	require.NoError(t, err)
	assert.Contains(t, sc.MetricNames(), "faultline_outbox_backlog", "its metric check reads the outbox backlog")
	sc, err = scenarios.Builtin("baseline")
	require.NoError(t, err)
	assert.Empty(t, sc.MetricNames(), "no check of the baseline reads a metric by name")
}
