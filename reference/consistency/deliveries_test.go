package consistency_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/reference/consistency"
	"github.com/faultline-dev/faultline/scenarios"
)

// The events a duplicate count is "over" are the inventory events that arrived, one per
// applied order, not only those that arrived twice: 266 orders applied once each absorbed
// no duplicate over 266 events, not over 0.
func TestDuplicateDeliveriesCountEveryEvent(t *testing.T) {
	sc := scenario(func(sc *scenarios.Scenario) {
		sc.Expect.Overall = []scenarios.Check{check(&consistency.Check{NoDoubleApply: true})}
	})
	tests := []struct {
		name       string
		deliveries func(i int) int64
		want       string
	}{
		{"no duplicates", func(int) int64 { return 1 },
			"each of the 266 orders was applied exactly once (0 duplicate deliveries absorbed over 266 events)"},
		{"some redelivered", func(i int) int64 { return map[bool]int64{true: 3, false: 1}[i < 4] },
			"each of the 266 orders was applied exactly once (8 duplicate deliveries absorbed over 266 events, 4 of them delivered more than once)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &consistency.State{Products: map[string]consistency.Product{"p1": {Initial: 1000, Stock: 1000 - 266}}}
			for i := range 266 {
				id := fmt.Sprintf("o%d", i)
				st.Orders = append(st.Orders, consistency.Order{ID: id, Key: "k" + id, ProductID: "p1", Quantity: 1})
				st.Applied = append(st.Applied, consistency.Applied{OrderID: id, ProductID: "p1", Quantity: 1, Deliveries: tt.deliveries(i)})
			}
			in := inputs(sc, slowFault)
			in.Final = final(st, 0)
			c := one(t, evaluate(t, sc, nil, in), "overall/consistency/no_double_apply")
			assert.True(t, c.Passed, c.Message)
			assert.Equal(t, tt.want, c.Message)
		})
	}
}
