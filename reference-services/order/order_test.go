package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/reference-services/store"
)

func TestPlaceOrderRejects(t *testing.T) {
	e := newEnv(t)
	s, db := e.orderReplica(t)
	tests := []struct {
		name string
		req  *refv1.PlaceOrderRequest
		want codes.Code
	}{
		{"no idempotency key", place("", 0, 1), codes.InvalidArgument},
		{"zero quantity", place("k", 0, 0), codes.InvalidArgument},
		{"negative quantity", place("k", 0, -2), codes.InvalidArgument},
		{"no product", &refv1.PlaceOrderRequest{IdempotencyKey: "k", MerchantId: "m-01", Quantity: 1}, codes.InvalidArgument},
		{"unknown merchant", &refv1.PlaceOrderRequest{IdempotencyKey: "k", MerchantId: "m-99", ProductId: "p-001", Quantity: 1}, codes.NotFound},
		{"unknown product", &refv1.PlaceOrderRequest{IdempotencyKey: "k", MerchantId: "m-01", ProductId: "p-999", Quantity: 1}, codes.NotFound},
		{"product of another merchant", &refv1.PlaceOrderRequest{IdempotencyKey: "k", MerchantId: config.MerchantID(0), ProductId: config.ProductID(1), Quantity: 1}, codes.InvalidArgument},
		{"inactive merchant", place("k", 2, 1), codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.PlaceOrder(context.Background(), tt.req)
			assert.Equal(t, tt.want, status.Code(err), "%v", err)
			assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM orders`))
			assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM outbox`))
		})
	}
}

