package faults

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/faultline-dev/faultline/reference-services/broker"
	"github.com/faultline-dev/faultline/reference-services/node"
	etcdregistry "github.com/faultline-dev/faultline/reference-services/registry"
)

// upstreamKind is one kind of callee the reference system has behind its links, started
// for real on loopback.
type upstreamKind struct {
	name    string
	dialect string // what a probe that waits for a greeting should find
	start   func(t *testing.T) string
}

var upstreamKinds = []upstreamKind{
	{"http1 (gateway)", DialectNone, startHTTP},
	{"grpc (services)", DialectHTTP2, startGRPC},
	{"nats (broker)", DialectNATS, startNATS},
	{"etcd (registry)", DialectNone, startEtcd},
}

// startGRPC runs a real gRPC server (with the health service, like every component).
func startGRPC(t *testing.T) string {
	t.Helper()
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	t.Cleanup(srv.Stop)
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String()
}

// startNATS runs the broker's embedded NATS server, which sends INFO on every connect.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := broker.StartEmbedded(context.Background(), t.TempDir(), "127.0.0.1:0")
	if s != nil {
		t.Cleanup(s.Shutdown)
	}
	require.NoError(t, err)
	return s.Addr().String()
}

// startEtcd runs the registry's embedded etcd, which serves gRPC and HTTP on one port.
func startEtcd(t *testing.T) string {
	t.Helper()
	free := func() string {
		ln, err := node.Listen("127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}
	client, peer := free(), free()
	e, err := etcdregistry.StartEmbedded(context.Background(), t.TempDir(), client, peer)
	if e != nil {
		t.Cleanup(sync.OnceFunc(e.Close))
	}
	require.NoError(t, err)
	return client
}

func TestProbeTellsDialects(t *testing.T) {
	for _, k := range upstreamKinds {
		t.Run(k.name, func(t *testing.T) {
			addr := k.start(t)
			p := TCPProbe(context.Background(), addr, ProbeSpec{Greeting: 250 * time.Millisecond, Timeout: 2 * time.Second})
			assert.Equal(t, OutcomeAnswered, p.Outcome, "probe %+v", p)
			got := p.Dialect
			assert.Equal(t, k.dialect, got, "probe %+v", p)
			assert.Equal(t, k.dialect != DialectNone, p.Greeting > 0, "probe %+v", p)
		})
	}
}

// TestLatencyMeasuredPerUpstreamKind is the measurement's contract: whatever speaks on
// the far end (first or not), in whichever direction the latency sits, the added latency
// is measured within the fault's own tolerance (±10 % or 5 ms) and the fault lands.
func TestLatencyMeasuredPerUpstreamKind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real NATS and etcd servers and waits out second-long latencies")
	}
	directions := []struct {
		direction string
		factor    time.Duration
	}{{"downstream", 1}, {"upstream", 1}, {"both", 2}}
	latencies := []time.Duration{100 * time.Millisecond, time.Second}
	for _, k := range upstreamKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			l := newLinks(t)
			addLink(t, l, Link{From: "caller", To: "callee-1", ToService: "callee", Upstream: k.start(t)})
			env := NewEnv(l, nil)
			for _, lat := range latencies {
				for _, d := range directions {
					t.Run(fmt.Sprintf("%s %s", d.direction, lat), func(t *testing.T) {
						f := &Latency{Target: "caller->callee", Latency: lat, Direction: d.direction}
						eff := injectMeasure(t, env, f)
						require.NoError(t, f.Heal(context.Background(), env))
						want := float64((d.factor * lat).Milliseconds())
						tol := max(want/10, 5)
						t.Logf("%s %s %s: measured %.1f ms of %.0f (%s)", k.name, d.direction, lat, eff.Measured, want, eff.Detail)
						assert.True(t, eff.Landed, "effect %+v", eff)
						assert.Equal(t, want, eff.Configured)
						assert.InDelta(t, want, eff.Measured, tol, "effect %+v", eff)
						if k.dialect != DialectNone {
							assert.Contains(t, eff.Detail, "speaks "+k.dialect)
						}
					})
				}
			}
		})
	}
}

// TestLatencyOffPathNotLandedPerUpstreamKind keeps the other half of the contract: a
// probe that does not pass the proxy sees nothing added, whatever the upstream speaks,
// so the fault is reported as not landed instead of being credited with a greeting.
func TestLatencyOffPathNotLandedPerUpstreamKind(t *testing.T) {
	bypass := func(ctx context.Context, link Link, _ string, spec ProbeSpec) Probe {
		return TCPProbe(ctx, link.Upstream, spec)
	}
	for _, k := range upstreamKinds {
		t.Run(k.name, func(t *testing.T) {
			l := newLinks(t, WithProber(bypass))
			addLink(t, l, Link{From: "caller", To: "callee-1", ToService: "callee", Upstream: k.start(t)})
			eff := injectMeasure(t, NewEnv(l, nil), &Latency{Target: "caller->callee", Latency: 100 * time.Millisecond, Direction: "upstream"})
			assert.False(t, eff.Landed, "effect %+v", eff)
			assert.Less(t, eff.Measured, 50.0, "effect %+v", eff)
		})
	}
}

