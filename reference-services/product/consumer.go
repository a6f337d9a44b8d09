package product

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline-dev/faultline/reference-services/broker"
)

// Consumer applies orders.placed events from the durable JetStream consumer "inventory".
// Every replica runs one against the same durable consumer, so the broker spreads messages
// across replicas (work-queue style); the applied_events table makes redeliveries, duplicate
// publishes and a replica crashing between commit and ack all harmless.
type Consumer struct {
	db      *sql.DB
	js      jetstream.JetStream
	metrics *Metrics
	log     *slog.Logger
	opts    consumerOptions

	cons atomic.Pointer[jetstream.Consumer]
}

type consumerOptions struct {
	ackWait       time.Duration
	maxAckPending int
	batch         int
	lagEvery      time.Duration
	retryDelay    time.Duration
	onReady       func()
	noDedup       bool
}

// ConsumerOption tunes a Consumer.
type ConsumerOption func(*consumerOptions)

// WithAckWait sets how long the broker waits for an ack before redelivering (default 5 s).
func WithAckWait(d time.Duration) ConsumerOption {
	return func(o *consumerOptions) { o.ackWait = d }
}

// WithMaxAckPending bounds the messages in flight across all replicas (default 256), which is
// what makes the broker a buffer rather than a fire hose when product is slow.
func WithMaxAckPending(n int) ConsumerOption {
	return func(o *consumerOptions) { o.maxAckPending = n }
}

// WithLagInterval sets how often faultline_consumer_lag is refreshed (default 250 ms).
func WithLagInterval(d time.Duration) ConsumerOption {
	return func(o *consumerOptions) { o.lagEvery = d }
}

// WithOnReady is called once, the first time the durable consumer exists on the broker.
func WithOnReady(f func()) ConsumerOption {
	return func(o *consumerOptions) { o.onReady = f }
}

// WithoutConsumerIdempotency makes the consumer take stock again on every redelivery (see
// WithoutDeduplication): the consumer_idempotency: off design, for teaching only.
func WithoutConsumerIdempotency() ConsumerOption {
	return func(o *consumerOptions) { o.noDedup = true }
}

// Outcome is the JSON body of an orders.outcome message: product's decision on one order.
type Outcome struct {
	OrderID string `json:"order_id"`
	// Outcome is OutcomeConfirmed or OutcomeRejected.
	Outcome   string `json:"outcome"`
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

// NewConsumer builds a consumer that applies events to db. metrics and log may be nil.
func NewConsumer(db *sql.DB, js jetstream.JetStream, metrics *Metrics, log *slog.Logger, opts ...ConsumerOption) *Consumer {
	o := consumerOptions{
		ackWait:       5 * time.Second,
		maxAckPending: 256,
		batch:         64,
		lagEvery:      250 * time.Millisecond,
		retryDelay:    500 * time.Millisecond,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics, _ = NewMetrics(nil) // a fresh registry cannot collide
	}
	return &Consumer{db: db, js: js, metrics: metrics, log: log, opts: o}
}

// Config is the durable consumer's configuration. Every replica creates-or-updates it with
// the same values, so whichever starts first wins and the others agree.
func (c *Consumer) Config() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       broker.ConsumerInventory,
		FilterSubject: broker.SubjectOrderPlaced,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.opts.ackWait,
		MaxAckPending: c.opts.maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
	}
}

