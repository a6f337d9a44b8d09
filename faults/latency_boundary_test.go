package faults

import (
	"context"
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
