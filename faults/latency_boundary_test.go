package faults

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// bypassProber reaches the callee without passing the proxy, like a caller that dials the
// real address: the fault is installed but never on the path, so nothing is added.
func bypassProber(ctx context.Context, link Link, _ string, spec ProbeSpec) Probe {
	return TCPProbe(ctx, link.Upstream, spec)
}

// TestLatencyLandsOnlyWithARealDelay holds Latency.Measure to its boundary with a real
// TCP server and a real Toxiproxy proxy: a delay the proxy really adds lands, the same
// configuration with the proxy bypassed (0 ms added) never does, however small the
// latency or wide the jitter.
func TestLatencyLandsOnlyWithARealDelay(t *testing.T) {
	tests := []struct {
		name    string
		latency time.Duration
		jitter  time.Duration
		bypass  bool
		landed  bool
	}{
		{"4ms through the proxy lands", 4 * time.Millisecond, 0, false, true},
		{"4ms bypassed adds nothing", 4 * time.Millisecond, 0, true, false},
		{"200ms with 200ms jitter through the proxy lands", 200 * time.Millisecond, 200 * time.Millisecond, false, true},
		{"200ms with 200ms jitter bypassed adds nothing", 200 * time.Millisecond, 200 * time.Millisecond, true, false},
		{"50ms with 20ms jitter through the proxy lands", 50 * time.Millisecond, 20 * time.Millisecond, false, true},
		{"50ms with 20ms jitter bypassed adds nothing", 50 * time.Millisecond, 20 * time.Millisecond, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []Option
			if tt.bypass {
				opts = append(opts, WithProber(bypassProber))
			}
			l := newLinks(t, opts...)
			echoLink(t, l)
			eff := injectMeasure(t, NewEnv(l, nil), &Latency{Target: "caller->echo-1", Latency: tt.latency, Jitter: tt.jitter})
			assert.Equal(t, tt.landed, eff.Landed, "effect %+v", eff)
			if tt.bypass {
				assert.Less(t, eff.Measured, float64(tt.latency.Milliseconds())/2, "effect %+v", eff)
			}
			assert.Greater(t, eff.Tolerance, 0.0, "the tolerance the verdict used is reported")
			assert.Less(t, eff.Tolerance, float64(tt.latency.Milliseconds()), "a tolerance as wide as the latency would accept 0 ms added")
			if tt.jitter > 0 {
				assert.Contains(t, eff.Detail, "mean", "with jitter the distribution is measured")
				assert.Contains(t, eff.Detail, "spread", "with jitter the distribution is measured")
			}
		})
	}
}

// TestLatencyJitterIsMeasuredAsADistribution: with wide jitter the fastest of a few probes
// sits near latency - jitter; the mean of the distribution sits at the latency.
func TestLatencyJitterIsMeasuredAsADistribution(t *testing.T) {
	l := newLinks(t)
	echoLink(t, l)
	eff := injectMeasure(t, NewEnv(l, nil), &Latency{Target: "caller->echo-1", Latency: 200 * time.Millisecond, Jitter: 200 * time.Millisecond})
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.InDelta(t, 200, eff.Measured, eff.Tolerance, "the mean, not the fastest probe: %+v", eff)
	assert.Greater(t, eff.Measured, 110.0, "effect %+v", eff)
}

// TestLatencyToleranceNeverReachesTheDelay: whatever the latency and jitter, a link that
// added nothing lies outside the tolerance.
func TestLatencyToleranceNeverReachesTheDelay(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		latency, jitter time.Duration
		streams         int
		want, tol       time.Duration
	}{
		{1 * ms, 0, 1, 1 * ms, ms / 2},
		{4 * ms, 0, 1, 4 * ms, 2 * ms},
		{10 * ms, 0, 1, 10 * ms, 5 * ms},
		{300 * ms, 0, 1, 300 * ms, 30 * ms},
		{300 * ms, 0, 2, 600 * ms, 60 * ms},
		{200 * ms, 200 * ms, 1, 200 * ms, 97460 * time.Microsecond}, // 20 ms + 3·(200/√3)/√20, under half
		{20 * ms, 20 * ms, 1, 20 * ms, 10 * ms},                     // 5 ms + 7.7 ms, capped at half
		{1000 * ms, 100 * ms, 1, 1000 * ms, 100*ms + 3*time.Duration(float64(100*ms)/1.7320508/4.472136)},
	}
	for _, tt := range tests {
		ls := newLatencySpec(tt.latency, tt.jitter, tt.streams, 5, 0)
		assert.Equal(t, tt.want, ls.want, "%+v", tt)
		assert.InDelta(t, float64(tt.tol), float64(ls.tol), float64(time.Millisecond), "%+v", tt)
		assert.Less(t, ls.tol, ls.want, "0 ms added must never land: %+v", tt)
		if tt.jitter > 0 {
			assert.GreaterOrEqual(t, ls.samples, jitterSamples, "a distribution takes enough probes")
		}
	}
}