// Run fetches and applies events until ctx ends. It survives the broker going away: fetches
// fail, it backs off, and it picks up where the durable consumer left off once the broker is
// back. It returns nil when ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.pollLag(ctx) })
	var once sync.Once
	backoff := c.opts.retryDelay
	for ctx.Err() == nil {
		cons, err := c.consumer(ctx)
		if err == nil {
			if c.opts.onReady != nil {
				once.Do(c.opts.onReady)
			}
			err = c.consume(ctx, cons)
		}
		if err == nil {
			backoff = c.opts.retryDelay
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
			errors.Is(err, jetstream.ErrStreamNotFound) {
			c.cons.Store(nil)
		}
		c.log.Warn("consume inventory events", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// consumer returns the durable consumer, creating or updating it on first use.
func (c *Consumer) consumer(ctx context.Context) (jetstream.Consumer, error) {
	if p := c.cons.Load(); p != nil {
		return *p, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cons, err := c.js.CreateOrUpdateConsumer(cctx, broker.Stream, c.Config())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// A broker started on an empty data dir by hand has no stream yet; the stream is
		// shared infrastructure, so whoever needs it first creates it.
		if _, serr := broker.EnsureStream(cctx, c.js); serr == nil {
			cons, err = c.js.CreateOrUpdateConsumer(cctx, broker.Stream, c.Config())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", broker.ConsumerInventory, err)
	}
	c.cons.Store(&cons)
	return cons, nil
}

// consume applies events from a continuous pull until ctx ends (nil) or the subscription
// fails (an error; Run backs off and subscribes again), without a gap in which this
// replica holds no outstanding pull (broker.Consume says why that matters).
func (c *Consumer) consume(ctx context.Context, cons jetstream.Consumer) error {
	return broker.Consume(ctx, cons, c.opts.batch, "events", c.handle)
}

// handle applies one message: commit first, then publish the decision, then ack, so a
// crash or a failed publish in between only causes a redelivery, which applied_events
// recognises and answers with the decision made the first time (published again under
// the same message id, which the broker deduplicates).
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	var e Event
	if err := json.Unmarshal(msg.Data(), &e); err != nil {
		c.terminate(msg, fmt.Errorf("parse event: %w", err))
		return
	}
	var opts []ApplyOption
	if c.opts.noDedup {
		opts = append(opts, WithoutDeduplication())
	}
	res, err := Apply(ctx, c.db, e, opts...)
	switch {
	case errors.Is(err, ErrInvalidEvent), errors.Is(err, ErrUnknownProduct):
		c.terminate(msg, err)
		return
	case err != nil:
		// Transient (database busy, shutting down): let the broker redeliver later.
		c.metrics.Redelivery.Inc()
		c.log.Warn("apply inventory event", "order_id", e.OrderID, "err", err)
		_ = msg.NakWithDelay(c.opts.retryDelay)
		return
	}
	c.metrics.count(res)
	if err := c.publishOutcome(ctx, e, res.Outcome); err != nil {
		c.metrics.Redelivery.Inc()
		c.log.Warn("publish order outcome", "order_id", e.OrderID, "err", err)
		_ = msg.NakWithDelay(c.opts.retryDelay)
		return
	}
	if err := msg.Ack(); err != nil {
		// The commit stands; a redelivery will be counted as a duplicate.
		c.log.Warn("ack inventory event", "order_id", e.OrderID, "err", err)
	}
}

// publishOutcome tells the order service what became of the order. A released tombstone
// (the sync design's) is never answered here: no async order has one.
func (c *Consumer) publishOutcome(ctx context.Context, e Event, outcome string) error {
	body, err := json.Marshal(Outcome{OrderID: e.OrderID, Outcome: outcome, ProductID: e.ProductID, Quantity: e.Quantity})
	if err != nil {
		return fmt.Errorf("encode outcome: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.js.Publish(pctx, broker.SubjectOrderOutcome, body, jetstream.WithMsgID("outcome-"+e.OrderID)); err != nil {
		return fmt.Errorf("publish outcome of %s: %w", e.OrderID, err)
	}
	return nil
}

// terminate tells the broker never to redeliver a message that can never be applied.
func (c *Consumer) terminate(msg jetstream.Msg, why error) {
	c.metrics.Malformed.Inc()
	c.log.Error("terminate inventory event", "subject", msg.Subject(), "err", why)
	if err := msg.Term(); err != nil {
		c.log.Warn("terminate inventory event", "err", err)
	}
}

// pollLag keeps faultline_consumer_lag current. While the broker is unreachable the gauge
// keeps its last value: the backlog is unknown, not zero.
func (c *Consumer) pollLag(ctx context.Context) {
	t := time.NewTicker(c.opts.lagEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := c.cons.Load()
		if p == nil {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := (*p).Info(ictx)
		cancel()
		if err != nil {
			continue
		}
		c.metrics.Lag.Set(float64(info.NumPending) + float64(info.NumAckPending))
	}
}
