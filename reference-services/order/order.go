// Package order is the order service of the reference system. PlaceOrder is idempotent per
// owner and idempotency key (a UNIQUE constraint decides races, even between replicas; a key
// reused with another request is refused, as draft-ietf-httpapi-idempotency-key-header
// asks), validates the
// merchant and the product synchronously over gRPC, and then either writes the order and an
// outbox row in one transaction (the "async" inventory design; Relay publishes the row) or
// reserves stock synchronously before committing the order (the "sync" design).
//
// In the async design an order is accepted as "pending" and product decides it: the saga
// (see SagaConsumer) moves it to "confirmed" or "rejected" when product's answer arrives on
// orders.outcome. In the sync design an order exists only once its stock is reserved, so it
// is stored "confirmed"; a reservation whose order never committed (the client gave up, the
// commit failed, the process died) is released at once or by the reservation sweep.
package order

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/store"
)

// Migrations is the order schema, applied in order by store.Migrate.
var Migrations = []string{
	`CREATE TABLE orders (
		id              TEXT PRIMARY KEY,
		idempotency_key TEXT NOT NULL UNIQUE,
		merchant_id     TEXT NOT NULL,
		product_id      TEXT NOT NULL,
		quantity        INTEGER NOT NULL CHECK (quantity > 0),
		status          TEXT NOT NULL,
		created_unix_ms INTEGER NOT NULL
	);
	CREATE TABLE outbox (
		id                INTEGER PRIMARY KEY AUTOINCREMENT,
		msg_id            TEXT NOT NULL UNIQUE,
		subject           TEXT NOT NULL,
		payload           BLOB NOT NULL,
		created_unix_ms   INTEGER NOT NULL,
		published_unix_ms INTEGER
	);
	CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_unix_ms IS NULL`,
	// The sync design's order id per idempotency key, committed before product is asked to
	// reserve, so that a retry after a lost reply reserves under the same order id.
	`CREATE TABLE reservations (
		idempotency_key TEXT PRIMARY KEY,
		order_id        TEXT NOT NULL UNIQUE,
		created_unix_ms INTEGER NOT NULL
	)`,
	// Keys belong to their owner (the client that placed the order) and remember the request
	// they were first used with: two clients picking the same key get two orders, and one
	// client reusing a key for another request is refused instead of answered with an
	// unrelated order. SQLite cannot change a UNIQUE constraint in place, so both tables are
	// rebuilt; rows from before have no owner and an empty fingerprint, which matches any
	// request as it did then.
	`CREATE TABLE orders_v3 (
		id              TEXT PRIMARY KEY,
		owner           TEXT NOT NULL DEFAULT '',
		idempotency_key TEXT NOT NULL,
		fingerprint     TEXT NOT NULL DEFAULT '',
		merchant_id     TEXT NOT NULL,
		product_id      TEXT NOT NULL,
		quantity        INTEGER NOT NULL CHECK (quantity > 0),
		status          TEXT NOT NULL,
		created_unix_ms INTEGER NOT NULL,
		UNIQUE (owner, idempotency_key)
	);
	INSERT INTO orders_v3 (id, idempotency_key, merchant_id, product_id, quantity, status, created_unix_ms)
		SELECT id, idempotency_key, merchant_id, product_id, quantity, status, created_unix_ms FROM orders;
	DROP TABLE orders;
	ALTER TABLE orders_v3 RENAME TO orders;
	CREATE TABLE reservations_v3 (
		owner           TEXT NOT NULL DEFAULT '',
		idempotency_key TEXT NOT NULL,
		fingerprint     TEXT NOT NULL DEFAULT '',
		order_id        TEXT NOT NULL UNIQUE,
		created_unix_ms INTEGER NOT NULL,
		PRIMARY KEY (owner, idempotency_key)
	);
	INSERT INTO reservations_v3 (idempotency_key, order_id, created_unix_ms)
		SELECT idempotency_key, order_id, created_unix_ms FROM reservations;
	DROP TABLE reservations;
	ALTER TABLE reservations_v3 RENAME TO reservations`,
	// What a reservation asked for, so that one whose order never committed can be released.
	`ALTER TABLE reservations ADD COLUMN product_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE reservations ADD COLUMN quantity INTEGER NOT NULL DEFAULT 0`,
}

