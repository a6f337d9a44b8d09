package merchant_test

import (
	"context"
	"database/sql"
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
	"github.com/faultline-dev/faultline/reference-services/merchant"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/store"
)

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

func client(t *testing.T, db *sql.DB) refv1.MerchantServiceClient {
	t.Helper()
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer()
	t.Cleanup(s.Stop)
	refv1.RegisterMerchantServiceServer(s, merchant.NewServer(db))
	go func() { _ = s.Serve(ln) }()
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return refv1.NewMerchantServiceClient(cc)
}

func TestMerchantService(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "merchant.db"))
	cat := config.Catalog{Merchants: 3, Products: 6, InitialStock: 10}
	require.NoError(t, merchant.Prepare(ctx, db, cat))
	c := client(t, db)

	tests := []struct {
		id       string
		wantCode codes.Code
		wantName string
	}{
		{config.MerchantID(0), codes.OK, "Merchant 1"},
		{config.MerchantID(2), codes.OK, "Merchant 3"},
		{config.MerchantID(3), codes.NotFound, ""},
		{"", codes.InvalidArgument, ""},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got, err := c.GetMerchant(ctx, &refv1.GetMerchantRequest{Id: tt.id})
			assert.Equal(t, tt.wantCode, status.Code(err))
			if tt.wantCode == codes.OK {
				require.NoError(t, err)
				assert.Equal(t, tt.id, got.GetId())
				assert.Equal(t, tt.wantName, got.GetName())
				assert.True(t, got.GetActive())
			}
		})
	}

	list, err := c.ListMerchants(ctx, &refv1.ListMerchantsRequest{})
	require.NoError(t, err)
	var ids []string
	for _, m := range list.GetMerchants() {
		ids = append(ids, m.GetId())
	}
	assert.Equal(t, []string{"m-01", "m-02", "m-03"}, ids)
}

// A restart (Prepare again, from another handle as another replica would) must neither
// duplicate merchants nor undo a change made since the first seed.
func TestPrepareIsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "merchant.db")
	cat := config.Catalog{Merchants: 2, Products: 2, InitialStock: 1}
	a := openDB(t, path)
	require.NoError(t, merchant.Prepare(ctx, a, cat))
	_, err := a.ExecContext(ctx, `UPDATE merchants SET active = 0 WHERE id = ?`, config.MerchantID(1))
	require.NoError(t, err)

	b := openDB(t, path)
	require.NoError(t, merchant.Prepare(ctx, b, cat))
	var n int
	require.NoError(t, b.QueryRowContext(ctx, `SELECT COUNT(*) FROM merchants`).Scan(&n))
	assert.Equal(t, 2, n)
	got, err := merchant.NewServer(b).GetMerchant(ctx, &refv1.GetMerchantRequest{Id: config.MerchantID(1)})
	require.NoError(t, err)
	assert.False(t, got.GetActive())
}
