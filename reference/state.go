package reference

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference/consistency"
	"github.com/faultline-dev/faultline/system"
)

// ReadState reads every order, every product's stock and every applied inventory event
// from the first order and product instances that answer (replicas share storage), with
// the saga's statuses named as the consistency kind names them.
func ReadState(ctx context.Context, sys *system.System) (*consistency.State, error) {
	st := &consistency.State{Products: map[string]consistency.Product{}}
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
		var out []consistency.Order
		err = drain(stream.Recv, func(o *refv1.Order) {
			out = append(out, consistency.Order{ID: o.GetId(), Key: o.GetIdempotencyKey(), ProductID: o.GetProductId(), Quantity: o.GetQuantity(), State: SagaState(o.GetStatus())})
		})
		st.Orders = out
		return err
	})
	okProducts := read(config.KindProduct, func(conn *grpc.ClientConn) error {
		cli := refv1.NewProductServiceClient(conn)
		resp, err := cli.ListProducts(ctx, &refv1.ListProductsRequest{})
		if err != nil {
			return err
		}
		ps := map[string]consistency.Product{}
		for _, p := range resp.GetProducts() {
			ps[p.GetId()] = consistency.Product{Stock: p.GetStock(), Initial: p.GetInitialStock()}
		}
		stream, err := cli.AppliedEvents(ctx, &refv1.AppliedEventsRequest{})
		if err != nil {
			return err
		}
		var applied []consistency.Applied
		err = drain(stream.Recv, func(a *refv1.AppliedEvent) {
			applied = append(applied, consistency.Applied{OrderID: a.GetOrderId(), ProductID: a.GetProductId(), Quantity: a.GetQuantity(), Deliveries: a.GetDeliveries(),
				State: SagaState(a.GetOutcome()), Applications: a.GetApplications()})
		})
		st.Products, st.Applied = ps, applied
		return err
	})
	if !okOrders || !okProducts {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no order or product instance is running"))
		}
		return st, fmt.Errorf("read final state: %w", errors.Join(errs...))
	}
	return st, nil
}

// SagaState maps the reference system's order statuses and inventory outcomes onto the
// states the consistency check judges; an unknown one passes through, for the check to
// report.
func SagaState(s string) string {
	switch s {
	case refv1.StatusPending:
		return consistency.StatePending
	case refv1.StatusConfirmed: // an event outcome and an order status alike
		return consistency.StateConfirmed
	case refv1.StatusRejected:
		return consistency.StateRejected
	case refv1.OutcomeReleased:
		return consistency.StateReleased
	}
	return s
}

// drain reads a server stream to its end, handing each message to each.
func drain[T any](recv func() (T, error), each func(T)) error {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		each(m)
	}
}
