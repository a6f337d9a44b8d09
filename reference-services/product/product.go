// Package product is the product service of the reference system: the catalogue and the
// inventory. Stock changes arrive either synchronously (ReserveStock, the "sync" inventory
// design) or as orders.placed events from the broker (the "async" design, see Consumer);
// both go through Apply and the applied_events table, so an order decrements stock at most
// once however often it is delivered, and never below zero: an order the stock cannot
// honour is rejected, and in the async design the decision goes back to the order service
// on orders.outcome (the saga).
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
	// The saga: every event is decided (confirmed, rejected, or released later by the sync
	// design's compensation), and stock can never go below zero, whatever code path tries.
	`ALTER TABLE applied_events ADD COLUMN outcome TEXT NOT NULL DEFAULT 'confirmed';
	ALTER TABLE applied_events ADD COLUMN applications INTEGER NOT NULL DEFAULT 1;
	CREATE TRIGGER products_stock_not_negative BEFORE UPDATE OF stock ON products
	WHEN NEW.stock < 0 BEGIN SELECT RAISE(ABORT, 'stock would go below zero'); END;
	CREATE TRIGGER products_stock_not_negative_insert BEFORE INSERT ON products
	WHEN NEW.stock < 0 BEGIN SELECT RAISE(ABORT, 'stock would go below zero'); END`,
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

// Outcomes of an inventory event, as stored in applied_events and published on
// broker.SubjectOrderOutcome: the saga's answer to an orders.placed event.
const (
	// OutcomeConfirmed: the stock was taken for the order.
	OutcomeConfirmed = refv1.StatusConfirmed
	// OutcomeRejected: there was not enough stock; nothing was taken, and never will be for
	// this order.
	OutcomeRejected = refv1.StatusRejected
	// OutcomeReleased: the stock taken was given back (ReleaseStock), or a release arrived
	// before any reservation and stands as a tombstone that refuses a late one.
	OutcomeReleased = refv1.OutcomeReleased
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
	// Duplicate is true when the order had been decided before; stock was not touched
	// (unless the consumer does not deduplicate, see WithoutDeduplication).
	Duplicate bool
	// Deliveries counts how often this order arrived, this time included.
	Deliveries int64
	// Outcome is the order's decision: OutcomeConfirmed, OutcomeRejected or
	// OutcomeReleased. A duplicate answers the decision made the first time.
	Outcome string
}

// ApplyOption tunes Apply.
type ApplyOption func(*applyOptions)

type applyOptions struct{ noDedup bool }

// WithoutDeduplication makes Apply take stock again for an order it already confirmed: the
// consumer_idempotency: off design, a teaching example of what an at-least-once broker
// does to a consumer that trusts it to deliver once. Never use it otherwise.
func WithoutDeduplication() ApplyOption { return func(o *applyOptions) { o.noDedup = true } }

