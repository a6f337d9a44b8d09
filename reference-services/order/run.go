package order

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/reference-services/lifecycle"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/registry"
	"github.com/faultline-dev/faultline/reference-services/resilience"
)

// Run is the process main for kind "order": it serves OrderService until ctx ends. The
// design file decides the inventory design (async: outbox + relay to the broker; sync:
// ReserveStock inside PlaceOrder), the discovery mode and the policies on the
// order->merchant, order->product and order->broker edges.
func Run(ctx context.Context, n *node.Node) error {
	n.Pending("db", "opening database")
	n.Pending("grpc", "starting grpc server")
	n.Pending("registry", "registering instance")
	n.Pending("deps", "waiting for merchant and product instances")

	d, err := design.Load(n.Config.Design)
	if err != nil {
		n.Ready("init")
		return fmt.Errorf("load design: %w", err)
	}
	async := d.Inventory != InventorySync
	if async {
		n.Pending("broker", "creating stream "+broker.Stream)
	}
	n.Ready("init")
	if async && n.Config.Broker == "" {
		return errors.New("start order: the async inventory design needs a broker address")
	}

	db, err := lifecycle.OpenStore(ctx, n)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	if err := Prepare(ctx, db); err != nil {
		return err
	}
	n.Ready("db")

	// Workers (relay, readiness watchers) stop before the database closes.
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopWorkers()

	reg, err := registry.Connect(wctx, n.Config.Registry, n.Registry, n.Log)
	if err != nil {
		return err
	}
	defer func() { _ = reg.Close() }()
	w, err := reg.Watch(wctx, lifecycle.ServiceName(n), n.Config.Routed, n.Registry)
	if err != nil {
		return err
	}
	merchants, err := dialEdge(n, d, w, config.KindMerchant)
	if err != nil {
		return err
	}
	defer func() { _ = merchants.Close() }()
	products, err := dialEdge(n, d, w, config.KindProduct)
	if err != nil {
		return err
	}
	defer func() { _ = products.Close() }()
	wg.Go(func() { awaitDeps(wctx, n, d, w) })

	opts := []Option{WithInventory(d.Inventory), WithSubject(broker.SubjectOrderPlaced), WithLogger(n.Log)}
	if async {
		relay, pub, err := startRelay(wctx, n, d, db, &wg)
		if err != nil {
			return err
		}
		opts = append(opts, WithNotify(relay.Notify))
		if d.Outbox == design.Off {
			n.Log.Warn("outbox: off: inventory events are published after the order commits and lost when that fails")
			opts = append(opts, WithDirectPublish(pub))
		}
	}
	srv, err := NewServer(db, refv1.NewMerchantServiceClient(merchants), refv1.NewProductServiceClient(products), opts...)
	if err != nil {
		return err
	}
	if !async {
		wg.Go(func() { srv.RunReservationSweep(wctx, time.Second, DefaultReservationExpiry) })
	}

	gs, hs := lifecycle.NewGRPCServer()
	refv1.RegisterOrderServiceServer(gs, srv)
	p, err := lifecycle.Serve(ctx, n, reg, gs, hs, refv1.OrderService_ServiceDesc.ServiceName)
	defer p.Shutdown()
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// dialEdge connects to a dependency through discovery, with the design's policy for
// order->dependency applied to every call.
func dialEdge(n *node.Node, d design.Design, w *registry.Watcher, dep string) (*grpc.ClientConn, error) {
	edge, err := resilience.NewEdge(lifecycle.ServiceName(n), dep, d.Policy(lifecycle.ServiceName(n), dep), n.Registry, resilience.WithLogger(n.Log))
	if err != nil {
		return nil, fmt.Errorf("build %s edge: %w", dep, err)
	}
	cc, err := registry.Dial(w, d.Discovery, n.Config.Balancer, dep, grpc.WithUnaryInterceptor(edge.UnaryClientInterceptor()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", dep, err)
	}
	return cc, nil
}

// awaitDeps marks "deps" ready once merchant and product can be reached: at least one
// instance of each in the discovery cache, or, with server-side discovery, right away (the
// balancer is the only address this process dials).
func awaitDeps(ctx context.Context, n *node.Node, d design.Design, w *registry.Watcher) {
	if d.Discovery == design.DiscoveryServer {
		n.Ready("deps")
		return
	}
	for _, dep := range []string{config.KindMerchant, config.KindProduct} {
		if err := w.WaitFor(ctx, dep, 1); err != nil {
			return
		}
	}
	n.Ready("deps")
}

// startRelay connects to the broker and runs the outbox relay and the saga consumer (which
// records product's decisions) in wg until ctx ends; it returns the relay and its guarded
// publisher. The stream is ensured in the background (the broker may be down at start);
// "broker" becomes ready once it exists. Rows accumulate in the outbox meanwhile, which is
// the point.
func startRelay(ctx context.Context, n *node.Node, d design.Design, db *sql.DB, wg *sync.WaitGroup) (*Relay, Publisher, error) {
	var extra []nats.Option
	if d.Outbox == design.Off {
		// A publish that failed is failed: without this the client would keep it in memory
		// and send it after reconnecting, which only a process that never crashes can rely
		// on. The outbox design does not care either way: its relay retries from the table.
		extra = append(extra, nats.ReconnectBufSize(-1))
	}
	nc, js, err := broker.Connect(ctx, n.Config.Broker, n.Config.Name, n.Registry, n.Log, extra...)
	if err != nil {
		return nil, nil, err
	}
	edge, err := resilience.NewEdge(lifecycle.ServiceName(n), "broker", d.Policy(lifecycle.ServiceName(n), "broker"), n.Registry, resilience.WithLogger(n.Log))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("build broker edge: %w", err)
	}
	pub, err := NewJetStreamPublisher(js, func(ctx context.Context, fn func(context.Context) error) error {
		return resilience.Do(ctx, edge, fn)
	})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	relay, err := NewRelay(db, pub, n.Log, WithRegisterer(n.Registry), WithPublishTimeout(publishTimeout(d.Policy(lifecycle.ServiceName(n), "broker"))))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	// broker.Connect reconnects forever until closed: the connection closes once neither
	// goroutine below uses it any more, or it would outlive the component.
	var users sync.WaitGroup
	users.Go(func() {
		for ctx.Err() == nil {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := broker.EnsureStream(sctx, js)
			cancel()
			if err == nil {
				n.Ready("broker")
				return
			}
			n.Log.Warn("ensure stream", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	})
	users.Go(func() { _ = relay.Run(ctx) })
	saga, err := NewSagaConsumer(db, js, n.Log, nil)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	users.Go(func() { _ = saga.Run(ctx) })
	wg.Go(func() {
		users.Wait()
		nc.Close()
	})
	return relay, pub, nil
}

// jetStreamTimeout is how long a JetStream publish waits for its PubAck when its context has
// no deadline (jetstream's DefaultTimeout).
const jetStreamTimeout = 5 * time.Second

// publishTimeout is the relay's bound on one guarded publish. It leaves room for every attempt
// the order->broker policy is configured for (each bounded by the policy's timeout, or by
// JetStream's own without one) and the backoff between them: a shorter bound would cut the
// retries short, so the design file's policy would not be the one applied. A second of slack
// covers scheduling.
func publishTimeout(p design.Policy) time.Duration {
	attempt := p.Timeout.Std()
	if attempt <= 0 {
		attempt = jetStreamTimeout
	}
	if b := p.Bulkhead; b != nil {
		attempt += b.MaxWait.Std()
	}
	if rl := p.RateLimit; rl != nil {
		attempt += rl.MaxWait.Std()
	}
	attempts, pause := 1, time.Duration(0)
	if r := p.Retry; r != nil {
		attempts = max(r.MaxAttempts, 1)
		pause = time.Duration(float64(max(r.Backoff, r.MaxBackoff).Std()) * (1 + r.Jitter))
	}
	return time.Duration(attempts)*attempt + time.Duration(attempts-1)*pause + time.Second
}