// TestLatencyLongerThanWindowSaysSo: a latency that outlasts the time measuring may take
// is reported as a lower bound and an error, never as landed or as ≈0.
func TestLatencyLongerThanWindowSaysSo(t *testing.T) {
	l := newLinks(t)
	addLink(t, l, Link{From: "product", To: "broker-1", ToService: "broker", Upstream: startNATS(t)})
	env := NewEnv(l, nil)
	f := &Latency{Target: "product->broker", Latency: 3 * time.Second, Direction: "upstream"}
	t.Cleanup(func() { _ = f.Heal(context.Background(), env) })
	require.NoError(t, f.Inject(context.Background(), env))
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	eff, err := f.Measure(ctx, env)
	require.Error(t, err, "effect %+v", eff)
	assert.Contains(t, err.Error(), "had no answer when measuring had to stop")
	assert.Contains(t, err.Error(), "at least that much added")
}

// TestProbeDialectRepliesNotGreetings checks the reply matchers on their own: what a
// server volunteers never counts as the answer, what answers the probe does.
func TestProbeDialectRepliesNotGreetings(t *testing.T) {
	settings := []byte{0, 0, 6, h2Settings, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100}
	window := []byte{0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	pingAck := []byte{0, 0, 8, h2Ping, h2Ack, 0, 0, 0, 0, 'f', 'a', 'u', 'l', 't', 'l', 'i', 'n'}
	tests := []struct {
		name     string
		match    func([]byte) bool
		chunks   [][]byte
		wantLast bool
	}{
		{"nats info split across reads is skipped", natsReply([]byte("INFO {\"a\":")), [][]byte{[]byte("1}\r\n")}, false},
		{"nats pong answers", natsReply([]byte("INFO {}\r\n")), [][]byte{[]byte("PONG\r\n")}, true},
		{"nats err answers", natsReply(nil), [][]byte{[]byte("INFO {}\r\n-ERR 'Authorization Violation'\r\n")}, true},
		{"h2 volunteered frames are skipped", h2Reply(settings[:5]), [][]byte{settings[5:], window}, false},
		{"h2 ping ack answers", h2Reply(settings), [][]byte{window, pingAck}, true},
		{"h2 ack split across reads", h2Reply(nil), [][]byte{append(append([]byte{}, settings...), pingAck[:4]...), pingAck[4:]}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := false
			for _, c := range tt.chunks {
				got = tt.match(c)
			}
			assert.Equal(t, tt.wantLast, got)
		})
	}
}

func TestDialectOf(t *testing.T) {
	tests := []struct {
		greeting string
		want     string
	}{
		{"", DialectNone},
		{"INFO {\"server_id\":\"x\"}\r\n", DialectNATS},
		{"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64", DialectHTTP2},
		{"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping", DialectOther},
		{"220 smtp ready\r\n", DialectOther},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.want+" "+tt.greeting[:min(len(tt.greeting), 8)]), func(t *testing.T) {
			got := dialectOf([]byte(tt.greeting))
			assert.Equal(t, tt.want, got)
		})
	}
}

// startGreeter runs a server in an unknown protocol that speaks first and then answers
// each line with "ok", the case where a probe must take the greeting before writing.
func startGreeter(t *testing.T) string {
	t.Helper()
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_, _ = c.Write([]byte("220 hello\r\n"))
				buf := make([]byte, 1024)
				if _, err := c.Read(buf); err == nil {
					_, _ = c.Write([]byte("ok\r\n"))
				}
			}(c)
		}
	}()
	return ln.Addr().String()
}

func TestLatencyMeasuredOnUnknownGreeter(t *testing.T) {
	tests := []struct {
		direction string
		want      float64
	}{{"downstream", 100}, {"upstream", 100}, {"both", 200}}
	for _, tt := range tests {
		t.Run(tt.direction, func(t *testing.T) {
			l := newLinks(t)
			addLink(t, l, Link{From: "caller", To: "smtp-1", ToService: "smtp", Upstream: startGreeter(t)})
			eff := injectMeasure(t, NewEnv(l, nil), &Latency{Target: "caller->smtp", Latency: 100 * time.Millisecond, Direction: tt.direction})
			assert.True(t, eff.Landed, "effect %+v", eff)
			assert.InDelta(t, tt.want, eff.Measured, tt.want/10, "effect %+v", eff)
			assert.Contains(t, eff.Detail, "speaks other")
		})
	}
}

// BenchmarkMeasureLatency is what measuring a 200 ms latency on a gRPC link costs: with
// the samples running side by side it should stay near one probe's time (≈0.2 s/op), not
// five, which is what lets a 1.5 s latency be measured five times in a 3 s window.
func BenchmarkMeasureLatency(b *testing.B) {
	ln, err := node.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	b.Cleanup(srv.Stop)
	go func() { _ = srv.Serve(ln) }()
	l, err := NewLinks()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	if _, err := l.Add(context.Background(), Link{From: "caller", To: "grpc-1", Upstream: ln.Addr().String()}); err != nil {
		b.Fatal(err)
	}
	env := NewEnv(l, nil)
	f := &Latency{Target: "caller->grpc-1", Latency: 200 * time.Millisecond}
	if err := f.Inject(context.Background(), env); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Heal(context.Background(), env) })
	for b.Loop() {
		if eff, err := f.Measure(context.Background(), env); err != nil || !eff.Landed {
			b.Fatalf("measure: %+v %v", eff, err)
		}
	}
}
