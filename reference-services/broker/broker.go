// Package broker is the reference system's message broker: an embedded NATS JetStream server
// with file storage, the ORDERS stream, and a client connection that tolerates the broker being
// down, so that services start in any order and ride out broker restarts.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline-dev/faultline/reference-services/node"
)

// Stream, subject and consumer names shared by the order publisher and the product consumer
// (docs/ARCHITECTURE.md, "Broker").
const (
	Stream             = "ORDERS"
	StreamSubjects     = "orders.>"
	SubjectOrderPlaced = "orders.placed"
	// SubjectOrderOutcome carries product's decision on each orders.placed event
	// (confirmed or rejected) back to the order service: the saga's reply.
	SubjectOrderOutcome = "orders.outcome"
	ConsumerInventory   = "inventory"
	// ConsumerSaga is the order service's durable consumer of SubjectOrderOutcome.
	ConsumerSaga = "saga"
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id: an outbox relay that
	// re-publishes after a crash within this window produces no second message.
	DuplicateWindow = 2 * time.Minute
)

// Timings: a client retries every ~250 ms forever, because a broker outage is a scenario,
// not a reason for a service to give up.
const (
	reconnectWait = 250 * time.Millisecond
	startTimeout  = 30 * time.Second
)

// RunServer is the process main for kind "broker": it serves NATS with JetStream until ctx
// ends and is ready once the ORDERS stream exists.
func RunServer(ctx context.Context, n *node.Node) error {
	n.Pending("nats", "starting nats")
	n.Pending("stream", "creating stream "+Stream)
	n.Ready("init")
	s, err := StartEmbedded(ctx, n.Config.DataDir, n.Config.Listen)
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	defer func() {
		s.Shutdown()
		s.WaitForShutdown()
	}()
	n.Ready("nats")

	nc, err := nats.Connect(s.ClientURL(), nats.Name(n.Config.Name), nats.InProcessServer(s))
	if err != nil {
		return fmt.Errorf("connect broker: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("open jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if _, err := EnsureStream(sctx, js); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	nc.Close()
	n.Ready("stream")
	n.Log.Info("broker ready", "listen", n.Config.Listen, "data_dir", n.Config.DataDir)
	<-ctx.Done()
	return nil
}

// StartEmbedded starts a NATS server with JetStream file storage in dataDir on addr
// (host:port; port 0 picks a free one, read it back with ClientURL) and returns once it
// accepts connections. Restarting on the same dataDir keeps every stream and message.
func StartEmbedded(ctx context.Context, dataDir, addr string) (*server.Server, error) {
	if dataDir == "" {
		return nil, errors.New("start nats: data dir is empty")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("start nats: parse address %q: %w", addr, err)
	}
	if !node.AllowedHost(host) {
		return nil, fmt.Errorf("start nats: refusing non-loopback address %s", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("start nats: parse port %q: invalid", portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create nats data dir: %w", err)
	}
	opts := &server.Options{
		ServerName:             "faultline-broker",
		Host:                   host,
		Port:                   port,
		HTTPPort:               0,
		JetStream:              true,
		StoreDir:               dataDir,
		NoLog:                  true,
		NoSigs:                 true,
		DisableJetStreamBanner: true,
		MaxPayload:             1 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	go s.Start()
	deadline := time.Now().Add(startTimeout)
	for !s.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil || time.Now().After(deadline) {
			s.Shutdown()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("start nats: %w", ctx.Err())
			}
			return nil, fmt.Errorf("start nats: not ready after %s", startTimeout)
		}
	}
	return s, nil
}

// EnsureStream creates the ORDERS stream or brings an existing one to the expected
// configuration; the stream outlives every publisher and consumer.
func EnsureStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       Stream,
		Subjects:   []string{StreamSubjects},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Duplicates: DuplicateWindow,
		Replicas:   1,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", Stream, err)
	}
	return st, nil
}

// Connect dials url with infinite reconnects every ~250 ms. It succeeds while the broker is
// down (the connection keeps trying), so services start in any order; reg (optional) receives
// faultline_broker_connected, 1 while connected. The caller owns the connection and closes
// it (nc.Drain or nc.Close) on shutdown; ctx is not tied to its lifetime, so a start-up
// deadline cannot cut a long-lived connection. extra options apply after the defaults.
func Connect(_ context.Context, url, name string, reg prometheus.Registerer, log *slog.Logger, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	if url == "" {
		return nil, nil, errors.New("connect broker: url is empty")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("broker", url)
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "faultline_broker_connected",
		Help: "1 while this process is connected to the NATS broker.",
	})
	if reg != nil {
		if err := reg.Register(g); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, nil, fmt.Errorf("register broker metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(prometheus.Gauge)
			if !ok {
				return nil, nil, fmt.Errorf("register broker metrics: %w", err)
			}
			g = existing
		}
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
		nats.Timeout(time.Second),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(func(*nats.Conn) {
			g.Set(1)
			log.Info("broker connected")
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			g.Set(1)
			log.Info("broker reconnected")
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			g.Set(0)
			log.Warn("broker disconnected", "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { g.Set(0) }),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect broker: %w", err)
	}
	if nc.IsConnected() {
		g.Set(1)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open jetstream: %w", err)
	}
	return nc, js, nil
}

// Consume hands every message of cons to handle until ctx ends (nil) or the pull fails (an
// error, for the caller to back off and subscribe again); what names the error's noun.
// Messages() keeps pull requests outstanding at all times, asking for more before the
// previous request runs out, so there is no moment at which the replica cannot be handed a
// message. A fetch-per-batch loop has such a gap after every batch: an outage that began in
// it found the replica holding nothing, which looked like an idle replica rather than one
// that was cut off mid-work.
func Consume(ctx context.Context, cons jetstream.Consumer, batch int, what string, handle func(context.Context, jetstream.Msg)) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(batch))
	if err != nil {
		return fmt.Errorf("pull %s: %w", what, err)
	}
	defer it.Stop()
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pull %s: %w", what, err)
		}
		handle(ctx, msg)
	}
}