func TestPlaceOrderWritesOrderAndOutbox(t *testing.T) {
	e := newEnv(t)
	notified := make(chan struct{}, 10)
	s, db := e.orderReplica(t, order.WithNotify(func() { notified <- struct{}{} }))
	ctx := context.Background()

	first, err := s.PlaceOrder(ctx, place("key-1", 4, 3))
	require.NoError(t, err)
	assert.False(t, first.GetReplayed())
	o := first.GetOrder()
	assert.Len(t, o.GetId(), 26)
	assert.Equal(t, order.StatusPending, o.GetStatus(), "an async order waits for product's decision")
	assert.Equal(t, config.ProductID(4), o.GetProductId())
	assert.Len(t, notified, 1)

	// The retry is the same request: the stored order is answered.
	again, err := s.PlaceOrder(ctx, place("key-1", 4, 3))
	require.NoError(t, err)
	assert.True(t, again.GetReplayed())
	assert.Equal(t, o.GetId(), again.GetOrder().GetId())
	assert.Len(t, notified, 1, "a replay writes nothing for the relay")
	// The key reused with another quantity is refused, not answered with the first order.
	_, err = s.PlaceOrder(ctx, place("key-1", 4, 9))
	assert.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)

	assert.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM orders`))
	var msgID, subject string
	var payload []byte
	require.NoError(t, db.QueryRowContext(ctx, `SELECT msg_id, subject, payload FROM outbox`).Scan(&msgID, &subject, &payload))
	assert.Equal(t, o.GetId(), msgID)
	assert.Equal(t, order.DefaultSubject, subject)
	var got order.Payload
	require.NoError(t, json.Unmarshal(payload, &got))
	assert.Equal(t, order.Payload{OrderID: o.GetId(), ProductID: config.ProductID(4), Quantity: 3, IdempotencyKey: "key-1"}, got)
	// Async design: stock is untouched until the event is consumed.
	assert.Equal(t, testCatalog.InitialStock, stockOf(t, e.productDB, config.ProductID(4)))
}

// Twenty concurrent requests with one key, spread over two replicas sharing the database,
// produce exactly one order: one caller creates it, every other one gets it replayed.
func TestPlaceOrderConcurrentSameKey(t *testing.T) {
	e := newEnv(t)
	a, db := e.orderReplica(t)
	b, _ := e.orderReplica(t)
	const n = 20
	var wg sync.WaitGroup
	resps := make([]*refv1.PlaceOrderResponse, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			resps[i], errs[i] = s.PlaceOrder(context.Background(), place("same-key", 0, 2))
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, resps[0].GetOrder().GetId(), resps[i].GetOrder().GetId())
		if !resps[i].GetReplayed() {
			created++
		}
	}
	assert.Equal(t, 1, created)
	assert.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM orders`))
	assert.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM outbox`))
}

func TestPlaceOrderDependencyDown(t *testing.T) {
	e := newEnv(t)
	s, db := e.orderReplica(t)
	e.merchantSrv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.PlaceOrder(ctx, place("k", 0, 1))
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM orders`))
	assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM outbox`))
}

func TestPlaceOrderSyncInventory(t *testing.T) {
	e := newEnv(t)
	s, db := e.orderReplica(t, order.WithInventory(order.InventorySync))
	ctx := context.Background()
	p := config.ProductID(3)

	r, err := s.PlaceOrder(ctx, place("s1", 3, 40))
	require.NoError(t, err)
	assert.Equal(t, int64(60), stockOf(t, e.productDB, p), "stock is reserved before the order is acknowledged")
	again, err := s.PlaceOrder(ctx, place("s1", 3, 40))
	require.NoError(t, err)
	assert.True(t, again.GetReplayed())
	assert.Equal(t, int64(60), stockOf(t, e.productDB, p))

	_, err = s.PlaceOrder(ctx, place("s2", 3, 61))
	assert.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	assert.Equal(t, int64(60), stockOf(t, e.productDB, p))
	assert.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM orders`), "a refused reservation leaves no order")
	assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM outbox`), "the sync design writes no outbox rows")
	assert.Equal(t, 1, count(t, e.productDB, `SELECT COUNT(*) FROM applied_events WHERE order_id = ?`, r.GetOrder().GetId()))
}

func TestNewServerRejectsUnknownDesign(t *testing.T) {
	e := newEnv(t)
	db := openDB(t, e.orderPath)
	_, err := order.NewServer(db, e.merchants, e.products, order.WithInventory("carrier-pigeon"))
	assert.Error(t, err)
}

func TestGetAndListOrders(t *testing.T) {
	e := newEnv(t)
	s, _ := e.orderReplica(t)
	ctx := context.Background()
	var ids []string
	for i, key := range []string{"a", "b", "c"} {
		r, err := s.PlaceOrder(ctx, place(key, i%2, int64(i+1)))
		require.NoError(t, err)
		ids = append(ids, r.GetOrder().GetId())
	}
	cc, _ := serveGRPC(t, func(g *grpc.Server) { refv1.RegisterOrderServiceServer(g, s) })
	c := refv1.NewOrderServiceClient(cc)

	got, err := c.GetOrder(ctx, &refv1.GetOrderRequest{Id: ids[1]})
	require.NoError(t, err)
	assert.Equal(t, "b", got.GetIdempotencyKey())
	_, err = c.GetOrder(ctx, &refv1.GetOrderRequest{Id: "nope"})
	assert.Equal(t, codes.NotFound, status.Code(err))

	stream, err := c.ListOrders(ctx, &refv1.ListOrdersRequest{})
	require.NoError(t, err)
	var listed []string
	for {
		o, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		listed = append(listed, o.GetId())
	}
	assert.ElementsMatch(t, ids, listed)
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	var ids []string
	base := time.UnixMilli(1_700_000_000_000)
	for i := range 1000 {
		id := order.NewID(base.Add(time.Duration(i) * time.Millisecond))
		require.Len(t, id, 26)
		require.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
		ids = append(ids, id)
	}
	assert.True(t, sort.StringsAreSorted(ids), "ids sort by creation time")
}

// lostReply is a product client whose first ReserveStock is applied by product but whose
// answer never arrives (a timeout after product committed, a connection cut mid-reply).
type lostReply struct {
	refv1.ProductServiceClient
	lost atomic.Bool
}

func (c *lostReply) ReserveStock(ctx context.Context, req *refv1.ReserveStockRequest, opts ...grpc.CallOption) (*refv1.ReserveStockResponse, error) {
	resp, err := c.ProductServiceClient.ReserveStock(ctx, req, opts...)
	if err == nil && c.lost.CompareAndSwap(false, true) {
		return nil, status.Error(codes.DeadlineExceeded, "reply lost")
	}
	return resp, err
}

// In the sync design a client retrying with the same key after a lost reservation reply must
// not reserve a second time: the retry reuses the order id product already applied, so
// product recognises it as a replay and stock is decremented once.
func TestPlaceOrderSyncRetryAfterLostReplyReservesOnce(t *testing.T) {
	e := newEnv(t)
	db := openDB(t, e.orderPath)
	require.NoError(t, order.Prepare(context.Background(), db))
	s, err := order.NewServer(db, e.merchants, &lostReply{ProductServiceClient: e.products}, order.WithInventory(order.InventorySync))
	require.NoError(t, err)
	ctx := context.Background()
	p := config.ProductID(3)

	_, err = s.PlaceOrder(ctx, place("retry-me", 3, 10))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM orders`), "no order without a confirmed reservation")

	r, err := s.PlaceOrder(ctx, place("retry-me", 3, 10))
	require.NoError(t, err)
	assert.Equal(t, testCatalog.InitialStock-10, stockOf(t, e.productDB, p), "the retry must not reserve again")
	assert.Equal(t, 1, count(t, e.productDB, `SELECT COUNT(*) FROM applied_events WHERE outcome = 'confirmed'`))
	assert.Equal(t, 1, count(t, e.productDB, `SELECT COUNT(*) FROM applied_events WHERE order_id = ? AND outcome = 'confirmed'`, r.GetOrder().GetId()),
		"product's record names the order that exists")
}

