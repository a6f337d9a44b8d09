package consistency_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference/consistency"
	"github.com/faultline-dev/faultline/scenarios"
)

// The saga's properties at their boundaries: a final state with every order decided and
// stock exactly used up passes; one pending order, one unit oversold, one event applied
// twice or one rejected order that took stock each fails, naming the anomaly.
func TestConsistencySaga(t *testing.T) {
	spec := &consistency.Check{StockMatches: true, NoDoubleApply: true, Settled: true}
	sc := scenario(func(sc *scenarios.Scenario) { sc.Expect.Overall = []scenarios.Check{named("saga", spec)} })
	// Stock 3: o1 (2) and o2 (1) confirmed use it up, o3 rejected took nothing.
	good := func() *consistency.State {
		return &consistency.State{
			Orders: []consistency.Order{
				{ID: "o1", Key: "k1", ProductID: "p1", Quantity: 2, State: consistency.StateConfirmed},
				{ID: "o2", Key: "k2", ProductID: "p1", Quantity: 1, State: consistency.StateConfirmed},
				{ID: "o3", Key: "k3", ProductID: "p1", Quantity: 1, State: consistency.StateRejected},
			},
			Applied: []consistency.Applied{
				{OrderID: "o1", ProductID: "p1", Quantity: 2, Deliveries: 1, State: consistency.StateConfirmed, Applications: 1},
				{OrderID: "o2", ProductID: "p1", Quantity: 1, Deliveries: 2, State: consistency.StateConfirmed, Applications: 1},
				{OrderID: "o3", ProductID: "p1", Quantity: 1, Deliveries: 1, State: consistency.StateRejected},
				// A sync reservation released after its client gave up: no order, no stock.
				{OrderID: "gone", ProductID: "p1", Quantity: 4, Deliveries: 1, State: consistency.StateReleased},
			},
			Products: map[string]consistency.Product{"p1": {Initial: 3, Stock: 0}},
		}
	}
	tests := []struct {
		name   string
		mutate func(f *consistency.State)
		// want maps a property to "" (passes) or a substring of its failure message.
		want map[string]string
	}{
		{"every order settled, stock used up exactly", func(*consistency.State) {},
			map[string]string{"settled": "", "stock_matches": "", "no_double_apply": ""}},
		{"a pending order whose event never arrived is a lost event", func(f *consistency.State) {
			f.Orders = append(f.Orders, consistency.Order{ID: "o4", Key: "k4", ProductID: "p1", Quantity: 1, State: consistency.StatePending})
			f.Products["p1"] = consistency.Product{Initial: 4, Stock: 1}
		}, map[string]string{"settled": "1 lost", "stock_matches": "1 products off", "no_double_apply": "1 never applied"}},
		{"a pending order that product decided lost its answer", func(f *consistency.State) {
			f.Orders[1].State = consistency.StatePending
		}, map[string]string{"settled": "1 pending", "stock_matches": "", "no_double_apply": ""}},
		{"one unit oversold", func(f *consistency.State) {
			f.Orders[2].State = consistency.StateConfirmed
			f.Applied[2] = consistency.Applied{OrderID: "o3", ProductID: "p1", Quantity: 1, Deliveries: 1, State: consistency.StateConfirmed, Applications: 1}
			f.Products["p1"] = consistency.Product{Initial: 3, Stock: -1}
		}, map[string]string{"settled": "1 oversold", "stock_matches": "1 products below zero", "no_double_apply": ""}},
		{"an event applied on two deliveries", func(f *consistency.State) {
			f.Applied[1].Applications = 2
			f.Products["p1"] = consistency.Product{Initial: 4, Stock: 0}
		}, map[string]string{"settled": "", "stock_matches": "1 products off", "no_double_apply": "1 applied twice"}},
		{"a rejected order that took stock", func(f *consistency.State) {
			f.Applied[2].State = consistency.StateConfirmed
			f.Products["p1"] = consistency.Product{Initial: 4, Stock: 0}
		}, map[string]string{"settled": "", "stock_matches": "1 products off", "no_double_apply": "1 rejected but applied"}},
		{"a confirmed order whose row took nothing", func(f *consistency.State) {
			f.Applied[0].State = consistency.StateRejected
			f.Applied[0].Applications = 0
		}, map[string]string{"settled": "", "no_double_apply": "1 confirmed but not applied"}},
		{"stock taken for an order that does not exist", func(f *consistency.State) {
			f.Applied[3].State = consistency.StateConfirmed
		}, map[string]string{"no_double_apply": "1 applied for no order"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := inputs(sc, slowFault)
			f := good()
			tt.mutate(f)
			in.Final = final(f, 0)
			got := evaluate(t, sc, placements, in)
			if tt.name == "every order settled, stock used up exactly" {
				assert.Equal(t, "each of the 3 orders was applied exactly once, 1 of them as a rejection that took no stock "+
					"(1 duplicate deliveries absorbed over 4 events, 1 of them delivered more than once); 1 reservations of orders that never committed were released",
					one(t, got, "saga/no_double_apply").Message)
			}
			for prop, want := range tt.want {
				c := one(t, got, "saga/"+prop)
				if want == "" {
					assert.True(t, c.Passed, "%s: %s\n%s", prop, c.Message, c.Detail)
					continue
				}
				assert.False(t, c.Passed, prop)
				assert.Contains(t, c.Message, want, prop)
			}
		})
	}
}