// Prepare migrates the schema. Orders have no seed data.
func Prepare(ctx context.Context, db *sql.DB) error {
	if err := store.Migrate(ctx, db, Migrations); err != nil {
		return fmt.Errorf("migrate order schema: %w", err)
	}
	return nil
}

// Inventory designs (design.Design.Inventory).
const (
	InventoryAsync = "async"
	InventorySync  = "sync"
)

// Order statuses. An async order is pending until product decided it; a sync order is
// stored confirmed, since it exists only once its stock is reserved.
const (
	StatusPending   = refv1.StatusPending
	StatusConfirmed = refv1.StatusConfirmed
	StatusRejected  = refv1.StatusRejected
)

// DefaultSubject is the subject outbox rows are published on (broker.SubjectOrderPlaced).
const DefaultSubject = "orders.placed"

// Payload is the JSON body of an orders.placed event; product.Event reads the same fields.
type Payload struct {
	OrderID        string `json:"order_id"`
	ProductID      string `json:"product_id"`
	Quantity       int64  `json:"quantity"`
	IdempotencyKey string `json:"idempotency_key"`
}

// Server implements refv1.OrderServiceServer on a SQLite database.
type Server struct {
	refv1.UnimplementedOrderServiceServer
	db        *sql.DB
	merchants refv1.MerchantServiceClient
	products  refv1.ProductServiceClient
	opts      serverOptions
}

var _ refv1.OrderServiceServer = (*Server)(nil)

type serverOptions struct {
	inventory string
	subject   string
	notify    func()
	direct    Publisher
	log       *slog.Logger
	now       func() time.Time
}

// Option tunes a Server.
type Option func(*serverOptions)

// WithInventory selects the inventory design: InventoryAsync (default) or InventorySync.
func WithInventory(mode string) Option { return func(o *serverOptions) { o.inventory = mode } }

// WithSubject sets the subject written into outbox rows (default DefaultSubject).
func WithSubject(s string) Option { return func(o *serverOptions) { o.subject = s } }

// WithNotify is called after every committed outbox row, to wake the relay at once instead of
// at its next poll.
func WithNotify(f func()) Option { return func(o *serverOptions) { o.notify = f } }

// WithDirectPublish is the outbox: off design: no outbox row is written; the event is
// published through pub after the order commits, and lost when that publish fails (a
// broker outage, a crash in between, a client that gives up). A teaching design only.
func WithDirectPublish(pub Publisher) Option { return func(o *serverOptions) { o.direct = pub } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *serverOptions) { o.log = l } }

// NewServer returns the gRPC implementation over db (which must have been Prepared), validating
// placements through the merchant and product clients.
func NewServer(db *sql.DB, merchants refv1.MerchantServiceClient, products refv1.ProductServiceClient, opts ...Option) (*Server, error) {
	o := serverOptions{inventory: InventoryAsync, subject: DefaultSubject, log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.inventory != InventoryAsync && o.inventory != InventorySync {
		return nil, fmt.Errorf("create order server: inventory design %q is neither %q nor %q", o.inventory, InventoryAsync, InventorySync)
	}
	if db == nil || merchants == nil || products == nil {
		return nil, errors.New("create order server: db, merchant and product clients are required")
	}
	return &Server{db: db, merchants: merchants, products: products, opts: o}, nil
}

const orderColumns = `id, idempotency_key, merchant_id, product_id, quantity, status, created_unix_ms`

func scanOrder(row interface{ Scan(...any) error }) (*refv1.Order, error) {
	o := &refv1.Order{}
	err := row.Scan(&o.Id, &o.IdempotencyKey, &o.MerchantId, &o.ProductId, &o.Quantity, &o.Status, &o.CreatedUnixMs)
	return o, err
}

// byKey returns the order owner stored under key and the fingerprint of the request that
// placed it, or a nil order.
func (s *Server) byKey(ctx context.Context, owner, key string) (*refv1.Order, string, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+orderColumns+`, fingerprint FROM orders WHERE owner = ? AND idempotency_key = ?`, owner, key)
	o := &refv1.Order{}
	var fp string
	err := row.Scan(&o.Id, &o.IdempotencyKey, &o.MerchantId, &o.ProductId, &o.Quantity, &o.Status, &o.CreatedUnixMs, &fp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read order by key: %w", err)
	}
	return o, fp, nil
}