// Keys belong to their owner and stand for the request first sent with them: each step is
// one placement, answered as a new order, a replay of an earlier step's order, or refused.
func TestPlaceOrderKeysPerOwner(t *testing.T) {
	e := newEnv(t)
	s, db := e.orderReplica(t)
	ctx := context.Background()
	steps := []struct {
		name   string
		owner  string
		key    string
		qty    int64
		fp     string
		want   codes.Code
		replay int // 1-based step whose order is answered again; 0: a new order
	}{
		{"alice places", "alice", "k", 1, "", codes.OK, 0},
		{"bob, same key", "bob", "k", 1, "", codes.OK, 0},
		{"alice retries", "alice", "k", 1, "", codes.OK, 1},
		{"bob retries", "bob", "k", 1, "", codes.OK, 2},
		{"alice, same key, another quantity", "alice", "k", 2, "", codes.AlreadyExists, 0},
		{"no owner, same key", "", "k", 1, "", codes.OK, 0},
		{"carol with a caller's fingerprint", "carol", "k", 1, "f1", codes.OK, 0},
		{"carol, same fingerprint", "carol", "k", 1, "f1", codes.OK, 7},
		{"carol, another fingerprint, same fields", "carol", "k", 1, "f2", codes.AlreadyExists, 0},
	}
	ids := make([]string, len(steps))
	for i, st := range steps {
		req := place(st.key, 0, st.qty)
		req.Owner, req.Fingerprint = st.owner, st.fp
		r, err := s.PlaceOrder(ctx, req)
		require.Equal(t, st.want, status.Code(err), "%s: %v", st.name, err)
		if err != nil {
			continue
		}
		ids[i] = r.GetOrder().GetId()
		assert.Equal(t, st.replay != 0, r.GetReplayed(), st.name)
		if st.replay != 0 {
			assert.Equal(t, ids[st.replay-1], ids[i], st.name)
		}
	}
	assert.Equal(t, 4, count(t, db, `SELECT COUNT(*) FROM orders`), "alice, bob, no owner, carol")
}

// GetOrder shows an order to its owner only; to anyone else it does not exist.
func TestGetOrderOwnerOnly(t *testing.T) {
	e := newEnv(t)
	s, _ := e.orderReplica(t)
	ctx := context.Background()
	req := place("k", 0, 1)
	req.Owner = "alice"
	r, err := s.PlaceOrder(ctx, req)
	require.NoError(t, err)
	id := r.GetOrder().GetId()
	tests := []struct {
		owner string
		want  codes.Code
	}{
		{"alice", codes.OK},
		{"bob", codes.NotFound},
		{"", codes.NotFound},
		{"ALICE", codes.NotFound},
	}
	for _, tt := range tests {
		_, err := s.GetOrder(ctx, &refv1.GetOrderRequest{Id: id, Owner: tt.owner})
		assert.Equal(t, tt.want, status.Code(err), "owner %q: %v", tt.owner, err)
	}
}

