package order

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBacklogInterval is how often a running relay recounts faultline_outbox_backlog.
const DefaultBacklogInterval = 250 * time.Millisecond

// Publisher hands one outbox row to the broker and returns once the broker has acknowledged
// it. msgID is the order id: the broker drops a second publish with the same id inside its
// duplicate window, which is what makes re-publishing after a lost PubAck safe.
type Publisher interface {
	Publish(ctx context.Context, subject string, msgID string, payload []byte) error
}

// Relay is the transactional outbox's other half: it publishes committed outbox rows in id
// order and marks each published after the broker acknowledged it. Both order replicas run
// one over the shared database; a row they both publish is deduplicated downstream (broker
// duplicate window by msg id, then product's applied_events), so no lock is needed.
type Relay struct {
	db   *sql.DB
	pub  Publisher
	log  *slog.Logger
	wake chan struct{}
	opts relayOptions

	backlog   prometheus.Gauge
	published prometheus.Counter
	failures  prometheus.Counter
}

type relayOptions struct {
	batch      int
	poll       time.Duration
	backlog    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	timeout    time.Duration
	reg        prometheus.Registerer
}

// RelayOption tunes a Relay.
type RelayOption func(*relayOptions)

// WithBatch sets how many rows one pass reads (default 100).
func WithBatch(n int) RelayOption { return func(o *relayOptions) { o.batch = n } }

// WithPollInterval sets how often the relay looks for rows nobody told it about, such as rows
// the other replica committed (default 100 ms).
func WithPollInterval(d time.Duration) RelayOption { return func(o *relayOptions) { o.poll = d } }

// WithBacklogInterval sets how often Run recounts the unpublished rows for
// faultline_outbox_backlog (default 250 ms). The count runs on its own ticker, not after
// publishes, because a publish to a dead broker can block for the whole publish timeout,
// and a broker outage is exactly when the backlog must be seen growing.
func WithBacklogInterval(d time.Duration) RelayOption { return func(o *relayOptions) { o.backlog = d } }

// WithBackoff bounds the wait after a failed publish (default 100 ms doubling to 2 s).
func WithBackoff(minWait, maxWait time.Duration) RelayOption {
	return func(o *relayOptions) { o.minBackoff, o.maxBackoff = minWait, maxWait }
}

// WithPublishTimeout bounds one publish, so a black-holed broker cannot stall the relay
// forever (default 3 s).
func WithPublishTimeout(d time.Duration) RelayOption { return func(o *relayOptions) { o.timeout = d } }

// WithRegisterer registers the relay metrics on reg (default: a private registry).
func WithRegisterer(reg prometheus.Registerer) RelayOption {
	return func(o *relayOptions) { o.reg = reg }
}

// NewRelay builds a relay over db publishing through pub. log may be nil.
func NewRelay(db *sql.DB, pub Publisher, log *slog.Logger, opts ...RelayOption) (*Relay, error) {
	o := relayOptions{batch: 100, poll: 100 * time.Millisecond, backlog: DefaultBacklogInterval, minBackoff: 100 * time.Millisecond, maxBackoff: 2 * time.Second, timeout: 3 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if db == nil || pub == nil {
		return nil, errors.New("create relay: db and publisher are required")
	}
	if o.batch <= 0 || o.poll <= 0 || o.backlog <= 0 || o.minBackoff <= 0 || o.maxBackoff < o.minBackoff || o.timeout <= 0 {
		return nil, fmt.Errorf("create relay: batch, poll, backlog interval, backoff and timeout must be positive (got %+v)", o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		db: db, pub: pub, log: log, wake: make(chan struct{}, 1), opts: o,
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_outbox_backlog",
			Help: "Outbox rows committed but not yet acknowledged by the broker, by any replica (the table is shared).",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_outbox_published_total",
			Help: "Outbox rows this replica published and marked published.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_outbox_publish_errors_total",
			Help: "Outbox publishes that failed and will be retried.",
		}),
	}
	for _, c := range []prometheus.Collector{r.backlog, r.published, r.failures} {
		if err := o.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register relay metrics: %w", err)
		}
	}
	return r, nil
}

