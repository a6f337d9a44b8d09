package faults

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sleepers(t *testing.T) (*sleepProcs, Env) {
	t.Helper()
	p := newSleepProcs(t, map[string][]string{"sleeper": {"sleeper-1", "sleeper-2"}})
	return p, NewEnv(nil, p)
}

func TestCrashKillsAndHealRestarts(t *testing.T) {
	p, env := sleepers(t)
	oldPID, _ := p.PID("sleeper-1")
	f := &Crash{Target: "sleeper", Pick: "one"}
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, 1.0, eff.Measured)
	assert.False(t, p.Running("sleeper-1"))
	assert.True(t, p.Running("sleeper-2"), "pick one leaves the other replica alone")

	require.NoError(t, f.Heal(context.Background(), env))
	require.NoError(t, f.Heal(context.Background(), env), "heal twice")
	assert.True(t, p.Running("sleeper-1"))
	newPID, _ := p.PID("sleeper-1")
	assert.NotEqual(t, oldPID, newPID)
}

func TestPauseStopsAndHealResumes(t *testing.T) {
	p, env := sleepers(t)
	f := &Pause{Target: "sleeper-2"}
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	pid, _ := p.PID("sleeper-2")
	st, err := procState(pid)
	require.NoError(t, err)
	assert.Equal(t, byte('T'), st)

	require.NoError(t, f.Heal(context.Background(), env))
	require.Eventually(t, func() bool {
		st, err := procState(pid)
		return err == nil && st != 'T' && st != 't'
	}, 5*time.Second, 20*time.Millisecond)
	assert.True(t, p.Running("sleeper-2"))
}

func TestPauseDeadManResumes(t *testing.T) {
	p, env := sleepers(t)
	f := &Pause{Target: "sleeper-1", Duration: 100 * time.Millisecond}
	require.NoError(t, f.Inject(context.Background(), env))
	pid, _ := p.PID("sleeper-1")
	require.Eventually(t, func() bool {
		st, err := procState(pid)
		return err == nil && st != 'T' && st != 't'
	}, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, f.Heal(context.Background(), env))
}

func TestPauseWithoutObservationIsNotLanded(t *testing.T) {
	// staticProcs offers neither PIDs nor health: a pause cannot be confirmed.
	env := NewEnv(nil, &staticProcs{})
	f := &Pause{Target: "ghost-1"}
	eff := injectMeasure(t, env, f)
	assert.False(t, eff.Landed)
	assert.Contains(t, eff.Detail, "no PID or health endpoint")
}

func TestRestartStartsANewProcess(t *testing.T) {
	p, env := sleepers(t)
	f := &Restart{Target: "sleeper"}
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, 2.0, eff.Measured)
	assert.True(t, p.Running("sleeper-1"))
	assert.True(t, p.Running("sleeper-2"))
}

func TestCrashLoopKillsRepeatedlyThenLeavesItRunning(t *testing.T) {
	p, env := sleepers(t)
	f := &CrashLoop{Target: "sleeper-1", Interval: 200 * time.Millisecond, Duration: 600 * time.Millisecond}
	require.Empty(t, f.Validate())
	eff := injectMeasure(t, env, f)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.Equal(t, 3.0, eff.Configured)

	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.kills >= 2
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, f.Heal(context.Background(), env))
	assert.True(t, p.Running("sleeper-1"))
	assert.True(t, p.Running("sleeper-2"), "the loop only touches its target")
	require.NoError(t, f.Heal(context.Background(), env), "heal twice")
}

func TestProcessFaultWithoutProcessesFails(t *testing.T) {
	err := (&Crash{Target: "order-1"}).Inject(context.Background(), NewEnv(nil, nil))
	require.Error(t, err)
	assert.Equal(t, "inject crash: this run has no processes to fault", err.Error())
}

// TestCrashLoopIsMeasuredOverItsWindow: right after Inject only the first of five rounds
// has happened; the effect is the loop's whole window, so it is asked again when the
// window ends, and then every round counts.
func TestCrashLoopIsMeasuredOverItsWindow(t *testing.T) {
	_, env := sleepers(t)
	f := &CrashLoop{Target: "sleeper-1", Interval: 300 * time.Millisecond, Duration: 1500 * time.Millisecond}
	require.Empty(t, f.Validate())
	t.Cleanup(func() { _ = f.Heal(context.Background(), env) })
	require.NoError(t, f.Inject(context.Background(), env))
	var m Fault = f
	wm, ok := m.(WindowMeasurer)
	require.True(t, ok, "a crash loop is measured over its window")

	time.Sleep(1600 * time.Millisecond) // the window ends
	eff, err := wm.MeasureWindow(context.Background(), env)
	require.NoError(t, err)
	assert.Equal(t, 5.0, eff.Configured, "rounds due in the window: %+v", eff)
	assert.Equal(t, 5.0, eff.Measured, "every round was observed: %+v", eff)
	assert.True(t, eff.Landed, "effect %+v", eff)

	// A window cut short by the heal is held to the rounds due until then.
	g := &CrashLoop{Target: "sleeper-2", Interval: 300 * time.Millisecond, Duration: 10 * time.Second}
	t.Cleanup(func() { _ = g.Heal(context.Background(), env) })
	require.NoError(t, g.Inject(context.Background(), env))
	time.Sleep(700 * time.Millisecond)
	eff, err = g.MeasureWindow(context.Background(), env)
	require.NoError(t, err)
	assert.Equal(t, 3.0, eff.Configured, "rounds at 0, 300 and 600 ms: %+v", eff)
	assert.Equal(t, 3.0, eff.Measured, "effect %+v", eff)
	assert.True(t, eff.Landed, "effect %+v", eff)
}

// TestPauseWatchesTheLinksThatCallIt: a paused process's kernel still accepts, so the
// links that call it are where requests that tried to reach it are counted; a crash
// watches none (its proxies close every connection before a link starts).
func TestPauseWatchesTheLinksThatCallIt(t *testing.T) {
	p, _ := sleepers(t)
	l := newLinks(t)
	upstream := startEcho(t)
	addLink(t, l, Link{From: "caller", To: "sleeper-1", ToService: "sleeper", Upstream: upstream})
	addLink(t, l, Link{From: "caller", To: "sleeper-2", ToService: "sleeper", Upstream: upstream})
	env := NewEnv(l, p)
	f := &Pause{Target: "sleeper-1"}
	require.NoError(t, f.Inject(context.Background(), env))
	assert.Equal(t, []string{"caller->sleeper-1"}, f.InjectedLinks())
	require.NoError(t, f.Heal(context.Background(), env))
	assert.Empty(t, f.InjectedLinks(), "healed: nothing in place")

	var crash Fault = &Crash{Target: "sleeper-2"}
	_, watches := crash.(LinkFault)
	assert.False(t, watches)
}
