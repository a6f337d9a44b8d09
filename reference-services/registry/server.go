// Package registry is the reference system's service registry: an embedded single-member etcd
// server, a client that registers instances under a heartbeat lease, a watched local cache of
// instances and harness routes that survives registry outages, and gRPC dialing through
// client-side (resolver + balancer with outlier ejection) or server-side (balancer process)
// discovery.
package registry

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/faultline-dev/faultline/reference-services/node"
)

// Key prefixes of the registry layout (docs/ARCHITECTURE.md, "Registry keys").
const (
	Prefix         = "/faultline/"
	InstancePrefix = Prefix + "instances/"
	RoutePrefix    = Prefix + "routes/"
)

// startTimeout bounds how long a single-member etcd may take to elect itself; far above
// the normal ~100 ms so that a loaded CI machine does not fail a start that would succeed.
const startTimeout = 30 * time.Second

// RunServer is the process main for kind "registry". The registry has no dependency, so it is
// ready as soon as etcd serves clients; it closes etcd (flushing the WAL) when ctx ends.
func RunServer(ctx context.Context, n *node.Node) error {
	n.Pending("etcd", "starting etcd")
	n.Ready("init")
	e, err := StartEmbedded(ctx, n.Config.DataDir, n.Config.Listen, n.Config.Peer)
	if err != nil {
		return fmt.Errorf("start registry: %w", err)
	}
	defer closeBounded(e, n)
	n.Ready("etcd")
	n.Log.Info("registry ready", "listen", n.Config.Listen, "peer", n.Config.Peer, "data_dir", n.Config.DataDir)
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("serve registry: %w", err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("serve registry: etcd stopped unexpectedly")
	}
}

// closeGrace bounds a clean stop. etcd waits up to its request timeout (6 s here) for open
// watch and keepalive streams of other processes; every write is already fsynced in the WAL
// at commit, so exiting earlier is as safe as a crash, which etcd is built to survive.
const closeGrace = 1500 * time.Millisecond

func closeBounded(e *embed.Etcd, n *node.Node) {
	done := make(chan struct{})
	go func() {
		e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeGrace):
		n.Log.Warn("etcd still closing client streams, exiting anyway", "after", closeGrace)
	}
}

// StartEmbedded starts a single-member etcd for tests and for RunServer and returns once it
// serves clients. Restarting on the same dataDir keeps every key and lease, which is what lets
// registrations survive a registry restart.
func StartEmbedded(ctx context.Context, dataDir, clientAddr, peerAddr string) (*embed.Etcd, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("start etcd: data dir is empty")
	}
	cu, err := loopbackURL(clientAddr)
	if err != nil {
		return nil, fmt.Errorf("start etcd: client address: %w", err)
	}
	pu, err := loopbackURL(peerAddr)
	if err != nil {
		return nil, fmt.Errorf("start etcd: peer address: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir: %w", err)
	}
	// etcd warns on every start about a group-readable data dir; the registry's data is
	// private to this user anyway.
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("protect etcd data dir: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = "faultline"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ClusterState = embed.ClusterStateFlagNew
	// A single member elects itself after one election timeout; short ticks keep startup
	// well under a second while still giving a minimum lease TTL below the 2 s default.
	cfg.TickMs = 50
	cfg.ElectionMs = 500
	cfg.InitialElectionTickAdvance = true
	cfg.SnapshotCount = 10_000
	// Clients ping every second to notice a dead or partitioned registry quickly; the server
	// must accept that rate instead of answering with GOAWAY (too_many_pings).
	cfg.GRPCKeepAliveMinTime = 500 * time.Millisecond
	// Progress notifications double as a watch heartbeat: a watcher that hears nothing for a
	// few seconds knows its registry is gone and reports session_up 0.
	cfg.WatchProgressNotifyInterval = time.Second
	cfg.Metrics = "basic"
	cfg.ListenMetricsUrls = nil
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(warnLogger())

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("start etcd: %w", ctx.Err())
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("start etcd: not ready after %s", startTimeout)
	}
}

// warnLogger keeps etcd quiet: its info logs would drown the component log that scenario
// reports quote, while warnings (slow fsync, lease trouble) stay visible on stderr.
func warnLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zap.WarnLevel)
	return zap.New(core).With(zap.String("component", "etcd"))
}

func loopbackURL(addr string) (*url.URL, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("parse address %q: %w", addr, err)
	}
	if !node.AllowedHost(host) {
		return nil, fmt.Errorf("listen %s: refusing a non-loopback address", addr)
	}
	if port == "" || port == "0" {
		return nil, fmt.Errorf("parse address %q: a fixed port is required", addr)
	}
	return &url.URL{Scheme: "http", Host: net.JoinHostPort(host, port)}, nil
}
