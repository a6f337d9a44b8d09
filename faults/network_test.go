package faults

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func echoLink(t *testing.T, l *Links) (proxy, upstream string) {
	t.Helper()
	upstream = startEcho(t)
	proxy = addLink(t, l, Link{From: "caller", To: "echo-1", ToService: "echo", Upstream: upstream})
	return proxy, upstream
}

func injectMeasure(t *testing.T, env Env, f Fault) Effect {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() { _ = f.Heal(context.Background(), env) })
	require.NoError(t, f.Inject(ctx, env))
	eff, err := f.(Measurer).Measure(ctx, env)
	require.NoError(t, err)
	return eff
}

func TestLatencyAddsConfiguredDelay(t *testing.T) {
	tests := []struct {
		name      string
		direction string
		latency   time.Duration
		wantMS    float64
	}{
		{"downstream", "", 200 * time.Millisecond, 200},
		{"upstream", "upstream", 150 * time.Millisecond, 150},
		{"both ways count twice", "both", 100 * time.Millisecond, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLinks(t)
			proxy, _ := echoLink(t, l)
			env := NewEnv(l, nil)
			f := &Latency{Target: "caller->echo", Latency: tt.latency, Direction: tt.direction}
			eff := injectMeasure(t, env, f)
			assert.True(t, eff.Landed, "effect %+v", eff)
			assert.Equal(t, tt.wantMS, eff.Configured)
			assert.InDelta(t, tt.wantMS, eff.Measured, tt.wantMS/4, "effect %+v", eff)

			// The delay is physical: a real round trip through the proxy cannot beat it.
			_, _, elapsed, err := roundTrip(t, proxy, []byte("ping"))
			require.NoError(t, err)
			assert.GreaterOrEqual(t, elapsed, time.Duration(tt.wantMS*0.9)*time.Millisecond)

			require.NoError(t, f.Heal(context.Background(), env))
			names, err := l.ToxicNames("caller->echo-1")
			require.NoError(t, err)
			assert.Empty(t, names)
		})
	}
}

func TestLatencyNotOnPathIsNotLanded(t *testing.T) {
	// A prober that reaches the callee without passing the proxy, like a caller that
	// dials the real address: the fault is installed but never on the path.
	bypass := func(ctx context.Context, link Link, _ string, spec ProbeSpec) Probe {
		return TCPProbe(ctx, link.Upstream, spec)
	}
	l := newLinks(t, WithProber(bypass))
	echoLink(t, l)
	env := NewEnv(l, nil)
	eff := injectMeasure(t, env, &Latency{Target: "caller->echo-1", Latency: 150 * time.Millisecond})
	assert.False(t, eff.Landed, "effect %+v", eff)
	assert.Less(t, eff.Measured, 100.0)
}

func TestLatencyWithToxicityDelaysSomeConnections(t *testing.T) {
	l := newLinks(t)
	echoLink(t, l)
	eff := injectMeasure(t, NewEnv(l, nil), &Latency{Target: "caller->echo", Latency: 100 * time.Millisecond, Toxicity: 0.5})
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Contains(t, eff.Detail, "probes delayed")
}

func TestTimeoutBlackHolesUntilHeal(t *testing.T) {
	l := newLinks(t)
	upstream := startHTTP(t)
	addLink(t, l, Link{From: "gateway", To: "order-1", ToService: "order", Upstream: upstream})
	env := NewEnv(l, nil)
	f := &Timeout{Target: "gateway->order"}
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)

	ctx := context.Background()
	p, err := l.Probe(ctx, "gateway->order-1", ProbeSpec{})
	require.NoError(t, err)
	assert.Equal(t, OutcomeSilent, p.Outcome)
	d, err := l.ProbeDirect(ctx, "gateway->order-1", ProbeSpec{})
	require.NoError(t, err)
	assert.Equal(t, OutcomeAnswered, d.Outcome)

	require.NoError(t, f.Heal(ctx, env))
	require.NoError(t, f.Heal(ctx, env), "heal twice")
	p, err = l.Probe(ctx, "gateway->order-1", ProbeSpec{})
	require.NoError(t, err)
	assert.Equal(t, OutcomeAnswered, p.Outcome)
}

