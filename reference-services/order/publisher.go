package order

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStreamPublisher is the real Publisher: a JetStream publish with Nats-Msg-Id set, which
// returns only after the stream stored (or deduplicated) the message.
type JetStreamPublisher struct {
	js    jetstream.JetStream
	guard func(ctx context.Context, fn func(context.Context) error) error
}

var _ Publisher = (*JetStreamPublisher)(nil)

// NewJetStreamPublisher publishes through js. guard, if not nil, wraps every publish (the
// order->broker resilience policy: timeout, retries, breaker).
func NewJetStreamPublisher(js jetstream.JetStream, guard func(ctx context.Context, fn func(context.Context) error) error) (*JetStreamPublisher, error) {
	if js == nil {
		return nil, errors.New("create publisher: jetstream is nil")
	}
	if guard == nil {
		guard = func(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }
	}
	return &JetStreamPublisher{js: js, guard: guard}, nil
}

// Publish sends payload on subject with msgID as Nats-Msg-Id and waits for the PubAck.
func (p *JetStreamPublisher) Publish(ctx context.Context, subject, msgID string, payload []byte) error {
	return p.guard(ctx, func(ctx context.Context) error {
		if _, err := p.js.Publish(ctx, subject, payload, jetstream.WithMsgID(msgID)); err != nil {
			return fmt.Errorf("publish %s: %w", msgID, err)
		}
		return nil
	})
}
