package order_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/reference-services/product"
)

// natsBroker is a real embedded JetStream server that a test can stop and start again on the
// same address and data directory, as a broker outage scenario does.
type natsBroker struct {
	t    *testing.T
	dir  string
	addr string
	s    *server.Server
}

func startBroker(t *testing.T) *natsBroker {
	t.Helper()
	b := &natsBroker{t: t, dir: filepath.Join(t.TempDir(), "nats"), addr: "127.0.0.1:0"}
	b.start()
	b.addr = b.s.Addr().String()
	t.Cleanup(b.stop)
	return b
}

func (b *natsBroker) start() {
	s, err := broker.StartEmbedded(context.Background(), b.dir, b.addr)
	require.NoError(b.t, err)
	b.s = s
}

func (b *natsBroker) stop() {
	if b.s != nil {
		b.s.Shutdown()
		b.s.WaitForShutdown()
		b.s = nil
	}
}

func (b *natsBroker) connect(ctx context.Context, name string) jetstream.JetStream {
	b.t.Helper()
	_, js, err := broker.Connect(ctx, "nats://"+b.addr, name, nil, nil)
	require.NoError(b.t, err)
	return js
}

func goRun(t *testing.T, run func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
}

// orderNode is one order replica: its own database handle, server, relay and metrics.
type orderNode struct {
	srv   *order.Server
	db    *sql.DB
	relay *order.Relay
	reg   *prometheus.Registry
}

// startOrderNode starts a replica whose relay publishes with a 500 ms timeout unless opts
// say otherwise.
func startOrderNode(t *testing.T, e *env, js jetstream.JetStream, opts ...order.RelayOption) *orderNode {
	t.Helper()
	pub, err := order.NewJetStreamPublisher(js, nil)
	require.NoError(t, err)
	db := openDB(t, e.orderPath)
	require.NoError(t, order.Prepare(context.Background(), db))
	reg := prometheus.NewRegistry()
	opts = append([]order.RelayOption{order.WithPublishTimeout(500 * time.Millisecond), order.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		order.WithRegisterer(reg)}, opts...)
	relay, err := order.NewRelay(db, pub, nil, opts...)
	require.NoError(t, err)
	srv, err := order.NewServer(db, e.merchants, e.products, order.WithNotify(relay.Notify), order.WithSubject(broker.SubjectOrderPlaced))
	require.NoError(t, err)
	goRun(t, relay.Run)
	return &orderNode{srv: srv, db: db, relay: relay, reg: reg}
}

func startProductConsumer(t *testing.T, e *env, js jetstream.JetStream) {
	t.Helper()
	db := openDB(t, filepath.Join(e.dir, "product.db"))
	goRun(t, product.NewConsumer(db, js, nil, nil).Run)
}

// expectedStock is what the product database must converge to given the stored orders.
func expectedStock(t *testing.T, orderDB *sql.DB) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	for i := range testCatalog.Products {
		want[config.ProductID(i)] = testCatalog.InitialStock
	}
	rows, err := orderDB.QueryContext(context.Background(), `SELECT product_id, SUM(quantity) FROM orders GROUP BY product_id`)
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var id string
		var q int64
		require.NoError(t, rows.Scan(&id, &q))
		want[id] -= q
	}
	require.NoError(t, rows.Err())
	return want
}

func actualStock(t *testing.T, productDB *sql.DB) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for i := range testCatalog.Products {
		got[config.ProductID(i)] = stockOf(t, productDB, config.ProductID(i))
	}
	return got
}

func placeMany(t *testing.T, nodes []*orderNode, prefix string, n int) {
	t.Helper()
	for i := range n {
		p := i % 2 // products 0 and 1: merchants m-01 and m-02 are active
		_, err := nodes[i%len(nodes)].srv.PlaceOrder(context.Background(), place(fmt.Sprintf("%s-%d", prefix, i), p, int64(i%3+1)))
		require.NoError(t, err)
	}
}

