package reference

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/system"
)

// ReadFinalState reads every order, every product's stock and every applied inventory
// event from the first order and product instances that answer (replicas share storage),
// with the saga's statuses named as the checks name them.
func ReadFinalState(ctx context.Context, sys *system.System) (sut.FinalState, error) {
	var st sut.FinalState
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
		var out []sut.Order
		for {
			o, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			out = append(out, sut.Order{ID: o.GetId(), Key: o.GetIdempotencyKey(), Product: o.GetProductId(), Quantity: o.GetQuantity(), Status: SagaState(o.GetStatus())})
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
		var ps []sut.ProductStock
		for _, p := range resp.GetProducts() {
			ps = append(ps, sut.ProductStock{ID: p.GetId(), Stock: p.GetStock(), Initial: p.GetInitialStock()})
		}
		stream, err := cli.AppliedEvents(ctx, &refv1.AppliedEventsRequest{})
		if err != nil {
			return err
		}
		var applied []sut.Applied
		for {
			a, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			applied = append(applied, sut.Applied{OrderID: a.GetOrderId(), Product: a.GetProductId(), Quantity: a.GetQuantity(), Deliveries: a.GetDeliveries(),
				Outcome: SagaState(a.GetOutcome()), Applications: a.GetApplications()})
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

// SagaState maps the reference system's order statuses and inventory outcomes onto the
// states the consistency check judges; an unknown one passes through, for the check to
// report.
func SagaState(s string) string {
	switch s {
	case refv1.StatusPending:
		return checks.StatePending
	case refv1.StatusConfirmed: // an event outcome and an order status alike
		return checks.StateConfirmed
	case refv1.StatusRejected:
		return checks.StateRejected
	case refv1.OutcomeReleased:
		return checks.StateReleased
	}
	return s
}
