package balancer

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/node"
	"github.com/faultline-dev/faultline/reference-services/registry"
)

const (
	eventually = 15 * time.Second
	poll       = 20 * time.Millisecond
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// backend is a real ProductService that names itself and echoes request metadata, so the
// test sees which instance answered and what the proxy forwarded.
type backend struct {
	refv1.UnimplementedProductServiceServer
	name string
}

func (b *backend) GetProduct(ctx context.Context, r *refv1.GetProductRequest) (*refv1.Product, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-served-by", b.name))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-echo", firstOf(md.Get("x-request-id"))))
	if r.GetId() == "missing" {
		return nil, status.Error(codes.NotFound, "no product missing")
	}
	return &refv1.Product{Id: r.GetId(), Name: b.name}, nil
}

func (b *backend) AppliedEvents(_ *refv1.AppliedEventsRequest, s grpc.ServerStreamingServer[refv1.AppliedEvent]) error {
	for i := range 3 {
		if err := s.Send(&refv1.AppliedEvent{OrderId: b.name, Quantity: int64(i)}); err != nil {
			return err
		}
	}
	return nil
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func TestServiceOf(t *testing.T) {
	tests := []struct{ method, want string }{
		{refv1.ProductService_GetProduct_FullMethodName, "product"},
		{refv1.MerchantService_GetMerchant_FullMethodName, "merchant"},
		{refv1.OrderService_PlaceOrder_FullMethodName, "order"},
		{"/Bare/Method", "bare"},
		{"nonsense", ""},
	}
	for _, tt := range tests {
		got := ServiceOf(tt.method)
		assert.Equal(t, tt.want, got, tt.method)
	}
}

func TestRunProxiesToRegisteredInstances(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	etcdAddr := freeAddr(t)
	e, err := registry.StartEmbedded(ctx, t.TempDir(), etcdAddr, freeAddr(t))
	require.NoError(t, err)
	var closeEtcd sync.Once
	t.Cleanup(func() { closeEtcd.Do(e.Close) })

	rc, err := registry.Connect(ctx, []string{etcdAddr}, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rc.Close() })
	for _, name := range []string{"product-1", "product-2"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		s := grpc.NewServer()
		refv1.RegisterProductServiceServer(s, &backend{name: name})
		go func() { _ = s.Serve(ln) }()
		t.Cleanup(s.Stop)
		_, err = rc.Register(ctx, registry.Instance{Service: "product", Name: name, Addr: ln.Addr().String()}, 2*time.Second)
		require.NoError(t, err)
	}

	n := node.New(config.Component{Kind: config.KindBalancer, Name: "balancer-1", Service: "balancer",
		Listen: freeAddr(t), Admin: "127.0.0.1:0", Registry: []string{etcdAddr}}, nil)
	n.Pending("init", "starting")
	runErr := make(chan error, 1)
	go func() { runErr <- Run(ctx, n) }()
	require.Eventually(t, n.IsReady, eventually, poll)

	cc, err := registry.Dial(nil, registry.ModeServer, n.Config.Listen, "product")
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	client := refv1.NewProductServiceClient(cc)

	seen := map[string]int{}
	require.Eventually(t, func() bool {
		var hdr, trl metadata.MD
		octx := metadata.AppendToOutgoingContext(ctx, "x-request-id", "r-42")
		p, err := client.GetProduct(octx, &refv1.GetProductRequest{Id: "p-001"}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil {
			return false
		}
		assert.Equal(t, "p-001", p.GetId())
		assert.Equal(t, []string{p.GetName()}, hdr.Get("x-served-by"), "headers are forwarded")
		assert.Equal(t, []string{"r-42"}, trl.Get("x-echo"), "request metadata and trailers are forwarded")
		seen[p.GetName()]++
		return seen["product-1"] > 0 && seen["product-2"] > 0
	}, eventually, poll, "calls reach both instances")

	_, err = client.GetProduct(ctx, &refv1.GetProductRequest{Id: "missing"})
	got := status.Convert(err)
	assert.Equal(t, codes.NotFound, got.Code(), "status is forwarded")
	assert.Equal(t, "no product missing", got.Message())

	stream, err := client.AppliedEvents(ctx, &refv1.AppliedEventsRequest{})
	require.NoError(t, err)
	var events int
	for {
		_, err := stream.Recv()
		if err != nil {
			break
		}
		events++
	}
	assert.Equal(t, 3, events, "server streams are forwarded")

	_, err = refv1.NewMerchantServiceClient(cc).GetMerchant(ctx, &refv1.GetMerchantRequest{Id: "m-01"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "a service without instances is unavailable")

	assert.Positive(t, counter(t, n.Registry, "product", OutcomeOK))
	assert.Positive(t, counter(t, n.Registry, "product", OutcomeError))
	assert.Equal(t, 1.0, counter(t, n.Registry, "merchant", OutcomeNoInstance))

	cancel()
	select {
	case err := <-runErr:
		require.NoError(t, err)
	case <-time.After(eventually):
		t.Fatal("Run did not return after cancel")
	}
}

func counter(t *testing.T, reg *prometheus.Registry, service, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "faultline_balancer_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] == service && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
