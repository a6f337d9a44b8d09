package broker

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/node"
)

const (
	eventually = 15 * time.Second
	poll       = 20 * time.Millisecond
)

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func start(t testing.TB, dir, addr string) *server.Server {
	t.Helper()
	s, err := StartEmbedded(context.Background(), dir, addr)
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func connectedValue(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "faultline_broker_connected" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func TestDuplicatesAndRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	addr := freeAddr(t)
	s := start(t, dir, addr)
	nc, js, err := Connect(ctx, s.ClientURL(), "test", nil, nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	st, err := EnsureStream(ctx, js)
	require.NoError(t, err)

	tests := []struct {
		id      string
		wantDup bool
	}{
		{"order-1", false},
		{"order-1", true},
		{"order-2", false},
	}
	for _, tt := range tests {
		ack, err := js.Publish(ctx, SubjectOrderPlaced, []byte(`{"order_id":"`+tt.id+`"}`), jetstream.WithMsgID(tt.id))
		require.NoError(t, err)
		assert.Equal(t, tt.wantDup, ack.Duplicate, tt.id)
	}
	info, err := st.Info(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, info.State.Msgs, "a repeated Nats-Msg-Id is stored once")
	assert.Equal(t, DuplicateWindow, info.Config.Duplicates)
	assert.Equal(t, jetstream.FileStorage, info.Config.Storage)

	// Restart on the same data dir: the stream and its messages are still there.
	s.Shutdown()
	s.WaitForShutdown()
	s2 := start(t, dir, addr)
	require.Eventually(t, nc.IsConnected, eventually, poll, "the client reconnects by itself")
	st2, err := js.Stream(ctx, Stream)
	require.NoError(t, err)
	info, err = st2.Info(ctx)
	require.NoError(t, err)
	assert.EqualValues(t, 2, info.State.Msgs, "messages survive a restart")
	assert.Equal(t, s2.ClientURL(), s.ClientURL())
	// The window survives too: a re-publish after the restart is still a duplicate.
	ack, err := js.Publish(ctx, SubjectOrderPlaced, []byte(`{}`), jetstream.WithMsgID("order-2"))
	require.NoError(t, err)
	assert.True(t, ack.Duplicate)
}

func TestConnectBeforeServerStarts(t *testing.T) {
	ctx := context.Background()
	addr := freeAddr(t)
	reg := prometheus.NewRegistry()
	nc, js, err := Connect(ctx, "nats://"+addr, "early", reg, nil)
	require.NoError(t, err, "connecting to an absent broker succeeds")
	t.Cleanup(nc.Close)
	assert.Equal(t, 0.0, connectedValue(t, reg))

	start(t, t.TempDir(), addr)
	require.Eventually(t, func() bool { return connectedValue(t, reg) == 1 }, eventually, poll,
		"faultline_broker_connected goes 0 -> 1 once the broker is up")
	_, err = EnsureStream(ctx, js)
	require.NoError(t, err)
}

// TestClientConnectsWithinASecondOfTheBrokerComingUp: a client that has been dialling an
// absent broker for several seconds (a container system's product or order starts once
// the broker's container runs, before its process listens; a crash fault keeps it down)
// connects well within a second of it coming up, and a stream request it made while the broker was away is
// answered then: the reconnect wait is a fixed quarter second, not a growing backoff.
func TestClientConnectsWithinASecondOfTheBrokerComingUp(t *testing.T) {
	addr := freeAddr(t)
	reg := prometheus.NewRegistry()
	nc, js, err := Connect(t.Context(), "nats://"+addr, "early", reg, nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ensured := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		_, err := EnsureStream(ctx, js)
		ensured <- err
	}()
	time.Sleep(3 * time.Second) // long enough for a growing backoff to exceed a second
	require.Equal(t, 0.0, connectedValue(t, reg))
	start(t, t.TempDir(), addr)
	back := time.Now()
	require.Eventually(t, func() bool { return connectedValue(t, reg) == 1 }, 5*time.Second, 5*time.Millisecond)
	took := time.Since(back)
	t.Logf("connected %s after the broker was up", took.Round(time.Millisecond))
	assert.Less(t, took, time.Second, "the client dials again every %s (+ jitter)", reconnectWait)
	select {
	case err := <-ensured:
		require.NoError(t, err, "the stream request made while the broker was away")
	case <-time.After(5 * time.Second):
		t.Fatal("the stream request made while the broker was away was not answered")
	}
}

func TestStartEmbeddedRejects(t *testing.T) {
	tests := []struct {
		name, dir, addr, want string
	}{
		{"non-loopback", t.TempDir(), "8.8.8.8:4222", "non-loopback"},
		{"no data dir", "", "127.0.0.1:0", "data dir"},
		{"bad port", t.TempDir(), "127.0.0.1:x", "parse port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StartEmbedded(context.Background(), tt.dir, tt.addr)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func TestJetStreamFilesLiveInDataDir(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, "127.0.0.1:0")
	nc, js, err := Connect(context.Background(), s.ClientURL(), "t", nil, nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	_, err = EnsureStream(context.Background(), js)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "jetstream"))
	assert.NoError(t, err)
}

func BenchmarkStartEmbedded(b *testing.B) {
	for b.Loop() {
		s, err := StartEmbedded(context.Background(), b.TempDir(), "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func TestRunServerReadyAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := node.New(config.Component{Kind: config.KindBroker, Name: "broker", Service: "broker",
		Listen: freeAddr(t), Admin: "127.0.0.1:0", DataDir: t.TempDir()}, nil)
	n.Pending("init", "starting")
	done := make(chan error, 1)
	go func() { done <- RunServer(ctx, n) }()
	require.Eventually(t, n.IsReady, eventually, poll)

	nc, js, err := Connect(ctx, "nats://"+n.Config.Listen, "t", nil, nil)
	require.NoError(t, err)
	defer nc.Close()
	st, err := js.Stream(ctx, Stream)
	require.NoError(t, err, "the stream exists once the broker is ready")
	assert.Equal(t, []string{StreamSubjects}, st.CachedInfo().Config.Subjects)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(eventually):
		t.Fatal("RunServer did not return after cancel")
	}
}
