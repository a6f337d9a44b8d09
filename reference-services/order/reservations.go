package order

import (
	"context"
	"errors"
	"fmt"
	"time"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
)

// DefaultReservationExpiry is how old a sync reservation without a committed order must be
// before the sweep releases it. It is longer than any placement may take (the gateway
// gives PlaceOrder 3 s per attempt, and the deadline travels with the call), so a sweep
// does not race a placement that can still commit. Even if it did, nothing would leak: the
// release leaves a tombstone, and the placement's late ReserveStock is refused.
const DefaultReservationExpiry = 5 * time.Second

// compensationTimeout bounds one compensating release, which runs after the caller may
// have given up and so cannot use the caller's deadline. Most of it is spent waiting for
// the write lock behind placements that hold it across their own ReserveStock (each one a
// round trip to product, slow exactly when clients give up), so it is generous; what it
// cannot finish the sweep does.
const compensationTimeout = 10 * time.Second

// compensate releases the reservation of o, whose insert failed after ReserveStock was
// called: the client gave up and the commit was cancelled, the commit failed, or
// ReserveStock's answer was lost. It runs detached from the caller's cancellation; when it
// cannot finish (product unreachable) the reservation row stays and the sweep retries.
func (s *Server) compensate(ctx context.Context, o *refv1.Order) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), compensationTimeout)
	defer cancel()
	n, err := s.releaseOrphans(cctx, `r.order_id = ?`, o.Id)
	if err != nil {
		s.opts.log.Warn("release reservation of an order that did not commit; the sweep will retry", "order_id", o.Id, "err", err)
		return
	}
	if n > 0 {
		s.opts.log.Info("released the reservation of an order that did not commit", "order_id", o.Id)
	}
}

// SweepReservations releases every sync reservation older than olderThan whose order does
// not exist, and returns how many it released. It covers what compensation cannot: a
// process that died between ReserveStock and its commit, or a product that was
// unreachable when the compensation ran.
func (s *Server) SweepReservations(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := s.opts.now().Add(-olderThan).UnixMilli()
	// Look without the write lock first: nearly always there is nothing to release, and
	// taking the lock every second would stall placements for nothing.
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM reservations r LEFT JOIN orders o ON o.id = r.order_id
		WHERE o.id IS NULL AND r.created_unix_ms < ?`, cutoff).Scan(&n); err != nil {
		return 0, fmt.Errorf("count orphaned reservations: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return s.releaseOrphans(ctx, `r.created_unix_ms < ?`, cutoff)
}

// RunReservationSweep sweeps every interval until ctx ends (see SweepReservations).
func (s *Server) RunReservationSweep(ctx context.Context, interval, olderThan time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.SweepReservations(ctx, olderThan); err != nil && ctx.Err() == nil {
			s.opts.log.Warn("sweep reservations", "err", err)
		} else if n > 0 {
			s.opts.log.Info("released reservations of orders that never committed", "count", n)
		}
	}
}

// releaseOrphans releases the reservations matching where (over reservations r) that have
// no order, and forgets them, so that a retry with the same key reserves under a new id.
// It holds the database's write lock throughout (transactions begin immediate): a
// placement holds it from its order insert to its commit, across ReserveStock, so a
// reservation is judged orphaned only when no placement of it can still commit.
func (s *Server) releaseOrphans(ctx context.Context, where string, arg any) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("begin release: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	type orphan struct {
		key, id, product string
		qty              int64
	}
	rows, err := tx.QueryContext(ctx, `SELECT r.idempotency_key, r.order_id, r.product_id, r.quantity FROM reservations r
		LEFT JOIN orders o ON o.id = r.order_id WHERE o.id IS NULL AND `+where+` ORDER BY r.created_unix_ms LIMIT 100`, arg)
	if err != nil {
		return 0, fmt.Errorf("find orphaned reservations: %w", err)
	}
	var orphans []orphan
	for rows.Next() {
		var o orphan
		if err := rows.Scan(&o.key, &o.id, &o.product, &o.qty); err != nil {
			_ = rows.Close()
			return 0, fmt.Errorf("scan reservation: %w", err)
		}
		orphans = append(orphans, o)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("find orphaned reservations: %w", err)
	}
	released := 0
	var errs []error
	for _, o := range orphans {
		if o.product == "" {
			errs = append(errs, fmt.Errorf("reservation %s names no product", o.id))
			continue
		}
		if _, err := s.products.ReleaseStock(ctx, &refv1.ReleaseStockRequest{OrderId: o.id, ProductId: o.product, Quantity: o.qty}); err != nil {
			errs = append(errs, fmt.Errorf("release order %s: %w", o.id, err))
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM reservations WHERE idempotency_key = ? AND order_id = ?`, o.key, o.id); err != nil {
			errs = append(errs, fmt.Errorf("forget reservation %s: %w", o.id, err))
			continue
		}
		released++
	}
	if err := tx.Commit(); err != nil {
		// The releases stand; the next sweep finds the rows again and releases nothing twice.
		return 0, fmt.Errorf("commit release: %w", err)
	}
	return released, errors.Join(errs...)
}
