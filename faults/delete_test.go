package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ctlProcs is a Processes with a controller, like a Kubernetes Deployment: a deleted
// instance is gone at once and its replacement, with a new id, runs replaceAfter later.
type ctlProcs struct {
	services     map[string][]string
	replaceAfter time.Duration

	mu      sync.Mutex
	ids     map[string]string // name -> current instance id ("" while none runs)
	next    int
	deletes []string
}

func newCtlProcs(replaceAfter time.Duration, services map[string][]string) *ctlProcs {
	p := &ctlProcs{services: services, replaceAfter: replaceAfter, ids: map[string]string{}}
	for _, names := range services {
		for _, n := range names {
			p.ids[n] = p.newID(n)
		}
	}
	return p
}

func (p *ctlProcs) newID(name string) string {
	p.next++
	return fmt.Sprintf("uid-%s-%d", name, p.next)
}

func (p *ctlProcs) Delete(ctx context.Context, name string) error {
	p.mu.Lock()
	p.ids[name] = ""
	p.deletes = append(p.deletes, name)
	p.mu.Unlock()
	// The controller replaces it whatever the caller does next.
	time.AfterFunc(p.replaceAfter, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.ids[name] = p.newID(name)
	})
	return p.await(ctx, name)
}

func (p *ctlProcs) await(ctx context.Context, name string) error {
	for !p.Running(name) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the replacement of %s: %w", name, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (p *ctlProcs) CanDelete(string) bool { return true }

func (p *ctlProcs) InstanceID(name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids[name]
}

func (p *ctlProcs) Kill(string) error   { return nil }
func (p *ctlProcs) Pause(string) error  { return nil }
func (p *ctlProcs) Resume(string) error { return nil }

// Restart waits for the instance to run, as the kubernetes runtime's does for a pod its
// controller is replacing.
func (p *ctlProcs) Restart(ctx context.Context, name string) error { return p.await(ctx, name) }

func (p *ctlProcs) Running(name string) bool { return p.InstanceID(name) != "" }

func (p *ctlProcs) Instances(service string) []string { return p.services[service] }

var (
	_ Processes = (*ctlProcs)(nil)
	_ Deleter   = (*ctlProcs)(nil)
)

func TestDeleteReplacesAndMeasuresReadiness(t *testing.T) {
	p := newCtlProcs(80*time.Millisecond, map[string][]string{"order": {"order-1", "order-2"}})
	env := NewEnv(nil, p)
	before1, before2 := p.InstanceID("order-1"), p.InstanceID("order-2")
	f := &Delete{Target: "order", Pick: "one"}

	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, "delete", eff.Kind)
	assert.Equal(t, "s", eff.Unit)
	assert.GreaterOrEqual(t, eff.Measured, 0.08, "the replacement's time to ready, in seconds")
	assert.Less(t, eff.Measured, 5.0)
	assert.Equal(t, DefaultReadyWithin.Seconds(), eff.Tolerance)
	assert.Contains(t, eff.Detail, "order-1: instance uid-orde -> uid-orde, running=true, replacement ready")
	assert.NotEqual(t, before1, p.InstanceID("order-1"), "order-1 was replaced")
	assert.Equal(t, before2, p.InstanceID("order-2"), "pick one leaves the other replica alone")
	assert.Equal(t, []string{"order-1"}, p.deletes)

	require.NoError(t, f.Heal(context.Background(), env))
	require.NoError(t, f.Heal(context.Background(), env), "heal twice")
	assert.True(t, p.Running("order-1"))
	assert.Equal(t, []string{"order-1"}, p.deletes, "the heal deletes nothing")
}

func TestDeleteAllReplacesOneAfterTheOther(t *testing.T) {
	p := newCtlProcs(20*time.Millisecond, map[string][]string{"order": {"order-1", "order-2"}})
	env := NewEnv(nil, p)
	f := &Delete{Target: "order"}
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, []string{"order-1", "order-2"}, p.deletes)
	assert.Contains(t, eff.Detail, "order-2: instance")
	require.NoError(t, f.Heal(context.Background(), env))
}

// TestDeleteHealWaitsForALateReplacement: a replacement slower than ready_within fails the
// inject and does not land; the heal still waits until it runs.
func TestDeleteHealWaitsForALateReplacement(t *testing.T) {
	p := newCtlProcs(300*time.Millisecond, map[string][]string{"order": {"order-1", "order-2"}})
	env := NewEnv(nil, p)
	f := &Delete{Target: "order-2", ReadyWithin: 50 * time.Millisecond}
	err := f.Inject(context.Background(), env)
	require.ErrorContains(t, err, "inject delete: delete order-2: wait for the replacement of order-2")

	eff, err := f.Measure(context.Background(), env)
	require.NoError(t, err)
	assert.False(t, eff.Landed, "effect %+v", eff)
	assert.Contains(t, eff.Detail, "replacement not ready when the inject returned")

	require.NoError(t, f.Heal(context.Background(), env))
	assert.True(t, p.Running("order-2"), "the heal returns once the replacement runs")
	require.NoError(t, f.Heal(context.Background(), env), "heal twice")
}

// TestDeleteRefusedWithoutController: a runtime with nothing to replace a deleted instance
// (local processes, containers) makes the inject fail, saying so, and nothing is touched:
// a delete is never a crash in disguise.
func TestDeleteRefusedWithoutController(t *testing.T) {
	p, env := sleepers(t)
	pid, _ := p.PID("sleeper-1")
	f := &Delete{Target: "sleeper", Pick: "one"}
	err := f.Inject(context.Background(), env)
	require.ErrorContains(t, err, "inject delete: the runtime has no controller that replaces a deleted instance (only the kubernetes runtime has one); use crash or restart")
	assert.True(t, p.Running("sleeper-1"))
	now, _ := p.PID("sleeper-1")
	assert.Equal(t, pid, now, "not restarted either")
	_, err = f.Measure(context.Background(), env)
	require.ErrorContains(t, err, "measure delete: not injected")
	require.NoError(t, f.Heal(context.Background(), env), "healing what was never injected")
}

// noDelete has a controller for no instance: CanDelete is false.
type noDelete struct{ *ctlProcs }

func (noDelete) CanDelete(string) bool { return false }

func TestDeleteRefusedWhereTheInstanceCannotBeDeleted(t *testing.T) {
	p := newCtlProcs(time.Millisecond, map[string][]string{"order": {"order-1"}})
	env := NewEnv(nil, noDelete{p})
	err := (&Delete{Target: "order-1"}).Inject(context.Background(), env)
	require.ErrorContains(t, err, "inject delete: order-1: the runtime has no controller that replaces it")
	assert.Empty(t, p.deletes)
}

func TestDeleteValidate(t *testing.T) {
	tests := []struct {
		name string
		f    *Delete
		want []string
	}{
		{"component", &Delete{Target: "order-1"}, nil},
		{"service pick one", &Delete{Target: "order", Pick: "one", ReadyWithin: time.Minute}, nil},
		{"no target", &Delete{}, []string{`target: want a component (api-2) or a service (api), got ""`}},
		{"bad pick", &Delete{Target: "order", Pick: "some"}, []string{`pick: want one or all, got "some"`}},
		{"negative ready_within", &Delete{Target: "order", ReadyWithin: -time.Second}, []string{"ready_within: must not be negative, got -1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, err := range tt.f.Validate() {
				got = append(got, err.Error())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDeleteIsRegistered(t *testing.T) {
	f, err := New("delete")
	require.NoError(t, err)
	assert.IsType(t, &Delete{}, f)
	assert.Contains(t, Kinds(), "delete")
}