// lostReplyNoRelease loses the first reservation's reply and cannot reach product to release
// it, so the failed placement's reservation stands until the sweep.
type lostReplyNoRelease struct{ *lostReply }

func (c lostReplyNoRelease) ReleaseStock(context.Context, *refv1.ReleaseStockRequest, ...grpc.CallOption) (*refv1.ReleaseStockResponse, error) {
	return nil, status.Error(codes.Unavailable, "product unreachable")
}

// In the sync design, a retry after a lost reservation reply that changes the request is
// refused while the first request's reservation stands: under that order id, product would
// answer the new reservation as a replay of the first one and reserve nothing for it. Once
// the failed placement released its reservation, the key stands for nothing and the changed
// request is a new order (then the key stands for it).
func TestPlaceOrderSyncKeyReusedWithAnotherRequest(t *testing.T) {
	t.Run("reservation still held", func(t *testing.T) {
		e := newEnv(t)
		db := openDB(t, e.orderPath)
		require.NoError(t, order.Prepare(context.Background(), db))
		s, err := order.NewServer(db, e.merchants, lostReplyNoRelease{&lostReply{ProductServiceClient: e.products}}, order.WithInventory(order.InventorySync))
		require.NoError(t, err)
		ctx := context.Background()

		_, err = s.PlaceOrder(ctx, place("retry-me", 3, 10))
		require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
		_, err = s.PlaceOrder(ctx, place("retry-me", 3, 20))
		assert.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)
		assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM orders`))
		_, err = s.PlaceOrder(ctx, place("retry-me", 3, 10))
		require.NoError(t, err, "the same request still goes through")
		assert.Equal(t, testCatalog.InitialStock-10, stockOf(t, e.productDB, config.ProductID(3)))
	})
	t.Run("reservation released", func(t *testing.T) {
		e := newEnv(t)
		db := openDB(t, e.orderPath)
		require.NoError(t, order.Prepare(context.Background(), db))
		s, err := order.NewServer(db, e.merchants, &lostReply{ProductServiceClient: e.products}, order.WithInventory(order.InventorySync))
		require.NoError(t, err)
		ctx := context.Background()

		_, err = s.PlaceOrder(ctx, place("retry-me", 3, 10))
		require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
		assert.Equal(t, testCatalog.InitialStock, stockOf(t, e.productDB, config.ProductID(3)), "released at once")
		_, err = s.PlaceOrder(ctx, place("retry-me", 3, 20))
		require.NoError(t, err, "the key stood for nothing: a new order")
		_, err = s.PlaceOrder(ctx, place("retry-me", 3, 10))
		assert.Equal(t, codes.AlreadyExists, status.Code(err), "the key now stands for the 20-unit order: %v", err)
		assert.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM orders`))
		assert.Equal(t, testCatalog.InitialStock-20, stockOf(t, e.productDB, config.ProductID(3)))
	})
}

