package registry

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"

	"github.com/faultline-dev/faultline/reference-services/api/refv1"
)

// freeAddr returns a loopback address with a port that was free a moment ago; etcd needs
// fixed ports so that a restart comes back where clients expect it.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

type etcdNode struct {
	dir, client, peer string
	e                 *embed.Etcd
	close             func()
}

func startEtcd(t testing.TB) *etcdNode {
	t.Helper()
	n := &etcdNode{dir: t.TempDir(), client: freeAddr(t), peer: freeAddr(t)}
	n.start(t)
	return n
}

func (n *etcdNode) start(t testing.TB) {
	t.Helper()
	e, err := StartEmbedded(context.Background(), n.dir, n.client, n.peer)
	if e != nil {
		n.close = sync.OnceFunc(e.Close) // embed.Etcd.Close panics when called twice
		t.Cleanup(n.close)
	}
	require.NoError(t, err)
	n.e = e
}

func (n *etcdNode) stop() { n.close() }

func connect(t testing.TB, endpoint string, reg prometheus.Registerer) *Client {
	t.Helper()
	c, err := Connect(context.Background(), []string{endpoint}, reg, nil)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	require.NoError(t, err)
	return c
}

// backend is a real gRPC ProductService that names itself in every answer, so a test can
// tell which instance served a call.
type backend struct {
	refv1.UnimplementedProductServiceServer
	name string
	fail bool
	hits chan string
}

func (b *backend) GetProduct(_ context.Context, r *refv1.GetProductRequest) (*refv1.Product, error) {
	select {
	case b.hits <- b.name:
	default:
	}
	if b.fail {
		return nil, errInternal
	}
	return &refv1.Product{Id: r.GetId(), Name: b.name}, nil
}

// serveBackend serves b on addr ("" picks a port) and returns the address and server.
func serveBackend(t testing.TB, b *backend, addr string) (string, *grpc.Server) {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	require.Eventually(t, func() bool { ln, err = net.Listen("tcp", addr); return err == nil }, 10e9, 50e6, "listen %s", addr)
	s := grpc.NewServer()
	refv1.RegisterProductServiceServer(s, b)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String(), s
}

func itoa(i int) string { return strconv.Itoa(i) }
