package consistency

import (
	"fmt"
	"maps"
	"slices"

	"github.com/faultline-dev/faultline/sut"
)

// State is the reference system's state, read straight from its services: every order,
// stock per product and the inventory events applied. It is what the reference adapter's
// sut.StateReader returns, what the harness watches converge, and what the kind judges.
type State struct {
	Orders   []Order            `json:"orders"`
	Products map[string]Product `json:"products"` // by product id
	Applied  []Applied          `json:"applied"`
}

// Order is one order that exists at the end of the run.
type Order struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	ProductID string `json:"product"`
	Quantity  int64  `json:"quantity"`
	// State is the order's place in its saga, one of the State constants; empty for a
	// system without one (the order is then taken to hold its stock).
	State string `json:"state,omitempty"`
}

// Product is one product's stock at the end of the run and when the run began.
type Product struct {
	Stock   int64 `json:"stock"`
	Initial int64 `json:"initial"`
}

// Applied is one row of the product service's applied-events table: an order's stock
// decrement, and how many times its event was delivered (duplicates absorbed included).
type Applied struct {
	OrderID    string `json:"order"`
	ProductID  string `json:"product"`
	Quantity   int64  `json:"quantity"`
	Deliveries int64  `json:"deliveries"`
	// State is the decision recorded with the row: StateConfirmed (or empty) took the
	// stock, StateRejected and StateReleased took none.
	State string `json:"state,omitempty"`
	// Applications is how often the stock was taken for the row (0 is read as 1 for a
	// confirmed row, as for a system that does not count).
	Applications int64 `json:"applications,omitempty"`
}

// While orders are still placed, the state never adds up exactly at an instant: an order
// placed a millisecond before a read has not reached stock yet, and orders, stock and
// applied events are read one after the other. So a poll holds when every order of the
// previous snapshot was applied exactly once, with its product and quantity, and every
// product's stock is at most its initial stock minus the quantities of those orders that
// took stock (see settled). A system that records no applied events is judged by the
// stock bound alone. Once the load is over, the state has converged when every order read
// is applied, none is pending, and stock equals initial stock minus the quantities of
// every order not rejected, exactly (Mismatch).

// Holds returns "" when every order of prev is applied in s exactly once with its product
// and quantity and stock reflects them, else the first that is not.
func (s *State) Holds(prev sut.State) string {
	p, ok := prev.(*State)
	if !ok {
		return fmt.Sprintf("the previous state is a %T, not the reference system's", prev)
	}
	return settled(p.Orders, s)
}

// Mismatch returns "" when every order read is applied (an order still in flight could
// otherwise hide one applied twice from the stock comparison), none is pending, and every
// product's stock equals its initial stock minus the quantities of its orders that were
// not rejected; else what is still open: an order not applied, the pending orders, or
// the first product that does not add up.
func (s *State) Mismatch() string {
	if msg := settled(s.Orders, s); msg != "" {
		return msg
	}
	return mismatch(s)
}

// mismatch returns "" when no order is pending and every product's stock equals its
// initial stock minus the quantities of its orders that were not rejected, else what is
// still open: the pending orders, or the first product that does not add up.
func mismatch(s *State) string {
	ordered := map[string]int64{}
	pending := 0
	for _, o := range s.Orders {
		switch o.State {
		case StatePending:
			pending++
		case StateRejected:
			continue
		}
		ordered[o.ProductID] += o.Quantity
	}
	if pending > 0 {
		return fmt.Sprintf("%d orders still pending", pending)
	}
	for _, id := range slices.Sorted(maps.Keys(s.Products)) {
		p := s.Products[id]
		if want := p.Initial - ordered[id]; p.Stock != want {
			return fmt.Sprintf("%s: stock %d, want %d (initial %d - ordered %d)", id, p.Stock, want, p.Initial, ordered[id])
		}
	}
	return ""
}

// Summary counts the orders and applied events, for the run's history.
func (s *State) Summary() map[string]string {
	return map[string]string{"orders": fmt.Sprint(len(s.Orders)), "applied": fmt.Sprint(len(s.Applied))}
}

// settled returns "" when every order of prev is applied in st exactly once with its
// product and quantity and stock reflects them, else the first that is not. An order the
// saga rejected (or whose reservation was released) took no stock, so it does not lower
// the bound; an event whose outcome is not recorded counts as taking stock.
func settled(prev []Order, st *State) string {
	rows := make(map[string]int, len(st.Applied))
	byOrder := make(map[string]Applied, len(st.Applied))
	for _, a := range st.Applied {
		rows[a.OrderID]++
		byOrder[a.OrderID] = a
	}
	ordered := map[string]int64{}
	for _, o := range prev {
		if len(st.Applied) == 0 {
			ordered[o.ProductID] += o.Quantity
			continue
		}
		a, ok := byOrder[o.ID]
		switch {
		case !ok:
			return fmt.Sprintf("order %s is not applied to stock yet", o.ID)
		case rows[o.ID] > 1:
			return fmt.Sprintf("order %s is applied %d times", o.ID, rows[o.ID])
		case a.Applications > 1:
			return fmt.Sprintf("order %s took stock %d times", o.ID, a.Applications)
		case a.ProductID != o.ProductID || a.Quantity != o.Quantity:
			return fmt.Sprintf("order %s is applied as %d of %s, but is %d of %s", o.ID, a.Quantity, a.ProductID, o.Quantity, o.ProductID)
		}
		if a.State != StateRejected && a.State != StateReleased {
			ordered[o.ProductID] += o.Quantity
		}
	}
	for _, id := range slices.Sorted(maps.Keys(st.Products)) {
		p := st.Products[id]
		if p.Stock < 0 {
			return fmt.Sprintf("%s: stock %d, below zero", id, p.Stock)
		}
		if most := p.Initial - ordered[id]; p.Stock > most {
			return fmt.Sprintf("%s: stock %d, at most %d once its orders are not applied yet (initial %d - ordered %d)", id, p.Stock, most, p.Initial, ordered[id])
		}
	}
	return ""
}

var _ sut.State = (*State)(nil)

// Rebase returns the part of s that is new since base: the orders and applied rows base
// did not hold, and each product's stock counted from its stock in base, less what base's
// orders still in flight then took since. The result adds up exactly when the work since
// base does, so the check judges one trial, not the system's life.
func (s *State) Rebase(base sut.State) sut.State {
	b, ok := base.(*State)
	if !ok || b == nil {
		return s
	}
	oldOrders := make(map[string]bool, len(b.Orders))
	for _, o := range b.Orders {
		oldOrders[o.ID] = true
	}
	oldApplied := make(map[string]bool, len(b.Applied))
	for _, a := range b.Applied {
		oldApplied[a.OrderID] = true
	}
	out := &State{Products: make(map[string]Product, len(s.Products))}
	for _, o := range s.Orders {
		if !oldOrders[o.ID] {
			out.Orders = append(out.Orders, o)
		}
	}
	// An order of base still in flight then (not applied yet) is base's work finishing
	// now: its row is not the trial's, and the stock it takes comes off the starting stock.
	carried := map[string]int64{}
	for _, a := range s.Applied {
		switch {
		case oldApplied[a.OrderID]:
		case oldOrders[a.OrderID]:
			carried[a.ProductID] += taken(a)
		default:
			out.Applied = append(out.Applied, a)
		}
	}
	for id, p := range s.Products {
		if bp, ok := b.Products[id]; ok {
			p.Initial = bp.Stock - carried[id]
		}
		out.Products[id] = p
	}
	return out
}

var _ sut.Rebaser = (*State)(nil)
