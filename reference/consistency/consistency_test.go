package consistency_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/reference/consistency"
	"github.com/faultline-dev/faultline/scenarios"
)

var allProperties = &consistency.Check{ExactlyOnce: true, StockMatches: true, NoDoubleApply: true,
	ConvergeWithin: scenarios.Duration(3 * sec)}

// placements: what clients were told about each key.
var placements = []history.Event{
	req(1*sec, 20*ms, place("k1", "o1"), status(201)),
	req(2*sec, 20*ms, place("k2", "o2"), status(201)),        // acknowledged, then lost
	req(3*sec, 20*ms, place("k3", ""), status(409)),          // rejected...
	req(3100*ms, 20*ms, place("k3", ""), status(422)),        // ...every time
	req(4*sec, 20*ms, place("k5", ""), failed(503, "")),      // indeterminate: exists
	req(4*sec, 2*sec, place("k6", ""), failed(0, "timeout")), // indeterminate: does not exist
	req(5*sec, 20*ms, place("k7", "o7"), status(201)),        // acknowledged, stored twice
	req(6*sec, 20*ms, place("k8", "o8"), status(201)),
	req(6500*ms, 20*ms, place("k8", "o8"), status(200), journey("retry_order")), // replayed
	req(7*sec, 20*ms), // browse: not a placement
}

func TestConsistencyViolations(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) { sc.Expect.Overall = []scenarios.Check{check(allProperties)} })
	in := inputs(sc, slowFault)
	in.Final = final(&consistency.State{
		Orders: []consistency.Order{
			{ID: "o1", Key: "k1", ProductID: "p1", Quantity: 2},
			{ID: "o3", Key: "k3", ProductID: "p1", Quantity: 1},         // only ever rejected
			{ID: "o4", Key: "never-sent", ProductID: "p2", Quantity: 1}, // phantom
			{ID: "o5", Key: "k5", ProductID: "p2", Quantity: 3},
			{ID: "o7", Key: "k7", ProductID: "p1", Quantity: 1},
			{ID: "o7b", Key: "k7", ProductID: "p1", Quantity: 1},
			{ID: "o8", Key: "k8", ProductID: "p2", Quantity: 1},
		},
		Products: map[string]consistency.Product{
			"p1": {Initial: 100, Stock: 95},
			"p2": {Initial: 50, Stock: 44}, // 5 ordered: want 45
		},
		Applied: []consistency.Applied{
			{OrderID: "o1", ProductID: "p1", Quantity: 2, Deliveries: 1},
			{OrderID: "o1", ProductID: "p1", Quantity: 2, Deliveries: 1}, // applied twice
			{OrderID: "o3", ProductID: "p1", Quantity: 1, Deliveries: 1},
			{OrderID: "o4", ProductID: "p2", Quantity: 1, Deliveries: 1},
			{OrderID: "o5", ProductID: "p2", Quantity: 3, Deliveries: 3}, // duplicates absorbed
			{OrderID: "o7", ProductID: "p1", Quantity: 1, Deliveries: 1},
			{OrderID: "o7b", ProductID: "p1", Quantity: 1, Deliveries: 1},
			{OrderID: "o9", ProductID: "p2", Quantity: 1, Deliveries: 1}, // no such order; o8 never applied
		},
	}, 1500*ms)
	got := evaluate(t, sc, placements, in)
	assert.Len(t, got, 4)

	eo := one(t, got, "overall/consistency/exactly_once")
	assert.False(t, eo.Passed)
	assert.Equal(t, 4.0, eo.Figure)
	assert.Equal(t, "exactly-once violated 4 times: 1 acknowledged but lost, 1 rejected but created, 1 duplicated, 1 phantom "+
		"(4 acknowledged, 1 rejected and 2 indeterminate keys; 1 of the indeterminate exist)", eo.Message)
	assert.Equal(t, "order o2 (key k2) was acknowledged but does not exist\n"+
		"order o3 exists although every request with key k3 was rejected\n"+
		"key k7 has 2 orders (o7, o7b)\n"+
		`order o4 has key "never-sent", which no client sent`, eo.Detail)

	st := one(t, got, "overall/consistency/stock_matches")
	assert.False(t, st.Passed)
	assert.Equal(t, 1.0, st.Figure)
	assert.Equal(t, "product p2 has stock 44, want 45 (initial 50 − 5 ordered)", st.Detail)

	da := one(t, got, "overall/consistency/no_double_apply")
	assert.False(t, da.Passed)
	assert.Equal(t, 3.0, da.Figure)
	assert.Equal(t, "inventory events misapplied 3 times: 1 applied twice, 1 applied for no order, 1 never applied", da.Message)
	assert.Contains(t, da.Detail, "2 duplicate deliveries absorbed over 8 events, 1 of them delivered more than once")

	cv := one(t, got, "overall/consistency/converge_within")
	assert.True(t, cv.Passed)
	assert.Equal(t, 1.5, cv.Figure)
	assert.Equal(t, 3.0, cv.Threshold)
}

// Indeterminate placements may go either way; a clean final state passes every property.
func TestConsistencyHolds(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) { sc.Expect.Overall = []scenarios.Check{named("shop", allProperties)} })
	orders := []consistency.Order{
		{ID: "o1", Key: "k1", ProductID: "p1", Quantity: 2},
		{ID: "o2", Key: "k2", ProductID: "p1", Quantity: 1},
		{ID: "o5", Key: "k5", ProductID: "p2", Quantity: 3}, // indeterminate, exists
		{ID: "o7", Key: "k7", ProductID: "p1", Quantity: 1},
		{ID: "o8", Key: "k8", ProductID: "p2", Quantity: 1},
	}
	var applied []consistency.Applied
	for _, o := range orders {
		applied = append(applied, consistency.Applied{OrderID: o.ID, ProductID: o.ProductID, Quantity: o.Quantity, Deliveries: 2})
	}
	in := inputs(sc, slowFault)
	in.Final = final(&consistency.State{Orders: orders, Applied: applied,
		Products: map[string]consistency.Product{"p1": {Initial: 10, Stock: 6}, "p2": {Initial: 10, Stock: 6}}}, 4*sec)
	got := evaluate(t, sc, placements, in)
	for _, name := range []string{"shop/exactly_once", "shop/stock_matches", "shop/no_double_apply"} {
		c := one(t, got, name)
		assert.True(t, c.Passed, "%s: %s\n%s", name, c.Message, c.Detail)
		assert.Equal(t, 0.0, c.Figure, name)
	}
	assert.Equal(t, "each of the 5 orders was applied exactly once (5 duplicate deliveries absorbed over 5 events, 5 of them delivered more than once)",
		got["shop/no_double_apply"].Message)
	cv := one(t, got, "shop/converge_within")
	assert.False(t, cv.Passed)
	assert.Equal(t, "stock and order states converged 4.00 s after the last heal, > 3.00 s", cv.Message)

	in.Final.ConvergedAfter = -1
	got = evaluate(t, sc, placements, in)
	assert.Equal(t, -1.0, got["shop/converge_within"].Figure)
	assert.False(t, got["shop/converge_within"].Passed)

	in.Final = nil
	got = evaluate(t, sc, placements, in)
	for _, c := range got {
		assert.True(t, c.Skipped, c.Name)
		assert.False(t, c.Passed, c.Name)
	}
}