func TestTimeoutWithDelayClosesConnection(t *testing.T) {
	l := newLinks(t)
	echoLink(t, l)
	eff := injectMeasure(t, NewEnv(l, nil), &Timeout{Target: "caller->echo", Timeout: 150 * time.Millisecond})
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.GreaterOrEqual(t, eff.Measured, 140.0)
}

func TestResetPeerResets(t *testing.T) {
	l := newLinks(t)
	proxy, _ := echoLink(t, l)
	eff := injectMeasure(t, NewEnv(l, nil), &ResetPeer{Target: "caller->echo"})
	assert.True(t, eff.Landed, "effect %+v", eff)

	p := TCPProbe(context.Background(), proxy, ProbeSpec{Timeout: 2 * time.Second})
	assert.Equal(t, OutcomeReset, p.Outcome, "probe %+v", p)
	assert.Zero(t, p.Bytes)
}

func TestDownRefusesAndComesBackOnTheSameAddress(t *testing.T) {
	l := newLinks(t)
	proxy, _ := echoLink(t, l)
	env := NewEnv(l, nil)
	a := &Down{Target: "caller->echo-1"}
	eff := injectMeasure(t, env, a)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, OutcomeRefused, TCPProbe(context.Background(), proxy, ProbeSpec{}).Outcome)

	// A second outage on the same link keeps it down when the first one heals.
	b := &Down{Target: "caller->echo"}
	require.NoError(t, b.Inject(context.Background(), env))
	require.NoError(t, a.Heal(context.Background(), env))
	assert.False(t, l.Enabled("caller->echo-1"))
	require.NoError(t, b.Heal(context.Background(), env))
	assert.True(t, l.Enabled("caller->echo-1"))
	got, _, _, err := roundTrip(t, proxy, []byte("back"))
	require.NoError(t, err)
	assert.Equal(t, "back", string(got))
}

func TestBandwidthSlowsAMegabyte(t *testing.T) {
	l := newLinks(t)
	proxy, upstream := echoLink(t, l)
	const rate = 2000 // KB/s: a megabyte takes about half a second
	eff := injectMeasure(t, NewEnv(l, nil), &Bandwidth{Target: "caller->echo", Rate: rate})
	assert.True(t, eff.Landed, "effect %+v", eff)

	payload := bytes.Repeat([]byte("b"), 1<<20)
	got, _, slow, err := roundTrip(t, proxy, payload)
	require.NoError(t, err)
	require.Equal(t, len(payload), len(got))
	_, _, fast, err := roundTrip(t, upstream, payload)
	require.NoError(t, err)
	// The toxic cannot deliver faster than its rate: 1 MiB at 2000 KB/s is ~524 ms.
	assert.GreaterOrEqual(t, slow, 450*time.Millisecond)
	assert.Greater(t, slow, fast)
}

func TestSlicerSplitsWrites(t *testing.T) {
	l := newLinks(t)
	proxy, upstream := echoLink(t, l)
	eff := injectMeasure(t, NewEnv(l, nil), &Slicer{Target: "caller->echo", AverageSize: 64, SizeVariation: 16, Delay: time.Millisecond})
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.LessOrEqual(t, eff.Measured, 160.0)

	payload := bytes.Repeat([]byte("s"), 4096)
	got, sliced, _, err := roundTrip(t, proxy, payload)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got), "echo through the slicer lost data: %d of %d bytes", len(got), len(payload))
	_, whole, _, err := roundTrip(t, upstream, payload)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, sliced, 20, "4096 bytes in ~64-byte slices 1 ms apart")
	assert.Less(t, whole, sliced)
}

func TestLimitDataClosesAfterBytes(t *testing.T) {
	l := newLinks(t)
	proxy, _ := echoLink(t, l)
	eff := injectMeasure(t, NewEnv(l, nil), &LimitData{Target: "caller->echo", Bytes: 1000})
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, 1000.0, eff.Measured)

	got, _, _, _ := roundTrip(t, proxy, bytes.Repeat([]byte("l"), 8192))
	assert.Equal(t, 1000, len(got))
}

