package harness

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The final state converges only when no order is pending and stock equals initial stock
// minus the orders that were not rejected.
func TestMismatchWaitsForTheSaga(t *testing.T) {
	products := []ProductStock{{ID: "p1", Initial: 10, Stock: 7}}
	tests := []struct {
		name   string
		orders []Order
		want   string
	}{
		{"settled", []Order{{ID: "a", Product: "p1", Quantity: 3, Status: "confirmed"}, {ID: "b", Product: "p1", Quantity: 9, Status: "rejected"}}, ""},
		{"one pending", []Order{{ID: "a", Product: "p1", Quantity: 3, Status: "confirmed"}, {ID: "b", Product: "p1", Quantity: 9, Status: "pending"}},
			"1 orders still pending"},
		{"a rejected order counted", []Order{{ID: "a", Product: "p1", Quantity: 3, Status: "confirmed"}, {ID: "b", Product: "p1", Quantity: 1, Status: "confirmed"}},
			"p1: stock 7, want 6 (initial 10 - ordered 4)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, mismatch(FinalState{Orders: tt.orders, Products: products}))
		})
	}
}