// TestLatencyMeasureAtTheBoundary holds the verdict to its bounds on a real proxy: a hand
// toxic adds a known delay and the measurement is held to what a fault would want.
func TestLatencyMeasureAtTheBoundary(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name   string
		added  time.Duration // what the proxy really adds
		want   time.Duration // what the measurement expects
		landed bool
	}{
		{"as configured", 100 * ms, 100 * ms, true},
		{"within 10 %", 95 * ms, 100 * ms, true},
		{"well short of it", 60 * ms, 100 * ms, false},
		{"nothing added", 0, 100 * ms, false},
		{"twice as much", 200 * ms, 100 * ms, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLinks(t)
			echoLink(t, l)
			const name = "caller->echo-1"
			if tt.added > 0 {
				_, err := l.AddToxic(context.Background(), name, Toxic{Type: "latency", Attributes: map[string]any{"latency": tt.added.Milliseconds()}})
				assert.NoError(t, err)
			}
			r := measureLatency(context.Background(), l, name, newLatencySpec(tt.want, 0, 1, l.samples, 0))
			assert.Equal(t, tt.landed, r.landed, r.detail)
			assert.InDelta(t, tt.added.Seconds()*1000, r.measured, 5, r.detail)
		})
	}
}

// TestLatencyBaselineCrossesTheSameServer: a latency is measured against a bare proxy on
// the same server, so a server that is slow for every proxy (a Toxiproxy pod carrying a
// loaded system) does not make the toxic seem larger, while a delay on the faulted proxy
// alone still counts. The prober adds the hop's delay to probes through the proxies it is
// told to slow, as a loaded server would.
func TestLatencyBaselineCrossesTheSameServer(t *testing.T) {
	const latency, hop = 300 * time.Millisecond, 60 * time.Millisecond
	tests := []struct {
		name      string
		slow      func(addr, proxy, upstream string) bool
		landed    bool
		wantMS    float64
		wantInDet string
	}{
		{"a hop every proxy pays is not the fault's", func(addr, _, upstream string) bool { return addr != upstream },
			true, 300, "through a bare proxy"},
		{"a delay of the faulted proxy alone is", func(addr, proxy, _ string) bool { return addr == proxy },
			false, 360, "through a bare proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var proxy string
			prober := func(ctx context.Context, link Link, addr string, spec ProbeSpec) Probe {
				p := TCPProbe(ctx, addr, spec)
				if tt.slow(addr, proxy, link.Upstream) && p.Outcome == OutcomeAnswered {
					p.FirstByte += hop
					p.Elapsed += hop
				}
				return p
			}
			eff := echoLatencyThrough(t, latency, prober, &proxy)
			assertLatencyEffect(t, eff, tt.landed, tt.wantMS, tt.wantInDet)
		})
	}
}

// TestLatencyWithEveryProbeUnansweredAfterTheFirst: an upstream that answers the first
// probe and then nothing (it died during the measurement) leaves no time on any side; the
// measurement says nothing came back through the proxy, and never lands.
func TestLatencyWithEveryProbeUnansweredAfterTheFirst(t *testing.T) {
	var calls atomic.Int32
	prober := func(ctx context.Context, _ Link, addr string, spec ProbeSpec) Probe {
		if calls.Add(1) == 1 {
			return TCPProbe(ctx, addr, spec)
		}
		return Probe{Outcome: OutcomeRefused}
	}
	l := newLinks(t, WithProber(prober))
	echoLink(t, l)
	eff := injectMeasure(t, NewEnv(l, nil), &Latency{Target: "caller->echo-1", Latency: 50 * time.Millisecond})
	assert.False(t, eff.Landed, "effect %+v", eff)
	assert.Contains(t, eff.Detail, "no answer through the proxy")
}

