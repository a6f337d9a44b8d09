package lifecycle

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/node"
)

// No registry answers on 127.0.0.1:1; Serve must still come up (registration retries in
// the background), so these tests need no etcd.
func newNode() *node.Node {
	return node.New(config.Component{Kind: config.KindMerchant, Name: "merchant-1", Service: "merchant",
		Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Registry: []string{"127.0.0.1:1"}, LeaseTTL: config.Duration(time.Second)}, nil)
}

func TestWaitReportsAServerThatStoppedOnItsOwn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := newNode()
	n.Pending("grpc", "starting")
	gs, hs := NewGRPCServer()
	p, err := Serve(ctx, n, nil, gs, hs)
	t.Cleanup(p.Shutdown)
	require.NoError(t, err)

	gs.Stop() // nobody cancelled ctx: the process must not carry on looking healthy
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx) }()
	select {
	case err := <-done:
		assert.ErrorContains(t, err, "serve grpc: server stopped unexpectedly")
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the server stopped")
	}
}

func TestWaitIsCleanWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := newNode()
	gs, hs := NewGRPCServer()
	p, err := Serve(ctx, n, nil, gs, hs)
	t.Cleanup(p.Shutdown)
	require.NoError(t, err)
	cancel()
	assert.NoError(t, p.Wait(ctx))
}
