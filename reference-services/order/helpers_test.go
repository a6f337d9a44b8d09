package order_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/merchant"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/reference-services/product"
	"github.com/faultline-dev/faultline/reference-services/store"
)

// testCatalog: product i is sold by merchant i%3; merchant m-03 is deactivated by newEnv.
var testCatalog = config.Catalog{Merchants: 3, Products: 6, InitialStock: 100}

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

// serveGRPC serves on a loopback port and returns a client connection and the server, so a
// test can stop the dependency mid-way.
func serveGRPC(t *testing.T, register func(*grpc.Server)) (*grpc.ClientConn, *grpc.Server) {
	t.Helper()
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer()
	t.Cleanup(s.Stop)
	register(s)
	go func() { _ = s.Serve(ln) }()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc, s
}

// env is a real merchant and product service (SQLite + gRPC) and an order database file.
type env struct {
	dir         string
	productDB   *sql.DB
	merchants   refv1.MerchantServiceClient
	products    refv1.ProductServiceClient
	merchantSrv *grpc.Server
	productSrv  *grpc.Server
	orderPath   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	mdb := openDB(t, filepath.Join(dir, "merchant.db"))
	require.NoError(t, merchant.Prepare(ctx, mdb, testCatalog))
	_, err := mdb.ExecContext(ctx, `UPDATE merchants SET active = 0 WHERE id = ?`, config.MerchantID(2))
	require.NoError(t, err)
	pdb := openDB(t, filepath.Join(dir, "product.db"))
	require.NoError(t, product.Prepare(ctx, pdb, testCatalog))

	mcc, msrv := serveGRPC(t, func(s *grpc.Server) { refv1.RegisterMerchantServiceServer(s, merchant.NewServer(mdb)) })
	pcc, psrv := serveGRPC(t, func(s *grpc.Server) { refv1.RegisterProductServiceServer(s, product.NewServer(pdb, nil)) })
	return &env{
		dir: dir, productDB: pdb,
		merchants: refv1.NewMerchantServiceClient(mcc), products: refv1.NewProductServiceClient(pcc),
		merchantSrv: msrv, productSrv: psrv,
		orderPath: filepath.Join(dir, "order.db"),
	}
}

// orderReplica opens its own handle on the shared order database, as a second process would.
func (e *env) orderReplica(t *testing.T, opts ...order.Option) (*order.Server, *sql.DB) {
	t.Helper()
	db := openDB(t, e.orderPath)
	require.NoError(t, order.Prepare(context.Background(), db))
	s, err := order.NewServer(db, e.merchants, e.products, opts...)
	require.NoError(t, err)
	return s, db
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(context.Background(), query, args...).Scan(&n))
	return n
}

func stockOf(t *testing.T, db *sql.DB, id string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRowContext(context.Background(), `SELECT stock FROM products WHERE id = ?`, id).Scan(&n))
	return n
}

// place is a valid request for product i bought from its own merchant.
func place(key string, i int, qty int64) *refv1.PlaceOrderRequest {
	return &refv1.PlaceOrderRequest{
		IdempotencyKey: key, MerchantId: testCatalog.ProductMerchant(i), ProductId: config.ProductID(i), Quantity: qty,
	}
}