// TestLatencyMeasuredAgainWhenTheServerIsNoisy: a round whose bare proxy pays a hop
// above the tolerance cannot judge a latency, whichever way its figure falls, and is
// measured again; the first round that can judge is the answer. Noise decides, never
// the outcome: a latency that is off is not given another chance because it missed, and
// a round that landed by chance is not taken because it landed.
func TestLatencyMeasuredAgainWhenTheServerIsNoisy(t *testing.T) {
	const latency = 300 * time.Millisecond
	ms := time.Millisecond
	tests := []struct {
		name string
		// bare and faulted are the delays added in each round (1-based; rounds past the
		// end of the list add nothing) to the bare proxy's and the faulted proxy's probes.
		bare, faulted []time.Duration
		// off is added to the faulted proxy in every round: a toxic that is off by that.
		off       time.Duration
		landed    bool
		wantMS    float64
		wantInDet string
	}{
		{"a noisy round that would miss is measured again", []time.Duration{80 * ms}, []time.Duration{150 * ms}, 0,
			true, 300, "measured again after 1 round(s)"},
		{"a noisy round that would land by chance is measured again", []time.Duration{80 * ms}, []time.Duration{0}, 60 * ms,
			false, 360, "measured again after 1 round(s)"},
		{"a quiet round is the answer at once", nil, nil, 60 * ms,
			false, 360, "through a bare proxy"},
		{"with every round noisy the quietest is the answer", []time.Duration{90 * ms, 50 * ms, 70 * ms, 80 * ms}, []time.Duration{90 * ms, 130 * ms, 70 * ms, 80 * ms}, 0,
			false, 380, "the quietest of 4 rounds"},
	}
	at := func(ds []time.Duration, round int) time.Duration {
		if round < 1 || round > len(ds) {
			return 0
		}
		return ds[round-1]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var proxy string
			var mu sync.Mutex
			probes := map[string]int{}
			prober := func(ctx context.Context, link Link, addr string, spec ProbeSpec) Probe {
				if addr == link.Upstream {
					return TCPProbe(ctx, addr, spec)
				}
				// Every round sends latencyTestSamples probes through each proxy: the
				// probe's count through its proxy says its round.
				mu.Lock()
				probes[addr]++
				r := (probes[addr]-1)/latencyTestSamples + 1
				mu.Unlock()
				p := TCPProbe(ctx, addr, spec)
				if p.Outcome != OutcomeAnswered {
					return p
				}
				d := at(tt.bare, r)
				if addr == proxy {
					d = at(tt.faulted, r) + tt.off
				}
				p.FirstByte += d
				p.Elapsed += d
				return p
			}
			eff := echoLatencyThrough(t, latency, prober, &proxy)
			assertLatencyEffect(t, eff, tt.landed, tt.wantMS, tt.wantInDet)
		})
	}
}

// latencyTestSamples is how many probes a round of echoLatencyThrough's measurement sends
// on each path.
const latencyTestSamples = 5

// echoLatencyThrough injects latency on an echo link whose probes go through prober, and
// returns what was measured; *proxy is the link's proxy address, for the prober to tell
// the faulted path from the others.
func echoLatencyThrough(t *testing.T, latency time.Duration, prober Prober, proxy *string) Effect {
	t.Helper()
	l := newLinks(t, WithProber(prober), WithProbeSamples(latencyTestSamples))
	*proxy, _ = echoLink(t, l)
	return injectMeasure(t, NewEnv(l, nil), &Latency{Target: "caller->echo-1", Latency: latency})
}

// assertLatencyEffect checks a measured latency's verdict, figure (to 15 ms) and detail.
func assertLatencyEffect(t *testing.T, eff Effect, landed bool, wantMS float64, inDetail string) {
	t.Helper()
	assert.Equal(t, landed, eff.Landed, "effect %+v", eff)
	assert.InDelta(t, wantMS, eff.Measured, 15, "effect %+v", eff)
	assert.Contains(t, eff.Detail, inDetail)
}
