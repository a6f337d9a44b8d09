// Package merchant is the merchant service of the reference system: a small read-mostly
// catalogue of merchants that order validates every placement against.
package merchant

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/store"
)

// Migrations is the merchant schema, applied in order by store.Migrate.
var Migrations = []string{
	`CREATE TABLE merchants (
		id     TEXT PRIMARY KEY,
		name   TEXT NOT NULL,
		active INTEGER NOT NULL DEFAULT 1
	)`,
}

// Prepare migrates the schema and seeds the catalogue. Both steps are idempotent, so every
// replica calls it on every start.
func Prepare(ctx context.Context, db *sql.DB, cat config.Catalog) error {
	if err := store.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("migrate merchant schema: %w", err)
	}
	return Seed(ctx, db, cat)
}

// Seed creates the catalogue's merchants that do not exist yet, leaving existing rows (and any
// change a scenario made to them) alone.
func Seed(ctx context.Context, db *sql.DB, cat config.Catalog) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin seed: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for i := range cat.Merchants {
		id := config.MerchantID(i)
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO merchants (id, name, active) VALUES (?, ?, 1)`,
			id, fmt.Sprintf("Merchant %d", i+1)); err != nil {
			return fmt.Errorf("seed merchant %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit seed: %w", err)
	}
	return nil
}

// Server implements refv1.MerchantServiceServer on a SQLite database.
type Server struct {
	refv1.UnimplementedMerchantServiceServer
	db *sql.DB
}

var _ refv1.MerchantServiceServer = (*Server)(nil)

// NewServer returns the gRPC implementation over db, which must have been Prepared.
func NewServer(db *sql.DB) *Server { return &Server{db: db} }

// GetMerchant returns one merchant, NotFound for an unknown id.
func (s *Server) GetMerchant(ctx context.Context, req *refv1.GetMerchantRequest) (*refv1.Merchant, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id is required")
	}
	m := &refv1.Merchant{}
	err := s.db.QueryRowContext(ctx, `SELECT id, name, active FROM merchants WHERE id = ?`, req.GetId()).
		Scan(&m.Id, &m.Name, &m.Active)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Errorf(codes.NotFound, "merchant %q not found", req.GetId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read merchant: %v", err)
	}
	return m, nil
}

// ListMerchants returns every merchant ordered by id.
func (s *Server) ListMerchants(ctx context.Context, _ *refv1.ListMerchantsRequest) (*refv1.ListMerchantsResponse, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, active FROM merchants ORDER BY id`)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list merchants: %v", err)
	}
	defer func() { _ = rows.Close() }()
	resp := &refv1.ListMerchantsResponse{}
	for rows.Next() {
		m := &refv1.Merchant{}
		if err := rows.Scan(&m.Id, &m.Name, &m.Active); err != nil {
			return nil, status.Errorf(codes.Internal, "scan merchant: %v", err)
		}
		resp.Merchants = append(resp.Merchants, m)
	}
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list merchants: %v", err)
	}
	return resp, nil
}
