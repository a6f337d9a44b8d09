package product

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/config"
)

// counterValue reads a counter or gauge (prometheus/testutil would pull a module this
// repository does not require).
func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// startBroker runs a real embedded JetStream server with the ORDERS stream.
func startBroker(t *testing.T) jetstream.JetStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := broker.StartEmbedded(ctx, filepath.Join(t.TempDir(), "nats"), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	_, js, err := broker.Connect(ctx, s.ClientURL(), t.Name(), nil, nil)
	require.NoError(t, err)
	_, err = broker.EnsureStream(ctx, js)
	require.NoError(t, err)
	return js
}

func runConsumer(t *testing.T, c *Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func publish(t *testing.T, js jetstream.JetStream, msgID string, data []byte) {
	t.Helper()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	_, err := js.Publish(context.Background(), broker.SubjectOrderPlaced, data, opts...)
	require.NoError(t, err)
}

func eventJSON(t *testing.T, e Event) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	require.NoError(t, err)
	return b
}

func consumerInfo(t *testing.T, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := js.Consumer(context.Background(), broker.Stream, broker.ConsumerInventory)
	require.NoError(t, err)
	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	return info
}

// The same event delivered twice (two publishes with distinct message ids get past the
// broker's duplicate window, as a relay restarted after the window would) decrements stock
// once and records both deliveries; a malformed message is terminated, not redelivered.
func TestConsumerDuplicateAndPoison(t *testing.T) {
	js := startBroker(t)
	db := preparedDB(t)
	m, err := NewMetrics(nil)
	require.NoError(t, err)
	ready := make(chan struct{})
	c := NewConsumer(db, js, m, nil, WithAckWait(500*time.Millisecond), WithOnReady(func() { close(ready) }))
	runConsumer(t, c)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("consumer never became ready")
	}

	p2 := config.ProductID(2)
	ev := eventJSON(t, Event{OrderID: "order-1", ProductID: p2, Quantity: 4, IdempotencyKey: "k1"})
	publish(t, js, "order-1", ev)
	publish(t, js, "order-1-again", ev)
	publish(t, js, "garbage", []byte("{not json"))
	publish(t, js, "unknown-product", eventJSON(t, Event{OrderID: "order-2", ProductID: "p-404", Quantity: 1}))
	publish(t, js, "order-3", eventJSON(t, Event{OrderID: "order-3", ProductID: p2, Quantity: 1}))

	require.Eventually(t, func() bool {
		return counterValue(t, m.Applied) == 2 && counterValue(t, m.Duplicate) == 1 && counterValue(t, m.Malformed) == 2
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, int64(95), stockOf(t, db, p2))
	assert.Equal(t, int64(2), deliveriesOf(t, db, "order-1"))
	assert.Equal(t, int64(1), deliveriesOf(t, db, "order-3"))
	assert.Equal(t, int64(0), deliveriesOf(t, db, "order-2"))

	// Nothing is left in flight: terminated messages are not waiting for another attempt.
	require.Eventually(t, func() bool {
		info := consumerInfo(t, js)
		return info.NumPending == 0 && info.NumAckPending == 0
	}, 30*time.Second, 20*time.Millisecond)
	// Several ack waits later the poison messages have still been seen only once.
	time.Sleep(1500 * time.Millisecond)
	assert.Equal(t, 2.0, counterValue(t, m.Malformed))
	assert.Equal(t, 0.0, counterValue(t, m.Redelivery))
	assert.Equal(t, int64(95), stockOf(t, db, p2))
	require.Eventually(t, func() bool { return counterValue(t, m.Lag) == 0 }, 30*time.Second, 20*time.Millisecond)
}

// Two product replicas (separate handles on one database file) share the durable consumer:
// every event is applied exactly once between them.
func TestConsumerTwoReplicas(t *testing.T) {
	js := startBroker(t)
	path := filepath.Join(t.TempDir(), "product.db")
	a := openDB(t, path)
	require.NoError(t, Prepare(context.Background(), a, testCatalog))
	b := openDB(t, path)
	require.NoError(t, Prepare(context.Background(), b, testCatalog))
	ma, err := NewMetrics(nil)
	require.NoError(t, err)
	mb, err := NewMetrics(nil)
	require.NoError(t, err)
	runConsumer(t, NewConsumer(a, js, ma, nil))
	runConsumer(t, NewConsumer(b, js, mb, nil))

	const orders = 60
	var want int64
	for i := range orders {
		q := int64(i%2 + 1) // 90 units of 100: none is refused
		want += q
		id := "o-" + config.ProductID(i)
		publish(t, js, id, eventJSON(t, Event{OrderID: id, ProductID: config.ProductID(0), Quantity: q}))
	}
	require.Eventually(t, func() bool {
		return counterValue(t, ma.Applied)+counterValue(t, mb.Applied) == orders
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, testCatalog.InitialStock-want, stockOf(t, a, config.ProductID(0)))
	assert.Zero(t, counterValue(t, ma.Duplicate)+counterValue(t, mb.Duplicate))
}

// The lag gauge reports messages waiting for the consumer while nobody fetches them.
func TestConsumerLag(t *testing.T) {
	js := startBroker(t)
	db := preparedDB(t)
	m, err := NewMetrics(nil)
	require.NoError(t, err)
	c := NewConsumer(db, js, m, nil, WithLagInterval(20*time.Millisecond))
	_, err = c.consumer(context.Background())
	require.NoError(t, err)
	for i := range 7 {
		id := "lag-" + config.ProductID(i)
		publish(t, js, id, eventJSON(t, Event{OrderID: id, ProductID: config.ProductID(0), Quantity: 1}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.pollLag(ctx)
	require.Eventually(t, func() bool { return counterValue(t, m.Lag) == 7 }, 30*time.Second, 20*time.Millisecond)
}

// An order the stock cannot honour is refused, not applied: stock never goes below zero
// and the refusal is published on orders.outcome for the order service to read.
func TestConsumerRefusesOversellAndPublishesOutcome(t *testing.T) {
	js := startBroker(t)
	db := preparedDB(t)
	runConsumer(t, NewConsumer(db, js, nil, nil))
	ctx := context.Background()
	outcomes, err := js.CreateOrUpdateConsumer(ctx, broker.Stream, jetstream.ConsumerConfig{
		Durable: "test-outcomes", FilterSubject: "orders.outcome", AckPolicy: jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err)

	p := config.ProductID(1)
	for _, e := range []Event{{OrderID: "huge", Quantity: 1_000_000}, {OrderID: "fits", Quantity: 60}, {OrderID: "late", Quantity: 60}} {
		e.ProductID = p
		body, err := json.Marshal(e)
		require.NoError(t, err)
		_, err = js.Publish(ctx, broker.SubjectOrderPlaced, body, jetstream.WithMsgID(e.OrderID))
		require.NoError(t, err)
	}
	got := map[string]string{}
	require.Eventually(t, func() bool {
		batch, err := outcomes.FetchNoWait(10)
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			var o struct {
				OrderID string `json:"order_id"`
				Outcome string `json:"outcome"`
			}
			require.NoError(t, json.Unmarshal(m.Data(), &o))
			got[o.OrderID] = o.Outcome
			_ = m.Ack()
		}
		return len(got) == 3
	}, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, "rejected", got["huge"])
	assert.Equal(t, "confirmed", got["fits"])
	assert.Equal(t, "rejected", got["late"], "60 + 60 > 100: the second is refused")
	assert.Equal(t, int64(40), stockOf(t, db, p))
}
