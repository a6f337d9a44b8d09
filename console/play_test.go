package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

func TestStepGroups(t *testing.T) {
	d := func(s string) scenarios.Duration {
		v, err := time.ParseDuration(s)
		require.NoError(t, err)
		return scenarios.Duration(v)
	}
	f := func(name, at, dur string) scenarios.FaultSpec {
		return scenarios.FaultSpec{Name: name, At: d(at), For: d(dur)}
	}
	tests := []struct {
		name string
		in   []scenarios.FaultSpec
		want [][]string // name@at within its step
	}{
		{"one fault starts its step", []scenarios.FaultSpec{f("a", "2s", "4s")}, [][]string{{"a@0s"}}},
		{"disjoint windows are steps of their own", []scenarios.FaultSpec{f("b", "10s", "2s"), f("a", "2s", "4s")}, [][]string{{"a@0s"}, {"b@0s"}}},
		{"overlapping windows play together at their offsets", []scenarios.FaultSpec{f("a", "2s", "4s"), f("b", "5s", "4s"), f("c", "8s", "1s"), f("d", "9s", "1s")},
			[][]string{{"a@0s", "b@3s", "c@6s"}, {"d@0s"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][]string
			for _, g := range stepGroups(tt.in) {
				var names []string
				for _, x := range g {
					names = append(names, x.Name+"@"+x.At.String())
				}
				got = append(got, names)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestClosedPhases(t *testing.T) {
	fs := []result.Fault{
		{Name: "a", Injected: result.Duration(time.Second), Healed: result.Duration(3 * time.Second)},
		{Name: "b", Injected: result.Duration(2 * time.Second)},
		{Name: "c"},
	}
	tests := []struct {
		phase    string
		fs       []result.Fault
		finished bool
		want     bool
	}{
		{"before", nil, false, false},
		{"steady_state:before", fs, false, true},
		{"during:a", fs, false, true},
		{"during:b", fs, false, false},
		{"during:c", fs, false, false},
		{"after", fs, false, false},
		{"overall", fs, false, false},
		{"overall", fs, true, true},
		{"during:c", fs, true, true},
	}
	for _, tt := range tests {
		got := closedPhases(tt.fs, tt.finished)(tt.phase)
		assert.Equal(t, tt.want, got, "%s (finished %v, %d faults)", tt.phase, tt.finished, len(tt.fs))
	}
}
