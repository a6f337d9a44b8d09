package product

import (
	"context"
	"fmt"
	"sync"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/lifecycle"
	"github.com/faultline-dev/faultline/reference-services/node"
)

// Run is the process main for kind "product": it serves ProductService and, when a broker is
// configured, consumes orders.placed into the inventory, until ctx ends. The "broker"
// readiness condition is met once the durable consumer exists.
func Run(ctx context.Context, n *node.Node) error {
	n.Pending("db", "opening database")
	n.Pending("grpc", "starting grpc server")
	n.Pending("registry", "registering instance")
	if n.Config.Broker != "" {
		n.Pending("broker", "creating inventory consumer")
	}
	n.Ready("init")

	db, err := lifecycle.OpenStore(ctx, n)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if err := Prepare(ctx, db, lifecycle.Catalog(n)); err != nil {
		return fmt.Errorf("prepare product store: %w", err)
	}
	n.Ready("db")
	metrics, err := NewMetrics(n.Registry)
	if err != nil {
		return err
	}

	// Workers stop before the database closes (defers run in reverse order).
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopWorkers()
	if n.Config.Broker != "" {
		nc, js, err := broker.Connect(wctx, n.Config.Broker, n.Config.Name, n.Registry, n.Log)
		if err != nil {
			return err
		}
		copts := []ConsumerOption{WithOnReady(func() { n.Ready("broker") })}
		d, err := design.Load(n.Config.Design)
		if err != nil {
			nc.Close()
			return fmt.Errorf("load design: %w", err)
		}
		if d.ConsumerIdempotency == design.Off {
			n.Log.Warn("consumer_idempotency: off: every redelivered inventory event takes stock again")
			copts = append(copts, WithoutConsumerIdempotency())
		}
		c := NewConsumer(db, js, metrics, n.Log, copts...)
		wg.Go(func() {
			// Broker.Connect reconnects forever until closed: close it once the consumer has
			// stopped fetching and acking, or it outlives the component.
			defer nc.Close()
			_ = c.Run(wctx)
		})
	} else {
		n.Log.Warn("no broker configured: inventory changes only through ReserveStock")
	}

	gs, hs := lifecycle.NewGRPCServer()
	refv1.RegisterProductServiceServer(gs, NewServer(db, metrics))
	p, err := lifecycle.Serve(ctx, n, nil, gs, hs, refv1.ProductService_ServiceDesc.ServiceName)
	defer p.Shutdown()
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}
