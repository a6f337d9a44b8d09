package consistency

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A system kept running across an explorer's trials is judged trial by trial: what a
// converged earlier state held is not the trial's, and stock counts from the earlier stock.
func TestRebaseKeepsOnlyWhatIsNew(t *testing.T) {
	base := &State{
		Orders:   []Order{{ID: "a", Key: "k1", ProductID: "p1", Quantity: 3, State: StateConfirmed}},
		Products: map[string]Product{"p1": {Initial: 10, Stock: 7}},
		Applied:  []Applied{{OrderID: "a", ProductID: "p1", Quantity: 3, Deliveries: 1, State: StateConfirmed}},
	}
	now := &State{
		Orders: []Order{
			{ID: "a", Key: "k1", ProductID: "p1", Quantity: 3, State: StateConfirmed},
			{ID: "b", Key: "k2", ProductID: "p1", Quantity: 2, State: StateConfirmed},
		},
		Products: map[string]Product{"p1": {Initial: 10, Stock: 5}, "p2": {Initial: 4, Stock: 4}},
		Applied: []Applied{
			{OrderID: "a", ProductID: "p1", Quantity: 3, Deliveries: 1, State: StateConfirmed},
			{OrderID: "b", ProductID: "p1", Quantity: 2, Deliveries: 1, State: StateConfirmed},
		},
	}
	got := now.Rebase(base).(*State)
	want := &State{
		Orders:   []Order{{ID: "b", Key: "k2", ProductID: "p1", Quantity: 2, State: StateConfirmed}},
		Products: map[string]Product{"p1": {Initial: 7, Stock: 5}, "p2": {Initial: 4, Stock: 4}},
		Applied:  []Applied{{OrderID: "b", ProductID: "p1", Quantity: 2, Deliveries: 1, State: StateConfirmed}},
	}
	assert.Equal(t, want, got)
	assert.Equal(t, "", got.Mismatch(), "the trial's own work adds up")

	// Stock taken twice during the trial still shows once rebased.
	now.Products["p1"] = Product{Initial: 10, Stock: 3}
	assert.Equal(t, "p1: stock 3, want 5 (initial 7 - ordered 2)", now.Rebase(base).Mismatch())
	// An order of base not applied then, applied now, is base's: its stock comes off the
	// starting stock and its row is not the trial's.
	base.Orders = append(base.Orders, Order{ID: "c", Key: "k3", ProductID: "p1", Quantity: 1, State: StatePending})
	now.Orders = append(now.Orders, Order{ID: "c", Key: "k3", ProductID: "p1", Quantity: 1, State: StateConfirmed})
	now.Applied = append(now.Applied, Applied{OrderID: "c", ProductID: "p1", Quantity: 1, Deliveries: 1, State: StateConfirmed})
	now.Products["p1"] = Product{Initial: 10, Stock: 4}
	carried := now.Rebase(base).(*State)
	assert.Equal(t, Product{Initial: 6, Stock: 4}, carried.Products["p1"])
	assert.Len(t, carried.Applied, 1)
	assert.Equal(t, "", carried.Mismatch())
	// A base of another type leaves the state whole.
	assert.Same(t, now, now.Rebase(nil))
}