// Notify wakes the relay now; it never blocks, and many notifications collapse into one pass.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends and then returns nil. Meanwhile it keeps
// faultline_outbox_backlog current (see WithBacklogInterval), whether publishes succeed,
// fail or hang.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.watchBacklog(ctx) })
	backoff := r.opts.minBackoff
	for {
		n, err := r.Flush(ctx)
		wait := r.opts.poll
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("relay outbox", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, r.opts.maxBackoff)
		case err == nil:
			backoff = r.opts.minBackoff
			if n == r.opts.batch {
				wait = 0 // a full batch: more rows are probably waiting
			}
		}
		if wait == 0 {
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
			// After an error, a new order must not cut the backoff short.
			if err != nil {
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

type outboxRow struct {
	id      int64
	msgID   string
	subject string
	payload []byte
}

// Flush makes one pass: it publishes up to one batch of unpublished rows in id order and
// stops at the first failure, so a later row is never published before an earlier one. It
// returns how many rows it published.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	rows, err := r.pending(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, row := range rows {
		if err := r.publish(ctx, row); err != nil {
			r.failures.Inc()
			r.refreshBacklog(ctx)
			return done, fmt.Errorf("publish outbox row %d (%s): %w", row.id, row.msgID, err)
		}
		if _, err := r.db.ExecContext(ctx, `UPDATE outbox SET published_unix_ms = ? WHERE id = ? AND published_unix_ms IS NULL`,
			time.Now().UnixMilli(), row.id); err != nil {
			r.refreshBacklog(ctx)
			return done, fmt.Errorf("mark outbox row %d published: %w", row.id, err)
		}
		r.published.Inc()
		done++
	}
	r.refreshBacklog(ctx)
	return done, nil
}

func (r *Relay) publish(ctx context.Context, row outboxRow) error {
	pctx, cancel := context.WithTimeout(ctx, r.opts.timeout)
	defer cancel()
	return r.pub.Publish(pctx, row.subject, row.msgID, row.payload)
}

func (r *Relay) pending(ctx context.Context) ([]outboxRow, error) {
	q, err := r.db.QueryContext(ctx,
		`SELECT id, msg_id, subject, payload FROM outbox WHERE published_unix_ms IS NULL ORDER BY id LIMIT ?`, r.opts.batch)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer func() { _ = q.Close() }()
	var out []outboxRow
	for q.Next() {
		var row outboxRow
		if err := q.Scan(&row.id, &row.msgID, &row.subject, &row.payload); err != nil {
			return nil, fmt.Errorf("scan outbox row: %w", err)
		}
		out = append(out, row)
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// Backlog counts unpublished rows (both replicas' rows: they share the table).
func (r *Relay) Backlog(ctx context.Context) (int64, error) {
	var n int64
	if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE published_unix_ms IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count outbox backlog: %w", err)
	}
	return n, nil
}

// refreshBacklog sets the gauge to the current count. A failed count (the database busy
// past its timeout) leaves the last value: the next tick retries.
func (r *Relay) refreshBacklog(ctx context.Context) {
	if n, err := r.Backlog(ctx); err == nil {
		r.backlog.Set(float64(n))
	} else if ctx.Err() == nil {
		r.log.Debug("count outbox backlog", "err", err)
	}
}

// watchBacklog recounts the backlog at once and then every backlog interval until ctx
// ends. Every replica runs it over the shared table, so each exports the same figure: the
// service's backlog, whichever replica committed the rows and whichever is publishing.
func (r *Relay) watchBacklog(ctx context.Context) {
	t := time.NewTicker(r.opts.backlog)
	defer t.Stop()
	for {
		r.refreshBacklog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