// Two order replicas relay, two product replicas consume, every relay may publish a row the
// other already published: stock still converges to initial minus what was ordered, and each
// order is applied exactly once.
func TestOutboxConvergesEndToEnd(t *testing.T) {
	e := newEnv(t)
	b := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	js := b.connect(ctx, "test")
	_, err := broker.EnsureStream(ctx, js)
	require.NoError(t, err)
	nodes := []*orderNode{startOrderNode(t, e, b.connect(ctx, "order-1")), startOrderNode(t, e, b.connect(ctx, "order-2"))}
	startProductConsumer(t, e, b.connect(ctx, "product-1"))
	startProductConsumer(t, e, b.connect(ctx, "product-2"))

	placeMany(t, nodes, "k", 40)
	want := expectedStock(t, nodes[0].db)
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, actualStock(t, e.productDB)) }, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, 40, count(t, e.productDB, `SELECT COUNT(*) FROM applied_events`))
	require.Eventually(t, func() bool {
		n, err := nodes[0].relay.Backlog(ctx)
		return err == nil && n == 0
	}, 30*time.Second, 20*time.Millisecond)
}

// With the broker down, orders are still accepted and wait in the outbox; once the broker is
// back (same address, same data), the backlog drains and stock converges.
func TestBrokerOutageBacklogThenConverges(t *testing.T) {
	e := newEnv(t)
	b := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	js := b.connect(ctx, "test")
	_, err := broker.EnsureStream(ctx, js)
	require.NoError(t, err)
	node := startOrderNode(t, e, b.connect(ctx, "order-1"))
	startProductConsumer(t, e, b.connect(ctx, "product-1"))

	placeMany(t, []*orderNode{node}, "before", 6)
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(expectedStock(t, node.db), actualStock(t, e.productDB))
	}, 30*time.Second, 20*time.Millisecond)
	stockBefore := actualStock(t, e.productDB)

	b.stop()
	placeMany(t, []*orderNode{node}, "during", 10)
	require.Eventually(t, func() bool {
		n, err := node.relay.Backlog(ctx)
		return err == nil && n == 10
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, stockBefore, actualStock(t, e.productDB), "nothing reaches product while the broker is down")

	b.start()
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(expectedStock(t, node.db), actualStock(t, e.productDB))
	}, 45*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		n, err := node.relay.Backlog(ctx)
		return err == nil && n == 0
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, 16, count(t, e.productDB, `SELECT COUNT(*) FROM applied_events`))
}

// During a broker outage every replica exports the service's whole backlog (the rows both
// replicas committed, from the shared table) and sees it grow, although each relay is
// stuck in a publish that would not time out before the test's deadline, as a relay
// under the design's retry policy is for most of an outage; after the broker returns,
// every replica's gauge falls back to 0.
func TestBrokerOutageBacklogOnEveryReplica(t *testing.T) {
	e := newEnv(t)
	b := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	js := b.connect(ctx, "test")
	_, err := broker.EnsureStream(ctx, js)
	require.NoError(t, err)
	stuck := order.WithPublishTimeout(2 * time.Minute)
	nodes := []*orderNode{startOrderNode(t, e, b.connect(ctx, "order-1"), stuck), startOrderNode(t, e, b.connect(ctx, "order-2"), stuck)}
	startProductConsumer(t, e, b.connect(ctx, "product-1"))
	backlogs := func(want float64) func() bool {
		return func() bool {
			for _, n := range nodes {
				if v, ok := backlogGauge(t, n.reg); !ok || v != want {
					return false
				}
			}
			return true
		}
	}

	placeMany(t, nodes, "before", 4)
	require.Eventually(t, backlogs(0), 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(expectedStock(t, nodes[0].db), actualStock(t, e.productDB))
	}, 30*time.Second, 20*time.Millisecond)

	b.stop()
	placeMany(t, nodes, "during", 3)
	require.Eventually(t, backlogs(3), 30*time.Second, 20*time.Millisecond, "3 rows committed, on both replicas")
	placeMany(t, nodes, "during-more", 5)
	require.Eventually(t, backlogs(8), 30*time.Second, 20*time.Millisecond, "the backlog grows while the broker is away")

	b.start()
	require.Eventually(t, backlogs(0), 60*time.Second, 50*time.Millisecond, "drained on every replica after recovery")
	require.Eventually(t, func() bool {
		return assert.ObjectsAreEqual(expectedStock(t, nodes[0].db), actualStock(t, e.productDB))
	}, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, 12, count(t, e.productDB, `SELECT COUNT(*) FROM applied_events`))
}