func TestSlowCloseDelaysTheClose(t *testing.T) {
	l := newLinks(t)
	upstream := startHTTP(t)
	proxy := addLink(t, l, Link{From: "gateway", To: "order-1", ToService: "order", Upstream: upstream})
	eff := injectMeasure(t, NewEnv(l, nil), &SlowClose{Target: "gateway->order-1", Delay: 200 * time.Millisecond})
	assert.True(t, eff.Landed, "effect %+v", eff)

	p := TCPProbe(context.Background(), proxy, ProbeSpec{ReadAll: true, Timeout: 3 * time.Second})
	require.True(t, p.EOF, "probe %+v", p)
	assert.Greater(t, p.Bytes, int64(0))
	assert.GreaterOrEqual(t, p.Elapsed-p.FirstByte, 150*time.Millisecond, "the answer comes at once, the close 200 ms later")
}

func TestInjectUnknownLinkListsTheLinks(t *testing.T) {
	l := newLinks(t)
	echoLink(t, l)
	err := (&Latency{Target: "caller->nowhere", Latency: time.Second}).Inject(context.Background(), NewEnv(l, nil))
	require.Error(t, err)
	assert.Equal(t, `inject latency: no link matches "caller->nowhere" (links: caller->echo-1)`, err.Error())

	err = (&Latency{Target: "caller->echo", Latency: time.Second}).Inject(context.Background(), NewEnv(nil, nil))
	require.Error(t, err)
	assert.Equal(t, "inject latency: this run has no links to fault", err.Error())
}

func TestDeadManTimerHealsAForgottenFault(t *testing.T) {
	l := newLinks(t)
	echoLink(t, l)
	env := NewEnv(l, nil)
	ctx := context.Background()
	lat := &Latency{Target: "caller->echo", Latency: 100 * time.Millisecond, Duration: 150 * time.Millisecond}
	down := &Down{Target: "caller->echo", Duration: 150 * time.Millisecond}
	require.NoError(t, lat.Inject(ctx, env))
	require.NoError(t, down.Inject(ctx, env))
	names, err := l.ToxicNames("caller->echo-1")
	require.NoError(t, err)
	require.Len(t, names, 1)
	require.False(t, l.Enabled("caller->echo-1"))

	require.Eventually(t, func() bool {
		names, err := l.ToxicNames("caller->echo-1")
		return err == nil && len(names) == 0 && l.Enabled("caller->echo-1")
	}, 10*time.Second, 20*time.Millisecond)
	// Healing after the timer fired is still fine.
	require.NoError(t, lat.Heal(ctx, env))
	require.NoError(t, down.Heal(ctx, env))
}

func TestHealNeverInjectedIsNoop(t *testing.T) {
	for _, kind := range Kinds() {
		f, err := New(kind)
		require.NoError(t, err)
		assert.NoError(t, f.Heal(context.Background(), NewEnv(nil, nil)), kind)
	}
}

func TestTCPProbeOutcomes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedAddr := ln.Addr().String()
	require.NoError(t, ln.Close())

	assert.Equal(t, OutcomeRefused, TCPProbe(context.Background(), closedAddr, ProbeSpec{}).Outcome)
	p := TCPProbe(context.Background(), startHTTP(t), ProbeSpec{ReadAll: true})
	assert.Equal(t, OutcomeAnswered, p.Outcome)
	assert.True(t, p.EOF)
	assert.Contains(t, p.Err, "")
}

// BenchmarkProbeThroughProxy is the cost a measurement pays per probe on a clean link;
// it should stay well under a millisecond so 5 ms latency tolerances are meaningful.
func BenchmarkProbeThroughProxy(b *testing.B) {
	l, err := NewLinks()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	upstream := startEcho(b)
	if _, err := l.Add(context.Background(), Link{From: "caller", To: "echo-1", Upstream: upstream}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if p, _ := l.Probe(context.Background(), "caller->echo-1", ProbeSpec{}); p.Outcome != OutcomeAnswered {
			b.Fatalf("probe: %+v", p)
		}
	}
}
