package system

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
)

// eventLog records "start X" and "ready X" in the order they happen.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) index(e string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Index(l.events, e)
}

// fakeGraph runs steps whose readiness is controlled by the test: gate[name], when set,
// must be closed before name is ready.
func fakeGraph(ctx context.Context, steps []step, gate map[string]chan struct{}, started map[string]chan struct{}, log *eventLog) ([]ComponentStartup, error) {
	return runGraph(ctx, steps, stepFuncs{
		start: func(_ context.Context, name string) error {
			log.add("start " + name)
			if c, ok := started[name]; ok {
				close(c)
			}
			return nil
		},
		ready: func(ctx context.Context, name string) error {
			if g, ok := gate[name]; ok {
				select {
				case <-g:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			log.add("ready " + name)
			return nil
		},
	}, time.Now())
}

// TestStartGraphStartsEachComponentAsSoonAsItsOwnDependenciesAreReady: "broker" cannot
// become ready until "merchant" has started, and merchant depends only on "registry". A
// start in waves (every root ready before any dependent starts) never starts merchant, and
// the graph ends at the deadline with an error; a dependency graph starts it right after
// the registry. The assertions are on the order of events, not on time.
func TestStartGraphStartsEachComponentAsSoonAsItsOwnDependenciesAreReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	steps := []step{
		{name: "registry"},
		{name: "broker"},
		{name: "merchant", deps: []string{"registry"}},
		{name: "product", deps: []string{"registry", "broker"}},
		{name: "gateway", deps: []string{"merchant"}},
	}
	// The broker is ready only once the gateway started: that the gateway did not wait for
	// it is then a fact of the graph, not of how the goroutines were scheduled.
	gatewayStarted := make(chan struct{})
	gate := map[string]chan struct{}{"broker": gatewayStarted}
	var log eventLog
	timings, err := fakeGraph(ctx, steps, gate, map[string]chan struct{}{"gateway": gatewayStarted}, &log)
	require.NoError(t, err, "events: %v", log.events)

	before := func(a, b string) {
		t.Helper()
		ia, ib := log.index(a), log.index(b)
		require.NotEqual(t, -1, ia, a)
		require.NotEqual(t, -1, ib, b)
		assert.Less(t, ia, ib, "%q must come before %q; events %v", a, b, log.events)
	}
	// As soon as its own dependency allows: merchant and its dependent gateway do not wait
	// for the unrelated broker.
	before("start merchant", "ready broker")
	before("ready merchant", "start gateway")
	before("start gateway", "ready broker")
	// Never before a dependency is ready.
	before("ready registry", "start merchant")
	before("ready registry", "start product")
	before("ready broker", "start product")

	require.Len(t, timings, len(steps))
	for _, c := range timings {
		assert.LessOrEqual(t, c.Start, c.Running, c.Name)
		assert.LessOrEqual(t, c.Running, c.Ready, c.Name)
	}
	assert.Equal(t, []string{"registry", "broker"}, timings[3].Deps)
}

// TestStartGraphFailureStopsDependents: a dependency that fails its readiness fails the
// graph at once with its error; what depends on it never starts, and an unrelated
// component still waiting is cancelled instead of holding the graph until a deadline.
func TestStartGraphFailureStopsDependents(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	steps := []step{
		{name: "registry"},
		{name: "slow"},
		{name: "merchant", deps: []string{"registry"}},
	}
	boom := errors.New("registry exited: exit status 1")
	var log eventLog
	_, err := runGraph(ctx, steps, stepFuncs{
		start: func(context.Context, string) error { return nil },
		ready: func(ctx context.Context, name string) error {
			switch name {
			case "registry":
				return boom
			case "slow":
				<-ctx.Done() // never ready on its own
				return ctx.Err()
			}
			log.add("ready " + name)
			return nil
		},
	}, time.Now())
	require.ErrorIs(t, err, boom)
	assert.NoError(t, ctx.Err(), "the graph must end on the failure, not at the deadline")
	assert.Empty(t, log.events, "merchant must never start after its dependency failed")
}

// TestStartGraphRejectsBadGraphs: an unknown dependency, a duplicate and a cycle are
// errors before anything starts, never a hang.
func TestStartGraphRejectsBadGraphs(t *testing.T) {
	for _, tt := range []struct {
		name  string
		steps []step
		want  string
	}{
		{"unknown", []step{{name: "a", deps: []string{"b"}}}, "a depends on unknown b"},
		{"duplicate", []step{{name: "a"}, {name: "a"}}, "step a is listed twice"},
		{"cycle", []step{{name: "a", deps: []string{"c"}}, {name: "b", deps: []string{"a"}}, {name: "c", deps: []string{"b"}}}, "cycle a -> c -> b -> a"},
		{"self", []step{{name: "a", deps: []string{"a"}}}, "cycle a -> a"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			started := false
			_, err := runGraph(t.Context(), tt.steps, stepFuncs{
				start: func(context.Context, string) error { started = true; return nil },
				ready: func(context.Context, string) error { return nil },
			}, time.Now())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.False(t, started)
		})
	}
}

