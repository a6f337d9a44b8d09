package faults

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDisconnectWithoutNetworkControlTakesEveryLinkDown shows the fallback of a runtime
// that cannot take a process off the network: every link to and from the component is
// refused, links of its siblings are not, and healing brings them back.
func TestDisconnectWithoutNetworkControlTakesEveryLinkDown(t *testing.T) {
	l := newLinks(t)
	echo := startEcho(t)
	in := addLink(t, l, Link{From: "caller", To: "echo-1", ToService: "echo", Upstream: echo})
	out := addLink(t, l, Link{From: "echo-1", FromService: "echo", To: "registry-1", ToService: "registry", Upstream: echo})
	sibling := addLink(t, l, Link{From: "caller", To: "echo-2", ToService: "echo", Upstream: echo})
	procs := newSleepProcs(t, map[string][]string{"echo": {"echo-1", "echo-2"}})
	env := NewEnv(l, procs)

	f := &Disconnect{Target: "echo-1"}
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Contains(t, eff.Detail, "2/2 links refuse")
	for _, addr := range []string{in, out} {
		assert.Equal(t, OutcomeRefused, TCPProbe(context.Background(), addr, ProbeSpec{}).Outcome, addr)
	}
	got, _, _, err := roundTrip(t, sibling, []byte("still"))
	require.NoError(t, err, "a sibling's link is untouched")
	assert.Equal(t, "still", string(got))
	assert.True(t, procs.Running("echo-1"), "a disconnected component keeps running")

	require.NoError(t, f.Heal(context.Background(), env))
	for _, addr := range []string{in, out} {
		got, _, _, err := roundTrip(t, addr, []byte("back"))
		require.NoError(t, err, addr)
		assert.Equal(t, "back", string(got))
	}
}

// netProcs adds network control and a health view to sleepProcs, like a container system.
type netProcs struct {
	*sleepProcs
	mu  sync.Mutex
	off map[string]bool
}

func (p *netProcs) Disconnect(_ context.Context, name string) error { return p.set(name, true) }
func (p *netProcs) Reconnect(_ context.Context, name string) error  { return p.set(name, false) }
func (p *netProcs) CanDisconnect(string) bool                       { return true }
func (p *netProcs) Healthy(_ context.Context, name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.off[name]
}

func (p *netProcs) set(name string, off bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off[name] = off
	return nil
}

var (
	_ Networker    = (*netProcs)(nil)
	_ HealthProber = (*netProcs)(nil)
)

// TestDisconnectUsesTheRuntimesNetworkControl: where the runtime can take a component
// off the network, the fault asks it to (and leaves the links alone), measures the
// component unreachable and reconnects it on heal.
func TestDisconnectUsesTheRuntimesNetworkControl(t *testing.T) {
	l := newLinks(t)
	echo := startEcho(t)
	in := addLink(t, l, Link{From: "caller", To: "echo-1", ToService: "echo", Upstream: echo})
	procs := &netProcs{sleepProcs: newSleepProcs(t, map[string][]string{"echo": {"echo-1"}}), off: map[string]bool{}}
	env := NewEnv(l, procs)

	f := &Disconnect{Target: "echo"}
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, "echo-1: healthy=false", eff.Detail)
	assert.True(t, l.Enabled("caller->echo-1"), "the runtime cut it, not the proxy")
	require.NoError(t, f.Heal(context.Background(), env))
	assert.True(t, procs.Healthy(context.Background(), "echo-1"), "reconnected")
	got, _, _, err := roundTrip(t, in, []byte("ok"))
	require.NoError(t, err)
	assert.Equal(t, "ok", string(got))
}
