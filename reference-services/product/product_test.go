package product

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/store"
)

var testCatalog = config.Catalog{Merchants: 2, Products: 4, InitialStock: 100}

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path)
	t.Cleanup(func() {
		if db != nil {
			_ = db.Close()
		}
	})
	require.NoError(t, err)
	return db
}

func preparedDB(t *testing.T) *sql.DB {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "product.db"))
	require.NoError(t, Prepare(context.Background(), db, testCatalog))
	return db
}

func stockOf(t *testing.T, db *sql.DB, id string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRowContext(context.Background(), `SELECT stock FROM products WHERE id = ?`, id).Scan(&n))
	return n
}

func deliveriesOf(t *testing.T, db *sql.DB, orderID string) int64 {
	t.Helper()
	var n int64
	err := db.QueryRowContext(context.Background(), `SELECT deliveries FROM applied_events WHERE order_id = ?`, orderID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0
	}
	require.NoError(t, err)
	return n
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "product.db")
	db := openDB(t, path)
	require.NoError(t, Prepare(ctx, db, testCatalog))
	_, err := Apply(ctx, db, Event{OrderID: "o1", ProductID: config.ProductID(1), Quantity: 7})
	require.NoError(t, err)

	// A second replica preparing the same file must not refill consumed stock.
	other := openDB(t, path)
	require.NoError(t, Prepare(ctx, other, testCatalog))
	resp, err := NewServer(other, nil).ListProducts(ctx, &refv1.ListProductsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetProducts(), testCatalog.Products)
	for i, p := range resp.GetProducts() {
		assert.Equal(t, config.ProductID(i), p.GetId())
		assert.Equal(t, testCatalog.ProductMerchant(i), p.GetMerchantId())
		assert.Equal(t, testCatalog.InitialStock, p.GetInitialStock())
	}
	assert.Equal(t, int64(93), resp.GetProducts()[1].GetStock())
	assert.Equal(t, int64(100), resp.GetProducts()[0].GetStock())
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	p0 := config.ProductID(0)
	tests := []struct {
		name      string
		events    []Event
		opts      []ApplyOption
		wantErr   error
		wantStock int64
		wantLast  Result
	}{
		{"first", []Event{{OrderID: "a", ProductID: p0, Quantity: 3}}, nil, nil, 97, Result{Remaining: 97, Deliveries: 1, Outcome: OutcomeConfirmed}},
		{"duplicate", []Event{{OrderID: "a", ProductID: p0, Quantity: 3}, {OrderID: "a", ProductID: p0, Quantity: 3}}, nil, nil, 97,
			Result{Remaining: 97, Duplicate: true, Deliveries: 2, Outcome: OutcomeConfirmed}},
		{"duplicate with other quantity keeps the first", []Event{{OrderID: "a", ProductID: p0, Quantity: 3}, {OrderID: "a", ProductID: p0, Quantity: 50}}, nil, nil, 97,
			Result{Remaining: 97, Duplicate: true, Deliveries: 2, Outcome: OutcomeConfirmed}},
		{"two orders", []Event{{OrderID: "a", ProductID: p0, Quantity: 3}, {OrderID: "b", ProductID: p0, Quantity: 4}}, nil, nil, 93,
			Result{Remaining: 93, Deliveries: 1, Outcome: OutcomeConfirmed}},
		{"unknown product", []Event{{OrderID: "a", ProductID: "p-999", Quantity: 1}}, nil, ErrUnknownProduct, 100, Result{}},
		{"zero quantity", []Event{{OrderID: "a", ProductID: p0, Quantity: 0}}, nil, ErrInvalidEvent, 100, Result{}},
		{"no order id", []Event{{ProductID: p0, Quantity: 1}}, nil, ErrInvalidEvent, 100, Result{}},
		{"exactly the stock", []Event{{OrderID: "a", ProductID: p0, Quantity: 100}}, nil, nil, 0, Result{Remaining: 0, Deliveries: 1, Outcome: OutcomeConfirmed}},
		{"one more than the stock is rejected", []Event{{OrderID: "a", ProductID: p0, Quantity: 101}}, nil, nil, 100,
			Result{Remaining: 100, Deliveries: 1, Outcome: OutcomeRejected}},
		{"a rejection stands on redelivery", []Event{{OrderID: "a", ProductID: p0, Quantity: 101}, {OrderID: "a", ProductID: p0, Quantity: 1}}, nil, nil, 100,
			Result{Remaining: 100, Duplicate: true, Deliveries: 2, Outcome: OutcomeRejected}},
		{"without deduplication a redelivery takes stock twice", []Event{{OrderID: "a", ProductID: p0, Quantity: 3}, {OrderID: "a", ProductID: p0, Quantity: 3}},
			[]ApplyOption{WithoutDeduplication()}, nil, 94, Result{Remaining: 94, Duplicate: true, Deliveries: 2, Outcome: OutcomeConfirmed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := preparedDB(t)
			var got Result
			var err error
			for _, e := range tt.events {
				got, err = Apply(ctx, db, e, tt.opts...)
			}
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				var n int
				require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM applied_events`).Scan(&n))
				assert.Zero(t, n, "a failed apply records nothing")
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.wantLast, got)
			}
			assert.Equal(t, tt.wantStock, stockOf(t, db, p0))
		})
	}
}

func productClient(t *testing.T, s *Server) refv1.ProductServiceClient {
	t.Helper()
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	t.Cleanup(gs.Stop)
	refv1.RegisterProductServiceServer(gs, s)
	go func() { _ = gs.Serve(ln) }()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return refv1.NewProductServiceClient(cc)
}

func TestProductService(t *testing.T) {
	ctx := context.Background()
	db := preparedDB(t)
	m, err := NewMetrics(nil)
	require.NoError(t, err)
	c := productClient(t, NewServer(db, m))
	p1 := config.ProductID(1)

	got, err := c.GetProduct(ctx, &refv1.GetProductRequest{Id: p1})
	require.NoError(t, err)
	assert.Equal(t, testCatalog.ProductMerchant(1), got.GetMerchantId())
	assert.Equal(t, int64(100), got.GetStock())

	_, err = c.GetProduct(ctx, &refv1.GetProductRequest{Id: "p-404"})
	assert.Equal(t, codes.NotFound, status.Code(err))

	reserve := []struct {
		name         string
		req          *refv1.ReserveStockRequest
		wantCode     codes.Code
		wantRemain   int64
		wantReplayed bool
	}{
		{"first", &refv1.ReserveStockRequest{OrderId: "o1", ProductId: p1, Quantity: 10}, codes.OK, 90, false},
		{"replay", &refv1.ReserveStockRequest{OrderId: "o1", ProductId: p1, Quantity: 10}, codes.OK, 90, true},
		{"second order", &refv1.ReserveStockRequest{OrderId: "o2", ProductId: p1, Quantity: 5}, codes.OK, 85, false},
		{"insufficient", &refv1.ReserveStockRequest{OrderId: "o3", ProductId: p1, Quantity: 86}, codes.FailedPrecondition, 0, false},
		{"unknown product", &refv1.ReserveStockRequest{OrderId: "o4", ProductId: "p-404", Quantity: 1}, codes.NotFound, 0, false},
		{"bad quantity", &refv1.ReserveStockRequest{OrderId: "o5", ProductId: p1, Quantity: -1}, codes.InvalidArgument, 0, false},
	}
	for _, tt := range reserve {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.ReserveStock(ctx, tt.req)
			require.Equal(t, tt.wantCode, status.Code(err), "%v", err)
			if tt.wantCode == codes.OK {
				assert.Equal(t, tt.wantRemain, got.GetRemaining())
				assert.Equal(t, tt.wantReplayed, got.GetReplayed())
			}
		})
	}
	assert.Equal(t, int64(85), stockOf(t, db, p1))
	assert.Equal(t, 2.0, counterValue(t, m.Applied))
	assert.Equal(t, 1.0, counterValue(t, m.Duplicate))

	stream, err := c.AppliedEvents(ctx, &refv1.AppliedEventsRequest{})
	require.NoError(t, err)
	var events []*refv1.AppliedEvent
	for {
		e, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		events = append(events, e)
	}
	require.Len(t, events, 3)
	byID := map[string]*refv1.AppliedEvent{}
	for _, e := range events {
		byID[e.GetOrderId()] = e
	}
	assert.Equal(t, int64(2), byID["o1"].GetDeliveries())
	assert.Equal(t, int64(10), byID["o1"].GetQuantity())
	assert.Equal(t, int64(1), byID["o2"].GetDeliveries())
	assert.Positive(t, byID["o2"].GetAppliedUnixMs())
	assert.Equal(t, "rejected", byID["o3"].GetOutcome(), "a refused reservation is recorded, and took nothing")
	assert.Zero(t, byID["o3"].GetApplications())
	assert.Equal(t, int64(1), byID["o1"].GetApplications())
}

// The database itself refuses a negative stock, whatever code path tries it.
func TestStockCannotGoNegative(t *testing.T) {
	db := preparedDB(t)
	_, err := db.ExecContext(context.Background(), `UPDATE products SET stock = stock - 101 WHERE id = ?`, config.ProductID(0))
	require.Error(t, err)
	assert.Equal(t, int64(100), stockOf(t, db, config.ProductID(0)))
}

// Release gives back a confirmed order's stock once, and a release that comes first
// refuses the reservation that arrives after it.
func TestRelease(t *testing.T) {
	ctx := context.Background()
	db := preparedDB(t)
	p0 := config.ProductID(0)
	_, err := Apply(ctx, db, Event{OrderID: "a", ProductID: p0, Quantity: 30})
	require.NoError(t, err)
	released, remaining, err := Release(ctx, db, Event{OrderID: "a", ProductID: p0, Quantity: 30})
	require.NoError(t, err)
	assert.True(t, released)
	assert.Equal(t, int64(100), remaining)
	released, _, err = Release(ctx, db, Event{OrderID: "a", ProductID: p0, Quantity: 30})
	require.NoError(t, err)
	assert.False(t, released, "a second release gives nothing back")
	assert.Equal(t, int64(100), stockOf(t, db, p0))

	released, _, err = Release(ctx, db, Event{OrderID: "early", ProductID: p0, Quantity: 5})
	require.NoError(t, err)
	assert.False(t, released)
	res, err := Apply(ctx, db, Event{OrderID: "early", ProductID: p0, Quantity: 5})
	require.NoError(t, err)
	assert.Equal(t, OutcomeReleased, res.Outcome, "the tombstone refuses a late reservation")
	assert.Equal(t, int64(100), stockOf(t, db, p0))
}