// The settled message names every state.
func TestConsistencySettledMessage(t *testing.T) {
	spec := &consistency.Check{Settled: true}
	sc := scenario(func(sc *scenarios.Scenario) { sc.Expect.Overall = []scenarios.Check{named("saga", spec)} })
	in := inputs(sc, slowFault)
	in.Final = final(&consistency.State{
		Orders: []consistency.Order{
			{ID: "o1", Key: "k1", ProductID: "p1", Quantity: 1, State: consistency.StateConfirmed},
			{ID: "o2", Key: "k2", ProductID: "p1", Quantity: 1, State: consistency.StatePending},
		},
		Products: map[string]consistency.Product{"p1": {Initial: 3, Stock: 1}},
	}, 0)
	c := one(t, evaluate(t, sc, placements, in), "saga/settled")
	assert.Equal(t, "the saga did not settle: 1 lost (1 confirmed, 0 rejected, 1 pending); 1 inventory events lost", c.Message)
	assert.Equal(t, "order o2 (key k2) is still pending: its event was lost, nothing ever decided it", c.Detail)
}

// The weak-design scenarios of the catalog expect their failure for one reason: the
// reason they state matches the message the check gives for exactly that anomaly (lost
// events; doubly applied events), and not the message of the other anomaly, so a run
// that failed some other way does not count as the expected failure.
func TestWeakDesignReasonsNameTheAnomaly(t *testing.T) {
	lost := &consistency.State{
		Orders:   []consistency.Order{{ID: "o1", Key: "k1", ProductID: "p1", Quantity: 1, State: consistency.StatePending}},
		Products: map[string]consistency.Product{"p1": {Initial: 3, Stock: 3}},
	}
	twice := &consistency.State{
		Orders:   []consistency.Order{{ID: "o1", Key: "k1", ProductID: "p1", Quantity: 1, State: consistency.StateConfirmed}},
		Applied:  []consistency.Applied{{OrderID: "o1", ProductID: "p1", Quantity: 1, Deliveries: 2, State: consistency.StateConfirmed, Applications: 2}},
		Products: map[string]consistency.Product{"p1": {Initial: 3, Stock: 1}},
	}
	tests := []struct {
		scenario   string
		anomaly    *consistency.State
		notThisOne *consistency.State
	}{
		{"broker-outage-no-outbox", lost, twice},
		{"duplicate-delivery-no-idempotency", twice, lost},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			sc, err := scenarios.Builtin(tt.scenario)
			require.NoError(t, err)
			require.NotNil(t, sc.ExpectFailure)
			ef := sc.ExpectFailure
			re := regexp.MustCompile(ef.Reason)
			messages := func(f *consistency.State) []string {
				in := inputs(sc, slowFault)
				in.Final = final(f, 0)
				var out []string
				for name, c := range evaluate(t, sc, placements, in) {
					if strings.HasPrefix(name, ef.Check+"/") && !c.Passed {
						out = append(out, c.Message)
					}
				}
				return out
			}
			matched := false
			for _, m := range messages(tt.anomaly) {
				matched = matched || re.MatchString(m)
			}
			assert.True(t, matched, "%q matches none of %q", ef.Reason, messages(tt.anomaly))
			for _, m := range messages(tt.notThisOne) {
				assert.False(t, re.MatchString(m), "%q also matches the other anomaly's %q", ef.Reason, m)
			}
		})
	}
}
