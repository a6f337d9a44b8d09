package registry

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/node"
)

func TestRunServerReadyAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := node.New(config.Component{Kind: config.KindRegistry, Name: "registry", Service: "registry",
		Listen: freeAddr(t), Peer: freeAddr(t), Admin: "127.0.0.1:0", DataDir: t.TempDir()}, nil)
	n.Pending("init", "starting")
	done := make(chan error, 1)
	go func() { done <- RunServer(ctx, n) }()
	require.Eventually(t, n.IsReady, eventually, poll)

	c := connect(t, n.Config.Listen, nil)
	_, err := c.Register(ctx, Instance{Service: "s", Name: "s-1", Addr: "127.0.0.1:1"}, time.Second)
	require.NoError(t, err)
	require.NoError(t, c.Close())

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(eventually):
		t.Fatal("RunServer did not return after cancel")
	}
}

func TestStartEmbeddedRejects(t *testing.T) {
	tests := []struct{ name, dir, client, peer, want string }{
		{"non-loopback client", t.TempDir(), "10.1.2.3:2379", "127.0.0.1:2380", "non-loopback"},
		{"port zero", t.TempDir(), "127.0.0.1:0", "127.0.0.1:2380", "fixed port"},
		{"no data dir", "", "127.0.0.1:2379", "127.0.0.1:2380", "data dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StartEmbedded(context.Background(), tt.dir, tt.client, tt.peer)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// BenchmarkStartEmbedded measures a cold start of the registry (fresh data dir) up to
// serving clients; the whole system must be ready within 2 s.
func BenchmarkStartEmbedded(b *testing.B) {
	for b.Loop() {
		e, err := StartEmbedded(context.Background(), b.TempDir(), freeAddr(b), freeAddr(b))
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
	}
}
