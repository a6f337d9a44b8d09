package order_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/reference-services/order/mocks"
)

func outboxDB(t *testing.T, msgIDs ...string) *sql.DB {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "order.db"))
	require.NoError(t, order.Prepare(context.Background(), db))
	for _, id := range msgIDs {
		addRow(t, db, id)
	}
	return db
}

func addRow(t *testing.T, db *sql.DB, msgID string) {
	t.Helper()
	_, err := db.ExecContext(context.Background(),
		`INSERT INTO outbox (msg_id, subject, payload, created_unix_ms) VALUES (?, 'orders.placed', ?, 1)`, msgID, []byte("payload-"+msgID))
	require.NoError(t, err)
}

func unpublished(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT msg_id FROM outbox WHERE published_unix_ms IS NULL ORDER BY id`)
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestRelayPublishesInOrderAndMarks(t *testing.T) {
	db := outboxDB(t, "a", "b", "c")
	pub := mocks.NewPublisher(t)
	var seen []string
	for _, id := range []string{"a", "b", "c"} {
		pub.EXPECT().Publish(mock.Anything, "orders.placed", id, []byte("payload-"+id)).
			Run(func(_ context.Context, _, msgID string, _ []byte) { seen = append(seen, msgID) }).
			Return(nil).Once()
	}
	r, err := order.NewRelay(db, pub, nil)
	require.NoError(t, err)
	n, err := r.Flush(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	assert.Equal(t, []string{"a", "b", "c"}, seen)
	assert.Empty(t, unpublished(t, db))

	// A second pass finds nothing (the mock fails the test on any further call).
	n, err = r.Flush(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
}

// A failed publish leaves the row unpublished, stops the pass (no later row overtakes it),
// and the next pass retries the same row first.
func TestRelayFailureKeepsRowAndRetries(t *testing.T) {
	db := outboxDB(t, "a", "b")
	pub := mocks.NewPublisher(t)
	boom := errors.New("broker unreachable")
	first := pub.EXPECT().Publish(mock.Anything, "orders.placed", "a", mock.Anything).Return(boom).Once()
	retry := pub.EXPECT().Publish(mock.Anything, "orders.placed", "a", mock.Anything).Return(nil).Once().NotBefore(first)
	pub.EXPECT().Publish(mock.Anything, "orders.placed", "b", mock.Anything).Return(nil).Once().NotBefore(retry)

	r, err := order.NewRelay(db, pub, nil, order.WithBatch(10))
	require.NoError(t, err)
	n, err := r.Flush(context.Background())
	require.ErrorIs(t, err, boom)
	assert.Zero(t, n)
	assert.Equal(t, []string{"a", "b"}, unpublished(t, db))
	backlog, err := r.Backlog(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(2), backlog)

	n, err = r.Flush(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.Empty(t, unpublished(t, db))
}

// Run publishes a new row as soon as it is notified, without waiting for its (here: hour
// long) poll, and keeps retrying through publish failures.
func TestRelayRunNotifyAndBackoff(t *testing.T) {
	db := outboxDB(t)
	pub := mocks.NewPublisher(t)
	fail := pub.EXPECT().Publish(mock.Anything, "orders.placed", "x", mock.Anything).Return(errors.New("nope")).Times(2)
	pub.EXPECT().Publish(mock.Anything, "orders.placed", "x", mock.Anything).Return(nil).Once().NotBefore(fail)
	r, err := order.NewRelay(db, pub, nil, order.WithPollInterval(time.Hour), order.WithBackoff(10*time.Millisecond, 20*time.Millisecond))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	// Give Run its first (empty) pass, then add a row the poll would not see for an hour.
	time.Sleep(50 * time.Millisecond)
	addRow(t, db, "x")
	r.Notify()
	require.Eventually(t, func() bool { return len(unpublished(t, db)) == 0 }, 30*time.Second, 10*time.Millisecond)
}

// A row the other replica committed is found by polling, without a notification.
func TestRelayRunPolls(t *testing.T) {
	db := outboxDB(t)
	pub := mocks.NewPublisher(t)
	pub.EXPECT().Publish(mock.Anything, "orders.placed", "from-other-replica", mock.Anything).Return(nil).Once()
	r, err := order.NewRelay(db, pub, nil, order.WithPollInterval(20*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	addRow(t, openDB(t, dbPath(t, db)), "from-other-replica")
	require.Eventually(t, func() bool { return len(unpublished(t, db)) == 0 }, 30*time.Second, 10*time.Millisecond)
}

// backlogGauge reads faultline_outbox_backlog from reg; ok is false while it is not exported.
func backlogGauge(t *testing.T, reg *prometheus.Registry) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "faultline_outbox_backlog" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// While a publish hangs (a broker that accepts nothing and answers nothing, with a publish
// timeout far beyond the test), the backlog gauge still follows the table, rows committed
// by another replica included: it is recounted on its own ticker, not after publishes.
func TestRelayBacklogGaugeWhilePublishHangs(t *testing.T) {
	db := outboxDB(t, "a")
	pub := mocks.NewPublisher(t)
	hanging := make(chan struct{})
	pub.EXPECT().Publish(mock.Anything, "orders.placed", "a", mock.Anything).
		RunAndReturn(func(ctx context.Context, _, _ string, _ []byte) error {
			close(hanging)
			<-ctx.Done()
			return ctx.Err()
		}).Once()
	reg := prometheus.NewRegistry()
	r, err := order.NewRelay(db, pub, nil, order.WithRegisterer(reg), order.WithPublishTimeout(time.Hour),
		order.WithBacklogInterval(20*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	<-hanging
	backlogIs := func(want float64) func() bool {
		return func() bool { v, ok := backlogGauge(t, reg); return ok && v == want }
	}
	require.Eventually(t, backlogIs(1), 30*time.Second, 10*time.Millisecond)
	other := openDB(t, dbPath(t, db))
	addRow(t, other, "b")
	addRow(t, other, "c")
	require.Eventually(t, backlogIs(3), 30*time.Second, 10*time.Millisecond)
}

func dbPath(t *testing.T, db *sql.DB) string {
	t.Helper()
	var seq int
	var name, file string
	require.NoError(t, db.QueryRowContext(context.Background(), `PRAGMA database_list`).Scan(&seq, &name, &file))
	return file
}

func TestNewRelayValidates(t *testing.T) {
	db := outboxDB(t)
	pub := mocks.NewPublisher(t)
	tests := []struct {
		name string
		db   *sql.DB
		pub  order.Publisher
		opts []order.RelayOption
	}{
		{"nil db", nil, pub, nil},
		{"nil publisher", db, nil, nil},
		{"zero batch", db, pub, []order.RelayOption{order.WithBatch(0)}},
		{"zero backlog interval", db, pub, []order.RelayOption{order.WithBacklogInterval(0)}},
		{"inverted backoff", db, pub, []order.RelayOption{order.WithBackoff(time.Second, time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := order.NewRelay(tt.db, tt.pub, nil, tt.opts...)
			assert.Error(t, err)
		})
	}
}