// Fingerprint is the request a key stands for: the caller's (the gateway hashes method,
// path and body), or, when it sends none, a hash of what the order would be.
func Fingerprint(req *refv1.PlaceOrderRequest) string {
	if fp := req.GetFingerprint(); fp != "" {
		return fp
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d", req.GetMerchantId(), req.GetProductId(), req.GetQuantity()))
	return "fields:" + hex.EncodeToString(sum[:])
}

// replay answers a stored order for a repeated key, or AlreadyExists when the key was first
// used with another request: answering that order would tell the client a request it never
// placed succeeded.
func replay(o *refv1.Order, stored, fp string) (*refv1.PlaceOrderResponse, error) {
	if stored != "" && stored != fp {
		return nil, status.Errorf(codes.AlreadyExists, "idempotency key %q was used with another request", o.GetIdempotencyKey())
	}
	return &refv1.PlaceOrderResponse{Order: o, Replayed: true}, nil
}

// PlaceOrder accepts an order once per owner and idempotency key. A repeated key with the
// same request answers the stored order with replayed=true, so that a client retrying after
// a timeout can never create a second order; a repeated key with another request is
// AlreadyExists. Another owner's key of the same name is another key.
func (s *Server) PlaceOrder(ctx context.Context, req *refv1.PlaceOrderRequest) (*refv1.PlaceOrderResponse, error) {
	if errs := validatePlace(req); len(errs) > 0 {
		return nil, status.Error(codes.InvalidArgument, errors.Join(errs...).Error())
	}
	owner, fp := req.GetOwner(), Fingerprint(req)
	existing, stored, err := s.byKey(ctx, owner, req.GetIdempotencyKey())
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if existing != nil {
		return replay(existing, stored, fp)
	}
	if err := s.validateRefs(ctx, req); err != nil {
		return nil, err
	}
	id, st := NewID(s.opts.now()), StatusPending
	if s.opts.inventory == InventorySync {
		st = StatusConfirmed
		if id, err = s.reservationID(ctx, req, owner, fp, id); err != nil {
			if _, ok := status.FromError(err); ok {
				return nil, err
			}
			return nil, status.Error(codes.Unavailable, err.Error())
		}
	}
	o := &refv1.Order{
		Id:             id,
		IdempotencyKey: req.GetIdempotencyKey(),
		MerchantId:     req.GetMerchantId(),
		ProductId:      req.GetProductId(),
		Quantity:       req.GetQuantity(),
		Status:         st,
		CreatedUnixMs:  s.opts.now().UnixMilli(),
	}
	err = s.insert(ctx, o, owner, fp)
	var reserveErr *reserveError
	if errors.As(err, &reserveErr) && reserveErr.attempted {
		// The stock may have been taken for an order that now does not exist: give it back.
		s.compensate(ctx, o)
		err = reserveErr.err
	}
	if store.IsUniqueViolation(err) {
		// A concurrent request with the same key (here or in the other replica) won.
		existing, stored, rerr := s.byKey(ctx, owner, req.GetIdempotencyKey())
		if rerr != nil {
			return nil, status.Error(codes.Unavailable, rerr.Error())
		}
		if existing != nil {
			return replay(existing, stored, fp)
		}
	}
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.Unavailable, "place order: %v", err)
	}
	if s.opts.inventory == InventoryAsync && s.opts.direct != nil {
		s.publishDirect(ctx, o)
	}
	if s.opts.inventory == InventoryAsync && s.opts.notify != nil {
		s.opts.notify()
	}
	return &refv1.PlaceOrderResponse{Order: o}, nil
}

