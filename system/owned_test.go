package system_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/system"
)

// closeCounter is a runtime that counts its Close calls.
type closeCounter struct {
	runtime.Runtime
	closes atomic.Int32
}

func (c *closeCounter) Close(ctx context.Context) error {
	c.closes.Add(1)
	return c.Runtime.Close(ctx)
}

// A runtime made for the system alone is closed when the system ends, whichever way it
// ends; one the caller lends is never closed by the system.
func TestOwnedRuntimeClosedWithTheSystem(t *testing.T) {
	tests := []struct {
		name    string
		owned   bool
		discard bool
		want    int32
	}{
		{"owned, stopped", true, false, 1},
		{"owned, discarded", true, true, 1},
		{"lent, stopped", false, false, 0},
		{"lent, discarded", false, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &closeCounter{Runtime: local.New()}
			t.Cleanup(func() { _ = rt.Runtime.Close(context.Background()) })
			opts := []system.Option{system.WithLogger(testLogger(t))}
			if tt.owned {
				opts = append(opts, system.WithOwnedRuntime())
			}
			sys, err := system.Start(t.Context(), rt, testSpec(t, t.TempDir()), opts...)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tt.discard {
				require.NoError(t, sys.Discard(ctx))
			} else {
				require.NoError(t, sys.Stop(ctx))
			}
			if got := rt.closes.Load(); got != tt.want {
				t.Errorf("runtime closed %d times, want %d", got, tt.want)
			}
		})
	}
}

// A failed start leaves an owned runtime to the caller, who made it and closes it once.
func TestOwnedRuntimeLeftToTheCallerWhenStartFails(t *testing.T) {
	rt := &closeCounter{Runtime: local.New()}
	t.Cleanup(func() { _ = rt.Runtime.Close(context.Background()) })
	_, err := system.Start(t.Context(), rt, system.Spec{Dir: t.TempDir(), Command: "/bin/false"},
		system.WithOwnedRuntime(), system.WithReadyTimeout(10*time.Second))
	require.Error(t, err)
	assert.Zero(t, rt.closes.Load(), "runtime closed by a failed Start")
}

// Phases done before Start (an image lookup, a network) count into the start-up profile
// and the ready time.
func TestStartedAtCountsEarlierPhases(t *testing.T) {
	rt := local.New()
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	const earlier = 2 * time.Second
	began := time.Now().Add(-earlier)
	sys, err := system.Start(t.Context(), rt, testSpec(t, t.TempDir()), system.WithLogger(testLogger(t)),
		system.WithStartedAt(began, system.Phase{Name: "image", Took: earlier}))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, sys.Stop(ctx))
	})
	phases := sys.Startup().Phases
	require.NotEmpty(t, phases)
	assert.Equal(t, system.Phase{Name: "image", Took: earlier}, phases[0])
	assert.GreaterOrEqual(t, sys.ReadyDuration(), earlier, "ready time counts from the earlier start")
	assert.Equal(t, "plan", phases[len(phases)-1].Name)
}
