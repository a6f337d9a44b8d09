package order_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	clientv3 "go.etcd.io/etcd/client/v3"

	refv1 "github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/merchant"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/order"
	"github.com/faultline-dev/faultline/reference-services/product"
	"github.com/faultline-dev/faultline/reference-services/registry"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// runComponent runs a process main in-process, as `faultline serve` would, and returns its
// node and a channel with Run's result.
func runComponent(ctx context.Context, t *testing.T, cfg config.Component, run func(context.Context, *node.Node) error) (*node.Node, <-chan error) {
	t.Helper()
	n := node.New(cfg, slog.New(slog.DiscardHandler))
	n.Pending("init", "starting")
	require.NoError(t, n.StartAdmin(ctx))
	done := make(chan error, 1)
	go func() { done <- run(ctx, n) }()
	return n, done
}

// The three process mains against a real embedded etcd and NATS: they become ready, an order
// placed through order's registered address reaches product's stock, and a clean stop
// deregisters every instance.
func TestRunSystem(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	etcdAddr := freeAddr(t)
	e, err := registry.StartEmbedded(ctx, filepath.Join(dir, "etcd"), etcdAddr, freeAddr(t))
	require.NoError(t, err)
	t.Cleanup(e.Close)
	ns, err := broker.StartEmbedded(ctx, filepath.Join(dir, "nats"), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })

	cat := config.Catalog{Merchants: 2, Products: 4, InitialStock: 50}
	component := func(kind string) config.Component {
		return config.Component{
			Kind: kind, Name: kind + "-1", Service: kind,
			Listen: freeAddr(t), Admin: "127.0.0.1:0",
			DataDir: filepath.Join(dir, "data", kind), Registry: []string{etcdAddr}, Broker: ns.ClientURL(),
			LeaseTTL: config.Duration(2 * time.Second), Catalog: cat,
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	nm, mdone := runComponent(runCtx, t, component(config.KindMerchant), merchant.Run)
	np, pdone := runComponent(runCtx, t, component(config.KindProduct), product.Run)
	ocfg := component(config.KindOrder)
	no, odone := runComponent(runCtx, t, ocfg, order.Run)
	for _, n := range []*node.Node{nm, np, no} {
		require.Eventually(t, n.IsReady, 30*time.Second, 20*time.Millisecond, n.Config.Name)
	}

	cc, err := grpc.NewClient(ocfg.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = cc.Close() }()
	hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: refv1.OrderService_ServiceDesc.ServiceName})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.GetStatus())

	resp, err := refv1.NewOrderServiceClient(cc).PlaceOrder(ctx, &refv1.PlaceOrderRequest{
		IdempotencyKey: "run-1", MerchantId: cat.ProductMerchant(1), ProductId: config.ProductID(1), Quantity: 5,
	})
	require.NoError(t, err)
	assert.False(t, resp.GetReplayed())

	// Read product's database as the harness's consistency check would: another handle.
	pdb := openDB(t, filepath.Join(dir, "data", config.KindProduct, "product.db"))
	require.Eventually(t, func() bool { return stockOf(t, pdb, config.ProductID(1)) == 45 }, 30*time.Second, 20*time.Millisecond)

	stop()
	for name, done := range map[string]<-chan error{"merchant": mdone, "product": pdone, "order": odone} {
		select {
		case err := <-done:
			assert.NoError(t, err, name)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not stop", name)
		}
	}
	// A stopped component leaves no broker connection behind (it would reconnect forever).
	require.Eventually(t, func() bool { return ns.NumClients() == 0 }, 10*time.Second, 20*time.Millisecond,
		"broker connections left open: %v", clientNames(t, ns))
	reg, err := registry.Connect(ctx, []string{etcdAddr}, nil, nil)
	require.NoError(t, err)
	defer func() { _ = reg.Close() }()
	got, err := reg.Etcd().Get(ctx, registry.InstancePrefix, clientv3.WithPrefix())
	require.NoError(t, err)
	assert.Zero(t, got.Count, "a clean stop revokes every lease")
}

// clientNames lists the names of the broker's client connections, for failure messages.
func clientNames(t *testing.T, ns *server.Server) []string {
	t.Helper()
	cz, err := ns.Connz(nil)
	require.NoError(t, err)
	var out []string
	for _, c := range cz.Conns {
		out = append(out, c.Name)
	}
	return out
}
