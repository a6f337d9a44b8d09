package compare_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/compare"
	"github.com/faultline-dev/faultline/scenarios"
)

func builtin(t *testing.T, name string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Builtin(name)
	require.NoError(t, err)
	return sc
}

func TestVariantsFromCompareList(t *testing.T) {
	sc, err := scenarios.Load(filepath.Join("..", "scenarios", "compare", "cascading-failure.yaml"))
	require.NoError(t, err)
	require.Empty(t, sc.Validate(scenarios.SystemShape{}))
	vs, err := compare.Variants(sc)
	require.NoError(t, err)
	var got [][2]string
	for _, v := range vs {
		got = append(got, [2]string{v.Name, v.Scenario.System.Design.Path})
		assert.Nil(t, v.Scenario.ExpectFailure)
		assert.Empty(t, v.Scenario.Compare, "a variant runs as a plain scenario")
		assert.Equal(t, sc.Load.Rate, v.Scenario.Load.Rate)
	}
	assert.Equal(t, [][2]string{{"breaker-off", "designs/no-breaker.yaml"}, {"breaker-on", "designs/resilient.yaml"}}, got)
	assert.Equal(t, "designs/resilient.yaml", sc.System.Design.Path, "the scenario itself is left alone")

	_, err = compare.Variants(builtin(t, "baseline"))
	assert.ErrorContains(t, err, "needs two or more")
}

func TestVariantsOfAScenarioPair(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    []string
		wantErr string
	}{
		{"cascading pair", []string{"cascading-failure-no-breaker", "cascading-failure-with-breaker"}, []string{"no-breaker", "with-breaker"}, ""},
		{"retry-storm pair", []string{"retry-storm-no-budget", "retry-storm-with-budget"}, []string{"no-budget", "with-budget"}, ""},
		{"different load", []string{"cascading-failure-no-breaker", "dependency-latency"}, nil, "differ in seed"},
		{"the same file twice", []string{"baseline", "baseline"}, nil, "given twice"},
		{"one file", []string{"baseline"}, nil, "two or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var scs []*scenarios.Scenario
			for _, f := range tt.files {
				scs = append(scs, builtin(t, f))
			}
			vs, err := compare.VariantsOf(scs...)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, v := range vs {
				got = append(got, v.Name)
				assert.Nil(t, v.Scenario.ExpectFailure, "a comparison shows which design fails; it expects nothing")
			}
			assert.Equal(t, tt.want, got)
			assert.NotNil(t, scs[0].ExpectFailure, "the loaded scenario keeps its expect_failure")
		})
	}
}

func TestCompareRefusesBeforeStartingAnything(t *testing.T) {
	sc := builtin(t, "cascading-failure-with-breaker")
	missing := *sc
	missing.System.Design = scenarios.DesignRef{Path: "designs/no-such-design.yaml"}
	two := []compare.Variant{{Name: "a", Scenario: sc}, {Name: "b", Scenario: sc}}
	tests := []struct {
		name     string
		variants []compare.Variant
		opts     []compare.Option
		want     string
	}{
		{"one design", two[:1], nil, "two or more"},
		{"repeat 0", two, []compare.Option{compare.Repeat(0)}, "repeat 0"},
		{"repeat too high", two, []compare.Option{compare.Repeat(compare.MaxRepeat + 1)}, "outside"},
		{"same name twice", []compare.Variant{{Name: "a", Scenario: sc}, {Name: "a", Scenario: sc}}, nil, "repeated"},
		{"name with a slash", []compare.Variant{{Name: "a/b", Scenario: sc}, {Name: "c", Scenario: sc}}, nil, "directory"},
		{"design file missing", []compare.Variant{{Name: "a", Scenario: sc}, {Name: "b", Scenario: &missing}}, nil, "no-such-design.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			groups, err := compare.Run(t.Context(), tt.variants, append(tt.opts, compare.Dir(dir))...)
			assert.ErrorContains(t, err, tt.want)
			assert.Empty(t, groups)
			entries, _ := filepath.Glob(filepath.Join(dir, "*"))
			assert.Empty(t, entries, "nothing ran")
		})
	}
}
