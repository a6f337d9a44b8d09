package consistency

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The final state converges only when no order is pending and stock equals initial stock
// minus the orders that were not rejected.
func TestMismatchWaitsForTheSaga(t *testing.T) {
	products := map[string]Product{"p1": {Initial: 10, Stock: 7}}
	tests := []struct {
		name   string
		orders []Order
		want   string
	}{
		{"settled", []Order{{ID: "a", ProductID: "p1", Quantity: 3, State: "confirmed"}, {ID: "b", ProductID: "p1", Quantity: 9, State: "rejected"}}, ""},
		{"one pending", []Order{{ID: "a", ProductID: "p1", Quantity: 3, State: "confirmed"}, {ID: "b", ProductID: "p1", Quantity: 9, State: "pending"}},
			"1 orders still pending"},
		{"a rejected order counted", []Order{{ID: "a", ProductID: "p1", Quantity: 3, State: "confirmed"}, {ID: "b", ProductID: "p1", Quantity: 1, State: "confirmed"}},
			"p1: stock 7, want 6 (initial 10 - ordered 4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, mismatch(&State{Orders: tt.orders, Products: products}))
		})
	}
}