// publishDirect is the outbox: off design's publish after commit. Its failure is only
// logged: the order is committed and acknowledged, and its event is gone, which is the
// anomaly that design exists to show.
func (s *Server) publishDirect(ctx context.Context, o *refv1.Order) {
	payload, err := json.Marshal(Payload{OrderID: o.Id, ProductID: o.ProductId, Quantity: o.Quantity, IdempotencyKey: o.IdempotencyKey})
	if err == nil {
		err = s.opts.direct.Publish(ctx, s.opts.subject, o.Id, payload)
	}
	if err != nil {
		s.opts.log.Warn("inventory event lost: published directly after commit, without an outbox", "order_id", o.Id, "err", err)
	}
}

// reservationID returns the order id that owner's key reserves stock under, recording id for
// it on first use. It is committed before ReserveStock is called, so that a reservation whose
// order never commits is known and can be released: at once by PlaceOrder (compensate),
// or by the reservation sweep when the process died first (SweepReservations).
// A retry with another request under that key is AlreadyExists: its reservation would be
// answered as the first one's replay.
func (s *Server) reservationID(ctx context.Context, req *refv1.PlaceOrderRequest, owner, fp, id string) (string, error) {
	key := req.GetIdempotencyKey()
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO reservations (owner, idempotency_key, fingerprint, order_id, created_unix_ms, product_id, quantity) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		owner, key, fp, id, s.opts.now().UnixMilli(), req.GetProductId(), req.GetQuantity()); err != nil {
		return "", fmt.Errorf("record reservation id: %w", err)
	}
	var got, stored string
	if err := s.db.QueryRowContext(ctx, `SELECT order_id, fingerprint FROM reservations WHERE owner = ? AND idempotency_key = ?`, owner, key).Scan(&got, &stored); err != nil {
		return "", fmt.Errorf("read reservation id: %w", err)
	}
	if stored != "" && stored != fp {
		return "", status.Errorf(codes.AlreadyExists, "idempotency key %q was used with another request", key)
	}
	return got, nil
}

func validatePlace(req *refv1.PlaceOrderRequest) []error {
	var errs []error
	if req.GetIdempotencyKey() == "" {
		errs = append(errs, errors.New("idempotency_key is required"))
	}
	if req.GetMerchantId() == "" {
		errs = append(errs, errors.New("merchant_id is required"))
	}
	if req.GetProductId() == "" {
		errs = append(errs, errors.New("product_id is required"))
	}
	if req.GetQuantity() <= 0 {
		errs = append(errs, fmt.Errorf("quantity %d is not positive", req.GetQuantity()))
	}
	return errs
}

// validateRefs checks the merchant and product with their owners. A dependency's NotFound is
// the caller's fault and passes through; any other failure is the dependency's and becomes
// Unavailable, so the gateway can tell "bad order" from "try again".
func (s *Server) validateRefs(ctx context.Context, req *refv1.PlaceOrderRequest) error {
	m, err := s.merchants.GetMerchant(ctx, &refv1.GetMerchantRequest{Id: req.GetMerchantId()})
	if err != nil {
		return dependencyError("merchant", err)
	}
	if !m.GetActive() {
		return status.Errorf(codes.FailedPrecondition, "merchant %q is not active", m.GetId())
	}
	p, err := s.products.GetProduct(ctx, &refv1.GetProductRequest{Id: req.GetProductId()})
	if err != nil {
		return dependencyError("product", err)
	}
	if p.GetMerchantId() != req.GetMerchantId() {
		return status.Errorf(codes.InvalidArgument, "product %q is sold by merchant %q, not %q", p.GetId(), p.GetMerchantId(), req.GetMerchantId())
	}
	return nil
}

func dependencyError(dep string, err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound, codes.InvalidArgument:
		return status.Errorf(st.Code(), "validate %s: %s", dep, st.Message())
	case codes.DeadlineExceeded, codes.Canceled:
		return status.Errorf(st.Code(), "validate %s: %s", dep, st.Message())
	}
	return status.Errorf(codes.Unavailable, "validate %s: %s", dep, st.Message())
}

// reserveError is an insert that failed after ReserveStock was called: product may hold a
// reservation for an order that was not committed.
type reserveError struct {
	attempted bool
	err       error
}