// A database written before keys had owners keeps its orders and reservations; their keys
// still replay (they have no owner and match any request, as they did then).
func TestMigrationKeepsEarlierOrders(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	db := openDB(t, e.orderPath)
	require.NoError(t, store.Migrate(ctx, db, order.Migrations[:2]))
	_, err := db.ExecContext(ctx, `INSERT INTO orders (id, idempotency_key, merchant_id, product_id, quantity, status, created_unix_ms)
		VALUES ('01OLD', 'old-key', ?, ?, 2, 'placed', 1)`, testCatalog.ProductMerchant(0), config.ProductID(0))
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO reservations (idempotency_key, order_id, created_unix_ms) VALUES ('old-key', '01OLD', 1)`)
	require.NoError(t, err)

	require.NoError(t, order.Prepare(ctx, db))
	s, err := order.NewServer(db, e.merchants, e.products)
	require.NoError(t, err)
	r, err := s.PlaceOrder(ctx, place("old-key", 0, 2))
	require.NoError(t, err)
	assert.True(t, r.GetReplayed())
	assert.Equal(t, "01OLD", r.GetOrder().GetId())
	o, err := s.GetOrder(ctx, &refv1.GetOrderRequest{Id: "01OLD"})
	require.NoError(t, err)
	assert.Equal(t, int64(2), o.GetQuantity())
	assert.Equal(t, 1, count(t, db, `SELECT COUNT(*) FROM reservations WHERE owner = '' AND idempotency_key = 'old-key'`))
}

// givesUp is a product client whose caller gives up right after product reserved the
// stock: the client's deadline passes, or its connection closes, between ReserveStock and
// the order's commit.
type givesUp struct {
	refv1.ProductServiceClient
	cancel context.CancelFunc
}

func (c *givesUp) ReserveStock(ctx context.Context, req *refv1.ReserveStockRequest, opts ...grpc.CallOption) (*refv1.ReserveStockResponse, error) {
	resp, err := c.ProductServiceClient.ReserveStock(ctx, req, opts...)
	c.cancel()
	return resp, err
}

// In the sync design a client that gives up after product reserved the stock leaves no
// order behind (the commit is cancelled), so it must leave no stock taken either.
func TestPlaceOrderSyncClientGivesUpReleasesStock(t *testing.T) {
	e := newEnv(t)
	db := openDB(t, e.orderPath)
	require.NoError(t, order.Prepare(context.Background(), db))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := order.NewServer(db, e.merchants, &givesUp{ProductServiceClient: e.products, cancel: cancel}, order.WithInventory(order.InventorySync))
	require.NoError(t, err)
	p := config.ProductID(3)

	_, err = s.PlaceOrder(ctx, place("give-up", 3, 5))
	require.Error(t, err)
	assert.Zero(t, count(t, db, `SELECT COUNT(*) FROM orders`), "the cancelled commit leaves no order")
	assert.Equal(t, testCatalog.InitialStock, stockOf(t, e.productDB, p), "and no stock taken for it")
}

// releaseDown is a givesUp client whose product cannot be reached for the compensating
// release, as when product is partitioned at that moment.
type releaseDown struct{ givesUp }

func (c *releaseDown) ReleaseStock(context.Context, *refv1.ReleaseStockRequest, ...grpc.CallOption) (*refv1.ReleaseStockResponse, error) {
	return nil, status.Error(codes.Unavailable, "product unreachable")
}

// A reservation the compensation could not release is released by the sweep once it is
// older than the expiry, and a retry with the same key then reserves under a new order id.
func TestSweepReleasesOrphanedReservation(t *testing.T) {
	e := newEnv(t)
	db := openDB(t, e.orderPath)
	require.NoError(t, order.Prepare(context.Background(), db))
	ctx, cancel := context.WithCancel(context.Background())
	down := &releaseDown{givesUp{ProductServiceClient: e.products, cancel: cancel}}
	s, err := order.NewServer(db, e.merchants, down, order.WithInventory(order.InventorySync))
	require.NoError(t, err)
	p := config.ProductID(3)

	_, err = s.PlaceOrder(ctx, place("orphan", 3, 7))
	require.Error(t, err)
	assert.Equal(t, testCatalog.InitialStock-7, stockOf(t, e.productDB, p), "the release failed: stock still taken")
	n, err := s.SweepReservations(context.Background(), time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n, "a young reservation is left alone: its placement may still commit")

	sweeper, err := order.NewServer(db, e.merchants, e.products, order.WithInventory(order.InventorySync))
	require.NoError(t, err)
	n, err = sweeper.SweepReservations(context.Background(), 0)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, testCatalog.InitialStock, stockOf(t, e.productDB, p))

	r, err := sweeper.PlaceOrder(context.Background(), place("orphan", 3, 7))
	require.NoError(t, err, "the retry reserves under a new order id")
	assert.Equal(t, order.StatusConfirmed, r.GetOrder().GetStatus())
	assert.Equal(t, testCatalog.InitialStock-7, stockOf(t, e.productDB, p))
}
