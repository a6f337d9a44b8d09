package order_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/order"
)

// startSaga runs one order replica's saga consumer on its own broker connection.
func startSaga(t *testing.T, n *orderNode, b *natsBroker, name string) {
	t.Helper()
	c, err := order.NewSagaConsumer(n.db, b.connect(context.Background(), name), nil, nil)
	require.NoError(t, err)
	goRun(t, c.Run)
}

// The saga on real processes' parts (embedded JetStream, SQLite, gRPC): 200 concurrent
// orders of one unit each for a product with 50 in stock, placed through two order
// replicas, consumed by two product replicas, with the broker down for a while in the
// middle of the burst. At most 50 are confirmed, every other order is rejected, none stays
// pending, the confirmed quantities are exactly what left the stock, and the stock, sampled
// all along, is never below zero.
func TestSagaOversubscribedBurstNeverOversells(t *testing.T) {
	e := newEnv(t)
	const stock, orders = 50, 200
	p := config.ProductID(0)
	_, err := e.productDB.ExecContext(context.Background(), `UPDATE products SET stock = ?, initial_stock = ? WHERE id = ?`, stock, stock, p)
	require.NoError(t, err)
	b := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, err = broker.EnsureStream(ctx, b.connect(ctx, "test"))
	require.NoError(t, err)
	nodes := []*orderNode{startOrderNode(t, e, b.connect(ctx, "order-1")), startOrderNode(t, e, b.connect(ctx, "order-2"))}
	startSaga(t, nodes[0], b, "saga-1")
	startSaga(t, nodes[1], b, "saga-2")
	startProductConsumer(t, e, b.connect(ctx, "product-1"))
	startProductConsumer(t, e, b.connect(ctx, "product-2"))

	// Sample the stock all along: it must never be seen below zero.
	var minSeen atomic.Int64
	minSeen.Store(stock)
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			var s int64
			if err := e.productDB.QueryRowContext(sampling, `SELECT stock FROM products WHERE id = ?`, p).Scan(&s); err == nil && s < minSeen.Load() {
				minSeen.Store(s)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	burst := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Go(func() {
				_, err := nodes[i%2].srv.PlaceOrder(ctx, place(fmt.Sprintf("burst-%d", i), 0, 1))
				assert.NoError(t, err, "an order is accepted as pending even when it cannot be honoured")
			})
		}
		wg.Wait()
	}
	burst(0, orders/2)
	b.stop()
	burst(orders/2, orders)
	time.Sleep(500 * time.Millisecond)
	b.start()

	statuses := func() map[string]int {
		got := map[string]int{}
		rows, err := nodes[0].db.QueryContext(ctx, `SELECT status, COUNT(*) FROM orders GROUP BY status`)
		require.NoError(t, err)
		defer func() { _ = rows.Close() }()
		for rows.Next() {
			var s string
			var n int
			require.NoError(t, rows.Scan(&s, &n))
			got[s] = n
		}
		return got
	}
	require.Eventually(t, func() bool { return statuses()[order.StatusPending] == 0 }, 60*time.Second, 50*time.Millisecond,
		"every order converges to confirmed or rejected")
	stopSampling()
	<-sampled

	got := statuses()
	assert.Equal(t, orders, got[order.StatusConfirmed]+got[order.StatusRejected], "%v", got)
	assert.Equal(t, stock, got[order.StatusConfirmed], "all 50 units sold, no more")
	assert.Equal(t, int64(0), stockOf(t, e.productDB, p))
	assert.GreaterOrEqual(t, minSeen.Load(), int64(0), "stock was seen below zero")
	var confirmedQty int64
	require.NoError(t, nodes[0].db.QueryRowContext(ctx, `SELECT COALESCE(SUM(quantity), 0) FROM orders WHERE status = ?`, order.StatusConfirmed).Scan(&confirmedQty))
	assert.Equal(t, int64(stock)-stockOf(t, e.productDB, p), confirmedQty, "confirmed quantities are what left the stock")
	assert.Equal(t, orders-stock, count(t, e.productDB, `SELECT COUNT(*) FROM applied_events WHERE outcome = 'rejected'`))

	// The client reads the decision with GetOrder (GET /orders/{id} at the gateway).
	var id string
	require.NoError(t, nodes[0].db.QueryRowContext(ctx, `SELECT id FROM orders WHERE idempotency_key = 'burst-0'`).Scan(&id))
	o, err := nodes[1].srv.GetOrder(ctx, &refv1.GetOrderRequest{Id: id})
	require.NoError(t, err)
	assert.Contains(t, []string{order.StatusConfirmed, order.StatusRejected}, o.GetStatus())
}

// An order of 1,000,000 units against a stock of 100 is accepted as pending, rejected by
// product, and read back as rejected; the stock is untouched.
func TestSagaRejectsAnOrderTheStockCannotHonour(t *testing.T) {
	e := newEnv(t)
	b := startBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, err := broker.EnsureStream(ctx, b.connect(ctx, "test"))
	require.NoError(t, err)
	n := startOrderNode(t, e, b.connect(ctx, "order-1"))
	startSaga(t, n, b, "saga-1")
	startProductConsumer(t, e, b.connect(ctx, "product-1"))

	r, err := n.srv.PlaceOrder(ctx, place("million", 1, 1_000_000))
	require.NoError(t, err)
	assert.Equal(t, order.StatusPending, r.GetOrder().GetStatus())
	require.Eventually(t, func() bool {
		o, err := n.srv.GetOrder(ctx, &refv1.GetOrderRequest{Id: r.GetOrder().GetId()})
		return err == nil && o.GetStatus() == order.StatusRejected
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, testCatalog.InitialStock, stockOf(t, e.productDB, config.ProductID(1)))
}
