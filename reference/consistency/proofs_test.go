package consistency_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/reference/consistency"
	"github.com/faultline-dev/faultline/scenarios"
)

// consistent is the final state after one acknowledged order o1 (2 of p1).
func consistent() *consistency.State {
	return &consistency.State{
		Orders:   []consistency.Order{{ID: "o1", Key: "k1", ProductID: "p1", Quantity: 2}},
		Products: map[string]consistency.Product{"p1": {Initial: 10, Stock: 8}},
		Applied:  []consistency.Applied{{OrderID: "o1", ProductID: "p1", Quantity: 2, Deliveries: 1}},
	}
}

// TestConsistencyProofs holds the kind at the boundary of each property, as
// checks.TestCheckProofs holds the built-in kinds: each case must pass or fail as stated,
// never be skipped (docs/CHECKS.md points at them).
func TestConsistencyProofs(t *testing.T) {
	all := &consistency.Check{ExactlyOnce: true, StockMatches: true, NoDoubleApply: true, ConvergeWithin: scenarios.Duration(3 * sec)}
	lost, offByOne, twice := consistent(), consistent(), consistent()
	lost.Orders, lost.Applied, lost.Products = nil, nil, map[string]consistency.Product{"p1": {Initial: 10, Stock: 10}}
	offByOne.Products = map[string]consistency.Product{"p1": {Initial: 10, Stock: 9}}
	twice.Applied = append(twice.Applied, twice.Applied[0])
	tests := []struct {
		name           string
		pass           bool
		prop           string
		state          *consistency.State
		convergedAfter time.Duration
	}{
		{"exactly_once holds", true, "exactly_once", consistent(), 0},
		{"exactly_once: acknowledged order lost", false, "exactly_once", lost, 0},
		{"stock_matches holds", true, "stock_matches", consistent(), 0},
		{"stock_matches: stock off by one", false, "stock_matches", offByOne, 0},
		{"no_double_apply holds", true, "no_double_apply", consistent(), 0},
		{"no_double_apply: applied twice", false, "no_double_apply", twice, 0},
		{"converge_within: exactly 3 s", true, "converge_within", consistent(), 3 * sec},
		{"converge_within: 3.01 s", false, "converge_within", consistent(), 3*sec + 10*ms},
		{"converge_within: never", false, "converge_within", consistent(), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scenario(func(sc *scenarios.Scenario) { sc.Expect.Overall = []scenarios.Check{named("c", all)} })
			in := inputs(sc, slowFault)
			in.Final = final(tt.state, tt.convergedAfter)
			c := one(t, evaluate(t, sc, []history.Event{req(3*sec, 20*ms, place("k1", "o1"), status(201))}, in), "c/"+tt.prop)
			require.False(t, c.Skipped, "not evaluated: %s", c.Message)
			assert.Equal(t, consistency.Kind, c.Kind)
			assert.Equal(t, checks.PhaseOverall, c.Phase)
			assert.Equal(t, tt.pass, c.Passed, "%s", c.Message)
		})
	}
}

// The kind judges the final state at the end of the run, so no window of a running system
// can judge it: under abort_when it is reported unjudged, as before it was registered here.
func TestConsistencyIsNotAStopCondition(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.AbortWhen = []scenarios.Check{check(&consistency.Check{ExactlyOnce: true})}
	})
	assert.Equal(t, []string{consistency.Kind}, checks.Unjudged(sc))
	assert.Nil(t, checks.NewMonitor(sc, checks.DefaultAbortWindow, func() time.Duration { return 0 }))
}

// Without a final state of the reference system's (none was read, or another system's),
// every property is skipped, never failed.
func TestConsistencySkippedWithoutItsState(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.Expect.Overall = []scenarios.Check{named("c", &consistency.Check{ExactlyOnce: true, Settled: true})}
	})
	for _, f := range []*checks.Final{nil, {State: "another system's state"}} {
		in := inputs(sc, slowFault)
		in.Final = f
		got := evaluate(t, sc, nil, in)
		require.Len(t, got, 2)
		for _, c := range got {
			assert.True(t, c.Skipped, c.Name)
			assert.Equal(t, "the system's final state was not read, so consistency cannot be judged", c.Message)
		}
	}
}
