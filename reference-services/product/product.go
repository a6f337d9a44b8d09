// Package product is the product service of the reference system: the catalogue and the
// inventory. Stock changes arrive either synchronously (ReserveStock, the "sync" inventory
// design) or as orders.placed events from the broker (the "async" design, see Consumer);
// both go through Apply and the applied_events table, so an order decrements stock at most
// once however often it is delivered.
package product

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/store"
)

// Migrations is the product schema, applied in order by store.Migrate.
var Migrations = []string{
	`CREATE TABLE products (
		id            TEXT PRIMARY KEY,
		merchant_id   TEXT NOT NULL,
		name          TEXT NOT NULL,
		price_cents   INTEGER NOT NULL,
		stock         INTEGER NOT NULL,
		initial_stock INTEGER NOT NULL
	);
	CREATE TABLE applied_events (
		order_id        TEXT PRIMARY KEY,
		product_id      TEXT NOT NULL REFERENCES products(id),
		quantity        INTEGER NOT NULL,
		applied_unix_ms INTEGER NOT NULL,
		deliveries      INTEGER NOT NULL DEFAULT 1
	)`,
}

// Prepare migrates the schema and seeds the catalogue; both steps are idempotent.
func Prepare(ctx context.Context, db *sql.DB, cat config.Catalog) error {
	if err := store.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("migrate product schema: %w", err)
	}
	return Seed(ctx, db, cat)
}

// Seed creates the catalogue's products that do not exist yet. Existing rows keep their
// stock: a restart must never refill what orders consumed.
func Seed(ctx context.Context, db *sql.DB, cat config.Catalog) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin seed: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for i := range cat.Products {
		id := config.ProductID(i)
		if _, err := tx.ExecContext(ctx,
			`INSERT OR IGNORE INTO products (id, merchant_id, name, price_cents, stock, initial_stock) VALUES (?, ?, ?, ?, ?, ?)`,
			id, cat.ProductMerchant(i), fmt.Sprintf("Product %d", i+1), int64(100*(i+1)+99), cat.InitialStock, cat.InitialStock); err != nil {
			return fmt.Errorf("seed product %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit seed: %w", err)
	}
	return nil
}

// Errors Apply returns for events that can never succeed, so callers stop retrying them.
var (
	ErrUnknownProduct    = errors.New("unknown product")
	ErrInvalidEvent      = errors.New("invalid event")
	ErrInsufficientStock = errors.New("insufficient stock")
)

// Event is one stock decrement requested for one order.
type Event struct {
	OrderID   string `json:"order_id"`
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
	// IdempotencyKey is carried for tracing only; the order id is the deduplication key.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Validate reports every problem with e at once.
func (e Event) Validate() []error {
	var errs []error
	if e.OrderID == "" {
		errs = append(errs, errors.New("order_id is empty"))
	}
	if e.ProductID == "" {
		errs = append(errs, errors.New("product_id is empty"))
	}
	if e.Quantity <= 0 {
		errs = append(errs, fmt.Errorf("quantity %d is not positive", e.Quantity))
	}
	return errs
}

// Result is what Apply did.
type Result struct {
	// Remaining is the product's stock after the call.
	Remaining int64
	// Duplicate is true when the order had been applied before; stock was not touched.
	Duplicate bool
	// Deliveries counts how often this order arrived, this time included.
	Deliveries int64
}

// ApplyOption tunes Apply.
type ApplyOption func(*applyOptions)

type applyOptions struct{ rejectOversell bool }

// RejectOversell makes Apply fail with ErrInsufficientStock instead of letting stock go
// negative. The synchronous design uses it (the caller can still refuse the order); the
// asynchronous design must not (the order has already been accepted and must be counted).
func RejectOversell() ApplyOption { return func(o *applyOptions) { o.rejectOversell = true } }

// Apply records e in applied_events and decrements stock, in one transaction, unless the
// order was applied before: then it only counts the extra delivery.
func Apply(ctx context.Context, db *sql.DB, e Event, opts ...ApplyOption) (Result, error) {
	var o applyOptions
	for _, opt := range opts {
		opt(&o)
	}
	if errs := e.Validate(); len(errs) > 0 {
		return Result{}, fmt.Errorf("apply event: %w: %w", ErrInvalidEvent, errors.Join(errs...))
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return Result{}, fmt.Errorf("begin apply: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	var stock int64
	err = tx.QueryRowContext(ctx, `SELECT stock FROM products WHERE id = ?`, e.ProductID).Scan(&stock)
	if errors.Is(err, sql.ErrNoRows) {
		return Result{}, fmt.Errorf("apply event for order %s: %w %q", e.OrderID, ErrUnknownProduct, e.ProductID)
	}
	if err != nil {
		return Result{}, fmt.Errorf("read stock: %w", err)
	}

	var deliveries int64
	err = tx.QueryRowContext(ctx,
		`UPDATE applied_events SET deliveries = deliveries + 1 WHERE order_id = ? RETURNING deliveries`, e.OrderID).Scan(&deliveries)
	switch {
	case err == nil:
		if err := tx.Commit(); err != nil {
			return Result{}, fmt.Errorf("commit duplicate: %w", err)
		}
		return Result{Remaining: stock, Duplicate: true, Deliveries: deliveries}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Result{}, fmt.Errorf("count delivery: %w", err)
	}

	if o.rejectOversell && stock < e.Quantity {
		return Result{}, fmt.Errorf("reserve %d of %s: %w (%d left)", e.Quantity, e.ProductID, ErrInsufficientStock, stock)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO applied_events (order_id, product_id, quantity, applied_unix_ms, deliveries) VALUES (?, ?, ?, ?, 1)`,
		e.OrderID, e.ProductID, e.Quantity, time.Now().UnixMilli()); err != nil {
		return Result{}, fmt.Errorf("record event: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE products SET stock = stock - ? WHERE id = ?`, e.Quantity, e.ProductID); err != nil {
		return Result{}, fmt.Errorf("decrement stock: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Result{}, fmt.Errorf("commit event: %w", err)
	}
	return Result{Remaining: stock - e.Quantity, Deliveries: 1}, nil
}

// Metrics are the product service's counters, shared by the gRPC server and the consumer so
// that both inventory designs report through the same names.
type Metrics struct {
	// Applied is faultline_events_applied_total: first applications (stock decremented).
	Applied prometheus.Counter
	// Duplicate is faultline_events_duplicate_total: repeats recognised by applied_events.
	Duplicate prometheus.Counter
	// Malformed is faultline_events_malformed_total: messages terminated as never applicable.
	Malformed prometheus.Counter
	// Lag is faultline_consumer_lag: NumPending + NumAckPending of the durable consumer.
	Lag prometheus.Gauge
	// Redelivery is faultline_events_nak_total: messages handed back after a transient error.
	Redelivery prometheus.Counter
}

// NewMetrics registers the product metrics on reg (nil: a throwaway registry, for tests).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_events_applied_total",
			Help: "Inventory events (or synchronous reservations) applied for the first time.",
		}),
		Duplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_events_duplicate_total",
			Help: "Inventory events that arrived again for an order already applied; stock was not touched.",
		}),
		Malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_events_malformed_total",
			Help: "Inventory events terminated because they can never be applied (unparsable, invalid, unknown product).",
		}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_consumer_lag",
			Help: "Messages pending for the inventory consumer (not yet delivered plus delivered but unacknowledged).",
		}),
		Redelivery: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_events_nak_total",
			Help: "Inventory events handed back to the broker for redelivery after a transient failure.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Applied, m.Duplicate, m.Malformed, m.Lag, m.Redelivery} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register product metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) count(r Result) {
	if m == nil {
		return
	}
	if r.Duplicate {
		m.Duplicate.Inc()
	} else {
		m.Applied.Inc()
	}
}