// Apply decides e once per order, in one transaction: it takes the stock when there is
// enough (a conditional update, so stock never goes below zero whoever runs concurrently;
// a trigger refuses it as well) and records the outcome in applied_events, or records a
// rejection and leaves stock alone. An order decided before only counts the extra
// delivery and answers the first decision, so a redelivery cannot change it.
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
	var outcome string
	err = tx.QueryRowContext(ctx,
		`UPDATE applied_events SET deliveries = deliveries + 1 WHERE order_id = ? RETURNING deliveries, outcome`, e.OrderID).Scan(&deliveries, &outcome)
	switch {
	case err == nil && o.noDedup && outcome == OutcomeConfirmed:
		// The weak design: the redelivery takes the stock a second time.
		if took, err := takeStock(ctx, tx, e); err != nil || !took {
			return Result{}, errors.Join(err, fmt.Errorf("re-apply order %s: %w", e.OrderID, ErrInsufficientStock))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE applied_events SET applications = applications + 1 WHERE order_id = ?`, e.OrderID); err != nil {
			return Result{}, fmt.Errorf("count application: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return Result{}, fmt.Errorf("commit re-application: %w", err)
		}
		return Result{Remaining: stock - e.Quantity, Duplicate: true, Deliveries: deliveries, Outcome: outcome}, nil
	case err == nil:
		if err := tx.Commit(); err != nil {
			return Result{}, fmt.Errorf("commit duplicate: %w", err)
		}
		return Result{Remaining: stock, Duplicate: true, Deliveries: deliveries, Outcome: outcome}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Result{}, fmt.Errorf("count delivery: %w", err)
	}

	took, err := takeStock(ctx, tx, e)
	if err != nil {
		return Result{}, err
	}
	res := Result{Remaining: stock - e.Quantity, Deliveries: 1, Outcome: OutcomeConfirmed}
	applications := 1
	if !took {
		res.Remaining, res.Outcome, applications = stock, OutcomeRejected, 0
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO applied_events (order_id, product_id, quantity, applied_unix_ms, deliveries, outcome, applications) VALUES (?, ?, ?, ?, 1, ?, ?)`,
		e.OrderID, e.ProductID, e.Quantity, time.Now().UnixMilli(), res.Outcome, applications); err != nil {
		return Result{}, fmt.Errorf("record event: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Result{}, fmt.Errorf("commit event: %w", err)
	}
	return res, nil
}

// takeStock decrements e's product by e's quantity if that leaves it at zero or more, and
// reports whether it did.
func takeStock(ctx context.Context, tx *sql.Tx, e Event) (bool, error) {
	r, err := tx.ExecContext(ctx, `UPDATE products SET stock = stock - ? WHERE id = ? AND stock >= ?`, e.Quantity, e.ProductID, e.Quantity)
	if err != nil {
		return false, fmt.Errorf("decrement stock: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("decrement stock: %w", err)
	}
	return n == 1, nil
}

// Release gives back the stock a confirmed order took and marks it released, in one
// transaction, once: a second release changes nothing. A release for an order never seen
// records a released tombstone, so that a reservation still in flight for it is refused
// when it arrives instead of taking stock for an order its owner has given up on.
func Release(ctx context.Context, db *sql.DB, e Event) (released bool, remaining int64, err error) {
	if e.OrderID == "" || e.ProductID == "" {
		return false, 0, fmt.Errorf("release stock: %w: order_id and product_id are required", ErrInvalidEvent)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, 0, fmt.Errorf("begin release: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var outcome, product string
	var qty, applications int64
	err = tx.QueryRowContext(ctx, `SELECT outcome, product_id, quantity, applications FROM applied_events WHERE order_id = ?`, e.OrderID).
		Scan(&outcome, &product, &qty, &applications)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO applied_events (order_id, product_id, quantity, applied_unix_ms, deliveries, outcome, applications) VALUES (?, ?, ?, ?, 0, ?, 0)`,
			e.OrderID, e.ProductID, max(e.Quantity, 1), time.Now().UnixMilli(), OutcomeReleased); err != nil {
			return false, 0, fmt.Errorf("record release tombstone: %w", err)
		}
		product = e.ProductID
	case err != nil:
		return false, 0, fmt.Errorf("read applied event: %w", err)
	case outcome == OutcomeConfirmed:
		if _, err := tx.ExecContext(ctx, `UPDATE products SET stock = stock + ? WHERE id = ?`, qty*applications, product); err != nil {
			return false, 0, fmt.Errorf("give back stock: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE applied_events SET outcome = ?, applications = 0 WHERE order_id = ?`, OutcomeReleased, e.OrderID); err != nil {
			return false, 0, fmt.Errorf("mark released: %w", err)
		}
		released = true
	}
	if err := tx.QueryRowContext(ctx, `SELECT stock FROM products WHERE id = ?`, product).Scan(&remaining); err != nil {
		return false, 0, fmt.Errorf("read stock: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, 0, fmt.Errorf("commit release: %w", err)
	}
	return released, remaining, nil
}

// Metrics are the product service's counters, shared by the gRPC server and the consumer so
// that both inventory designs report through the same names.
type Metrics struct {
	// Applied is faultline_events_applied_total: first applications (stock decremented).
	Applied prometheus.Counter
	// Rejected is faultline_events_rejected_total: orders refused for want of stock.
	Rejected prometheus.Counter
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
		Rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_events_rejected_total",
			Help: "Inventory events (or synchronous reservations) refused because the stock could not honour them.",
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
	for _, c := range []prometheus.Collector{m.Applied, m.Rejected, m.Duplicate, m.Malformed, m.Lag, m.Redelivery} {
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
	switch {
	case r.Duplicate:
		m.Duplicate.Inc()
	case r.Outcome == OutcomeRejected:
		m.Rejected.Inc()
	default:
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
// and answers replayed=true (with the current stock) when the order was applied before. An
// order that cannot be honoured is FailedPrecondition, now and on retry; one that was
// released (ReleaseStock) is Aborted: its caller must reserve under a new order id.
func (s *Server) ReserveStock(ctx context.Context, req *refv1.ReserveStockRequest) (*refv1.ReserveStockResponse, error) {
	res, err := Apply(ctx, s.db, Event{OrderID: req.GetOrderId(), ProductID: req.GetProductId(), Quantity: req.GetQuantity()})
	if err == nil && res.Outcome == OutcomeReleased {
		return nil, status.Errorf(codes.Aborted, "order %s was released; reserve under a new order id", req.GetOrderId())
	}
	if err == nil && res.Outcome != OutcomeConfirmed {
		s.metrics.count(res)
		err = fmt.Errorf("reserve %d of %s for order %s: %w (%d left)", req.GetQuantity(), req.GetProductId(), req.GetOrderId(), ErrInsufficientStock, res.Remaining)
	}
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

// ReleaseStock is the sync design's compensation: the order service gives back the stock
// of a reservation whose order was never committed (see Release).
func (s *Server) ReleaseStock(ctx context.Context, req *refv1.ReleaseStockRequest) (*refv1.ReleaseStockResponse, error) {
	released, remaining, err := Release(ctx, s.db, Event{OrderID: req.GetOrderId(), ProductID: req.GetProductId(), Quantity: req.GetQuantity()})
	switch {
	case errors.Is(err, ErrInvalidEvent):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "release stock: %v", err)
	}
	return &refv1.ReleaseStockResponse{Released: released, Remaining: remaining}, nil
}

// AppliedEvents streams every applied inventory change in the order it was applied, for the
// harness's consistency checks.
func (s *Server) AppliedEvents(_ *refv1.AppliedEventsRequest, stream grpc.ServerStreamingServer[refv1.AppliedEvent]) error {
	ctx := stream.Context()
	rows, err := s.db.QueryContext(ctx,
		`SELECT order_id, product_id, quantity, applied_unix_ms, deliveries, outcome, applications FROM applied_events ORDER BY applied_unix_ms, rowid`)
	if err != nil {
		return status.Errorf(codes.Internal, "list applied events: %v", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		e := &refv1.AppliedEvent{}
		if err := rows.Scan(&e.OrderId, &e.ProductId, &e.Quantity, &e.AppliedUnixMs, &e.Deliveries, &e.Outcome, &e.Applications); err != nil {
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