func (e *reserveError) Error() string { return e.err.Error() }
func (e *reserveError) Unwrap() error { return e.err }

// insert stores o in one transaction, with its outbox row (async) or after a successful stock
// reservation (sync). In the sync design the transaction holds the write lock across the
// ReserveStock call: that is what makes "order committed only if stock reserved" and
// "one order per key" hold together, and its cost (placements serialise behind a slow
// product) is exactly what the design comparison is meant to show. A sync insert that
// fails after calling ReserveStock says so (reserveError), so that the caller releases it.
func (s *Server) insert(ctx context.Context, o *refv1.Order, owner, fp string) (err error) {
	reserved := false
	defer func() {
		if err != nil && reserved {
			err = &reserveError{attempted: true, err: err}
		}
	}()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin order: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO orders (`+orderColumns+`, owner, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.Id, o.IdempotencyKey, o.MerchantId, o.ProductId, o.Quantity, o.Status, o.CreatedUnixMs, owner, fp); err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	switch s.opts.inventory {
	case InventorySync:
		reserved = true
		if _, err := s.products.ReserveStock(ctx, &refv1.ReserveStockRequest{OrderId: o.Id, ProductId: o.ProductId, Quantity: o.Quantity}); err != nil {
			st, _ := status.FromError(err)
			if st.Code() == codes.Aborted {
				// The reservation was released under this order id (an earlier attempt
				// with this key gave up): a retry reserves under a new id.
				return status.Errorf(codes.Unavailable, "reserve stock: %s", st.Message())
			}
			if st.Code() == codes.FailedPrecondition || st.Code() == codes.NotFound || st.Code() == codes.InvalidArgument {
				return status.Errorf(st.Code(), "reserve stock: %s", st.Message())
			}
			return status.Errorf(codes.Unavailable, "reserve stock: %s", st.Message())
		}
	default:
		if s.opts.direct != nil {
			break // outbox: off publishes after the commit, see publishDirect
		}
		payload, err := json.Marshal(Payload{OrderID: o.Id, ProductID: o.ProductId, Quantity: o.Quantity, IdempotencyKey: o.IdempotencyKey})
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (msg_id, subject, payload, created_unix_ms) VALUES (?, ?, ?, ?)`,
			o.Id, s.opts.subject, payload, o.CreatedUnixMs); err != nil {
			return fmt.Errorf("insert outbox row: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit order: %w", err)
	}
	return nil
}

// GetOrder returns one order of req's owner, NotFound for an unknown id and for another
// owner's order alike, so that an id reveals nothing to whoever does not own it.
func (s *Server) GetOrder(ctx context.Context, req *refv1.GetOrderRequest) (*refv1.Order, error) {
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "id is required")
	}
	o, err := scanOrder(s.db.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ? AND owner = ?`, req.GetId(), req.GetOwner()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Errorf(codes.NotFound, "order %q not found", req.GetId())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "read order: %v", err)
	}
	return o, nil
}

// ListOrders streams every order in creation order, for the harness's consistency checks.
func (s *Server) ListOrders(_ *refv1.ListOrdersRequest, stream grpc.ServerStreamingServer[refv1.Order]) error {
	ctx := stream.Context()
	rows, err := s.db.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders ORDER BY created_unix_ms, rowid`)
	if err != nil {
		return status.Errorf(codes.Internal, "list orders: %v", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return status.Errorf(codes.Internal, "scan order: %v", err)
		}
		if err := stream.Send(o); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return status.Errorf(codes.Internal, "list orders: %v", err)
	}
	return nil
}

// crockford is the ULID alphabet: no I, L, O or U, so ids survive being read aloud.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a 26-character ULID-style id: 48 bits of milliseconds then 80 random bits,
// so ids sort by creation time and two replicas never collide in practice.
func NewID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails on supported platforms
	// 128 bits -> 26 base32 digits (130 bits, top 2 zero).
	var out [26]byte
	var acc uint64
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 | uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 | uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	for i := 25; i >= 0; i-- {
		acc = lo & 31
		out[i] = crockford[acc]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