// Server implements refv1.ProductServiceServer on a SQLite database.
type Server struct {
	refv1.UnimplementedProductServiceServer
	db      *sql.DB
	metrics *Metrics
}

var _ refv1.ProductServiceServer = (*Server)(nil)

// NewServer returns the gRPC implementation over db, which must have been Prepared. metrics
// may be nil.
func NewServer(db *sql.DB, metrics *Metrics) *Server { return &Server{db: db, metrics: metrics} }

const productColumns = `id, merchant_id, name, price_cents, stock, initial_stock`

func scanProduct(row interface{ Scan(...any) error }) (*refv1.Product, error) {
	p := &refv1.Product{}
	err := row.Scan(&p.Id, &p.MerchantId, &p.Name, &p.PriceCents, &p.Stock, &p.InitialStock)
	return p, err
}

// GetProduct returns one product with its current stock, NotFound for an unknown id.
func (s *Server) GetProduct(ctx context.Context, req *refv1.GetProductRequest) (*refv1.Product, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id is required")
	}
	p, err := scanProduct(s.db.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE id = ?`, req.GetId()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Errorf(codes.NotFound, "product %q not found", req.GetId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read product: %v", err)
	}
	return p, nil
}

// ListProducts returns every product ordered by id.
func (s *Server) ListProducts(ctx context.Context, _ *refv1.ListProductsRequest) (*refv1.ListProductsResponse, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+productColumns+` FROM products ORDER BY id`)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list products: %v", err)
	}
	defer func() { _ = rows.Close() }()
	resp := &refv1.ListProductsResponse{}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "scan product: %v", err)
		}
		resp.Products = append(resp.Products, p)
	}
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list products: %v", err)
	}
	return resp, nil
}

// ReserveStock is the synchronous inventory design: it decrements stock once per order id
// and answers replayed=true (with the current stock) when the order was applied before.
func (s *Server) ReserveStock(ctx context.Context, req *refv1.ReserveStockRequest) (*refv1.ReserveStockResponse, error) {
	res, err := Apply(ctx, s.db, Event{OrderID: req.GetOrderId(), ProductID: req.GetProductId(), Quantity: req.GetQuantity()}, RejectOversell())
	switch {
	case errors.Is(err, ErrInvalidEvent):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrUnknownProduct):
		return nil, status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrInsufficientStock):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "reserve stock: %v", err)
	}
	s.metrics.count(res)
	return &refv1.ReserveStockResponse{Remaining: res.Remaining, Replayed: res.Duplicate}, nil
}

// AppliedEvents streams every applied inventory change in the order it was applied, for the
// harness's consistency checks.
func (s *Server) AppliedEvents(_ *refv1.AppliedEventsRequest, stream grpc.ServerStreamingServer[refv1.AppliedEvent]) error {
	ctx := stream.Context()
	rows, err := s.db.QueryContext(ctx,
		`SELECT order_id, product_id, quantity, applied_unix_ms, deliveries FROM applied_events ORDER BY applied_unix_ms, rowid`)
	if err != nil {
		return status.Errorf(codes.Internal, "list applied events: %v", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		e := &refv1.AppliedEvent{}
		if err := rows.Scan(&e.OrderId, &e.ProductId, &e.Quantity, &e.AppliedUnixMs, &e.Deliveries); err != nil {
			return status.Errorf(codes.Internal, "scan applied event: %v", err)
		}
		if err := stream.Send(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return status.Errorf(codes.Internal, "list applied events: %v", err)
	}
	return nil
}
