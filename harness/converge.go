package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/system"
)

// convergePoll is how often the final state is read while waiting for it to add up.
const convergePoll = 200 * time.Millisecond

// FinalState is the system's state after the load, read straight from the services: every
// order, stock per product and the inventory events product applied.
type FinalState struct {
	Orders   []Order        `json:"orders"`
	Products []ProductStock `json:"products"`
	Applied  []Applied      `json:"applied"`
	// Converged reports that stock equalled initial stock minus the ordered quantities
	// before the bound; ConvergedAt is that moment on the run's clock and ConvergedAfter
	// how long after the load ended (when nothing new could be ordered) it was.
	Converged      bool          `json:"converged"`
	ConvergedAt    time.Duration `json:"converged_at"`
	ConvergedAfter time.Duration `json:"converged_after"`
	// Mismatch describes the last difference seen when not converged.
	Mismatch string `json:"mismatch,omitempty"`
	// Err is why the state could not be read, if it could not.
	Err string `json:"err,omitempty"`
}

// Order is one order as stored, with its status: pending until product decided it (async
// design), then confirmed or rejected.
type Order struct {
	ID, Key, Product string
	Quantity         int64
	Status           string
}

// ProductStock is one product's inventory.
type ProductStock struct {
	ID             string
	Stock, Initial int64
}

// Applied is one inventory event product decided: its outcome (confirmed, rejected or
// released) and how often it took the stock.
type Applied struct {
	OrderID, Product     string
	Quantity, Deliveries int64
	Outcome              string
	Applications         int64
}

// converge reads the final state until stock adds up or the bound passes, and notes the
// outcome in the history.
func (r *runner) converge(ctx context.Context) FinalState {
	loadEnd := r.since()
	deadline := time.Now().Add(r.o.convergeBound)
	var st FinalState
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := ReadFinalState(rctx, r.sys)
		cancel()
		at := r.since()
		if err != nil {
			st.Err = err.Error()
		} else {
			st = got
			if msg := mismatch(st); msg == "" {
				st.Converged, st.ConvergedAt, st.ConvergedAfter = true, at, max(at-loadEnd, 0)
				break
			} else {
				st.Mismatch = msg
			}
		}
		if time.Now().After(deadline) || !sleepUntil(ctx, time.Now().Add(convergePoll)) {
			break
		}
	}
	note := history.NoteEvent("final state")
	note.Note.Attrs = map[string]string{
		"converged": fmt.Sprint(st.Converged), "converged_after": st.ConvergedAfter.String(),
		"orders": fmt.Sprint(len(st.Orders)), "applied": fmt.Sprint(len(st.Applied)),
	}
	if st.Mismatch != "" && !st.Converged {
		note.Note.Attrs["mismatch"] = st.Mismatch
	}
	if st.Err != "" {
		note.Note.Attrs["err"] = st.Err
	}
	_ = r.hist.Write(note)
	return st
}

// mismatch returns "" when no order is pending and every product's stock equals its
// initial stock minus the quantities of its orders that were not rejected, else what is
// still open: the pending orders, or the first product that does not add up.
func mismatch(st FinalState) string {
	ordered := map[string]int64{}
	pending := 0
	for _, o := range st.Orders {
		switch o.Status {
		case order.StatusPending:
			pending++
		case order.StatusRejected:
			continue
		}
		ordered[o.Product] += o.Quantity
	}
	if pending > 0 {
		return fmt.Sprintf("%d orders still pending", pending)
	}
	for _, p := range st.Products {
		if want := p.Initial - ordered[p.ID]; p.Stock != want {
			return fmt.Sprintf("%s: stock %d, want %d (initial %d - ordered %d)", p.ID, p.Stock, want, p.Initial, ordered[p.ID])
		}
	}
	return ""
}

// ReadFinalState reads every order, every product's stock and every applied inventory
// event from the first order and product instances that answer (replicas share storage).
func ReadFinalState(ctx context.Context, sys *system.System) (FinalState, error) {
	var st FinalState
	var errs []error
	read := func(kind string, fn func(conn *grpc.ClientConn) error) bool {
		for _, c := range sys.Components() {
			if c.Kind != kind || !sys.Running(c.Name) {
				continue
			}
			conn, err := grpc.NewClient(c.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				errs = append(errs, fmt.Errorf("dial %s: %w", c.Name, err))
				continue
			}
			err = fn(conn)
			_ = conn.Close()
			if err == nil {
				return true
			}
			errs = append(errs, fmt.Errorf("read %s: %w", c.Name, err))
		}
		return false
	}
	okOrders := read(config.KindOrder, func(conn *grpc.ClientConn) error {
		stream, err := refv1.NewOrderServiceClient(conn).ListOrders(ctx, &refv1.ListOrdersRequest{})
		if err != nil {
			return err
		}
		var out []Order
		for {
			o, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			out = append(out, Order{ID: o.GetId(), Key: o.GetIdempotencyKey(), Product: o.GetProductId(), Quantity: o.GetQuantity(), Status: o.GetStatus()})
		}
		st.Orders = out
		return nil
	})
	okProducts := read(config.KindProduct, func(conn *grpc.ClientConn) error {
		cli := refv1.NewProductServiceClient(conn)
		resp, err := cli.ListProducts(ctx, &refv1.ListProductsRequest{})
		if err != nil {
			return err
		}
		var ps []ProductStock
		for _, p := range resp.GetProducts() {
			ps = append(ps, ProductStock{ID: p.GetId(), Stock: p.GetStock(), Initial: p.GetInitialStock()})
		}
		stream, err := cli.AppliedEvents(ctx, &refv1.AppliedEventsRequest{})
		if err != nil {
			return err
		}
		var applied []Applied
		for {
			a, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			applied = append(applied, Applied{OrderID: a.GetOrderId(), Product: a.GetProductId(), Quantity: a.GetQuantity(), Deliveries: a.GetDeliveries(),
				Outcome: a.GetOutcome(), Applications: a.GetApplications()})
		}
		st.Products, st.Applied = ps, applied
		return nil
	})
	if !okOrders || !okProducts {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no order or product instance is running"))
		}
		return st, fmt.Errorf("read final state: %w", errors.Join(errs...))
	}
	return st, nil
}