// TestStartGraphUpDependency: a step that needs its dependency only up starts once the
// dependency's up probe passes, before the dependency is ready (here the registry cannot
// be ready until the merchant started: waiting for readiness would never end); a
// dependency with no probe (an error) is waited for until ready.
func TestStartGraphUpDependency(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	steps := []step{
		{name: "registry"},
		{name: "broker"},
		{name: "merchant", up: []string{"registry"}},
		{name: "product", deps: []string{"broker"}, up: []string{"registry"}},
		{name: "gateway", up: []string{"broker"}},
	}
	merchantStarted, registryUp := make(chan struct{}), make(chan struct{})
	var log eventLog
	timings, err := runGraph(ctx, steps, stepFuncs{
		start: func(_ context.Context, name string) error {
			log.add("start " + name)
			if name == "merchant" {
				close(merchantStarted)
			}
			if name == "registry" {
				time.AfterFunc(20*time.Millisecond, func() { close(registryUp) })
			}
			return nil
		},
		ready: func(ctx context.Context, name string) error {
			if name == "registry" {
				select {
				case <-merchantStarted:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			log.add("ready " + name)
			return nil
		},
		up: func(ctx context.Context, name string) error {
			if name != "registry" {
				return errors.New("no probe")
			}
			select {
			case <-registryUp:
				log.add("up " + name)
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}, time.Now())
	require.NoError(t, err, "events: %v", log.events)
	before := func(a, b string) {
		t.Helper()
		ia, ib := log.index(a), log.index(b)
		require.NotEqual(t, -1, ia, a)
		require.NotEqual(t, -1, ib, b)
		assert.Less(t, ia, ib, "%q must come before %q; events %v", a, b, log.events)
	}
	before("up registry", "start merchant")
	before("start merchant", "ready registry")
	before("up registry", "start product")
	before("ready broker", "start product")
	before("ready broker", "start gateway") // no probe: up is ready
	require.Len(t, timings, len(steps))
	assert.Equal(t, []string{"registry"}, timings[2].Up)
	assert.Positive(t, timings[0].IsUp)
	assert.Less(t, timings[0].IsUp, timings[0].Ready)
	assert.Contains(t, Startup{Components: timings}.String(), "registry up")
}

// TestDockerStepsWaitForTheirDependenciesRunning: on containers a component waits for
// every dependency only up (its container running); locally for all of them ready.
func TestDockerStepsWaitForTheirDependenciesRunning(t *testing.T) {
	for _, tt := range []struct {
		containers bool
		kind       string
		deps, up   []string
	}{
		{false, "product", []string{"registry-1", "broker-1"}, nil},
		{true, "product", nil, []string{"registry-1", "broker-1"}},
		{true, "merchant", nil, []string{"registry-1"}},
		{true, "registry", nil, nil},
	} {
		sys := &System{containers: tt.containers}
		got := sys.step(&Component{Name: "x", Kind: tt.kind})
		assert.Equal(t, tt.deps, got.deps, "%s containers=%v", tt.kind, tt.containers)
		assert.Equal(t, tt.up, got.up, "%s containers=%v", tt.kind, tt.containers)
	}
}

// TestUpIsRunningOnContainers: a started container is up (up is asked once it runs); a
// local process has no up before ready.
func TestUpIsRunningOnContainers(t *testing.T) {
	for _, tt := range []struct {
		containers bool
		want       error
	}{
		{true, nil},
		{false, errNoUpProbe},
	} {
		sys := &System{containers: tt.containers}
		assert.ErrorIs(t, sys.up(t.Context(), "registry-1"), tt.want, "containers=%v", tt.containers)
	}
}

// TestBindFiles: each host file is mounted read-only at its container path by absolute
// path, an empty host path is skipped, and a missing file fails before the engine is asked.
func TestBindFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "a.json")
	require.NoError(t, os.WriteFile(cfg, []byte("{}"), 0o600))
	t.Chdir(dir)
	got, err := bindFiles(map[string]string{"/config/a.json": "a.json", "/config/design.yaml": ""})
	require.NoError(t, err)
	want := []runtime.Mount{{HostPath: cfg, Target: "/config/a.json", ReadOnly: true}}
	assert.Equal(t, want, got)
	_, err = bindFiles(map[string]string{"/secrets/jwt.key": filepath.Join(dir, "missing")})
	assert.ErrorContains(t, err, "bind /secrets/jwt.key")
}
