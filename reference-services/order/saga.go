package order

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline-dev/faultline/reference-services/broker"
)

// Outcome is the JSON body of an orders.outcome message; product.Outcome writes the same
// fields.
type Outcome struct {
	OrderID string `json:"order_id"`
	Outcome string `json:"outcome"`
}

// SagaConsumer closes the async design's saga: it reads product's decisions from the
// durable consumer "saga" on orders.outcome and moves each pending order to confirmed or
// rejected. Every replica runs one on the same durable consumer (the broker spreads the
// messages); the update only touches a pending order, so a redelivered or duplicated
// decision changes nothing.
type SagaConsumer struct {
	db    *sql.DB
	js    jetstream.JetStream
	log   *slog.Logger
	retry time.Duration
	ready func()
}

// NewSagaConsumer builds a consumer over db. log and onReady (called once the durable
// consumer exists) may be nil.
func NewSagaConsumer(db *sql.DB, js jetstream.JetStream, log *slog.Logger, onReady func()) (*SagaConsumer, error) {
	if db == nil || js == nil {
		return nil, errors.New("create saga consumer: db and jetstream are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SagaConsumer{db: db, js: js, log: log, retry: 250 * time.Millisecond, ready: onReady}, nil
}

// Config is the durable consumer's configuration, the same from every replica.
func (c *SagaConsumer) Config() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       broker.ConsumerSaga,
		FilterSubject: broker.SubjectOrderOutcome,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       5 * time.Second,
		MaxAckPending: 256,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
	}
}

// Run applies decisions until ctx ends, riding out broker outages (it backs off and
// subscribes again), and returns nil.
func (c *SagaConsumer) Run(ctx context.Context) error {
	var once sync.Once
	backoff := c.retry
	for ctx.Err() == nil {
		err := c.consume(ctx, &once)
		if ctx.Err() != nil {
			break
		}
		c.log.Warn("consume order outcomes", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (c *SagaConsumer) consume(ctx context.Context, once *sync.Once) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	cons, err := c.js.CreateOrUpdateConsumer(cctx, broker.Stream, c.Config())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, serr := broker.EnsureStream(cctx, c.js); serr == nil {
			cons, err = c.js.CreateOrUpdateConsumer(cctx, broker.Stream, c.Config())
		}
	}
	cancel()
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", broker.ConsumerSaga, err)
	}
	if c.ready != nil {
		once.Do(c.ready)
	}
	return broker.Consume(ctx, cons, 64, "outcomes", c.handle)
}

// handle records one decision: commit first, then ack.
func (c *SagaConsumer) handle(ctx context.Context, msg jetstream.Msg) {
	var o Outcome
	err := json.Unmarshal(msg.Data(), &o)
	if err == nil && (o.OrderID == "" || (o.Outcome != StatusConfirmed && o.Outcome != StatusRejected)) {
		err = fmt.Errorf("order %q, outcome %q: not a decision", o.OrderID, o.Outcome)
	}
	if err != nil {
		// Never applicable: redelivering it would only repeat the failure.
		c.log.Error("terminate order outcome", "err", err)
		_ = msg.Term()
		return
	}
	if _, err := Decide(ctx, c.db, o); err != nil {
		c.log.Warn("record order outcome", "order_id", o.OrderID, "err", err)
		_ = msg.NakWithDelay(c.retry)
		return
	}
	if err := msg.Ack(); err != nil {
		c.log.Warn("ack order outcome", "order_id", o.OrderID, "err", err)
	}
}

// Decide moves a pending order to the status o names and reports whether it changed. A
// decided order keeps its first decision; an unknown outcome is an error.
func Decide(ctx context.Context, db *sql.DB, o Outcome) (bool, error) {
	if o.Outcome != StatusConfirmed && o.Outcome != StatusRejected {
		return false, fmt.Errorf("decide order %s: outcome %q is neither %q nor %q", o.OrderID, o.Outcome, StatusConfirmed, StatusRejected)
	}
	r, err := db.ExecContext(ctx, `UPDATE orders SET status = ? WHERE id = ? AND status = ?`, o.Outcome, o.OrderID, StatusPending)
	if err != nil {
		return false, fmt.Errorf("decide order %s: %w", o.OrderID, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("decide order %s: %w", o.OrderID, err)
	}
	return n == 1, nil
}
