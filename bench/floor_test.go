package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/bench"
	"github.com/faultline-dev/faultline/runtime/docker"
)

// TestFloorString: the printed line names the count and both durations; Above is the
// distance and the ratio to the floor of all N.
func TestFloorString(t *testing.T) {
	f := bench.Floor{N: 9, One: 531 * time.Millisecond, All: 4400 * time.Millisecond}
	assert.Equal(t, "engine floor: 9 bare containers start in 4.4s (one alone in 530ms)", f.String())
	assert.Equal(t, "1.1s above the floor (1.25×)", f.Above(5500*time.Millisecond))
}

// TestEngineFloorRejectsBadInput: no container or no image fails before the engine is asked.
func TestEngineFloorRejectsBadInput(t *testing.T) {
	_, err := bench.EngineFloor(t.Context(), "faultline:x", 0)
	assert.ErrorContains(t, err, "0 containers")
	_, err = bench.EngineFloor(t.Context(), "", 2)
	assert.ErrorContains(t, err, "no image")
}

// TestDockerEngineFloor: on a real engine both starts are timed (each container starts in
// more than a millisecond) and nothing the measurement made is left.
func TestDockerEngineFloor(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		t.Skip("docker: no engine: " + err.Error())
	}
	image, err := docker.BuildImage(ctx)
	require.NoError(t, err)
	f, err := bench.EngineFloor(ctx, image, 3)
	t.Cleanup(func() {
		if f.RunID != "" {
			_, _ = docker.Clean(context.Background(), f.RunID)
		}
	})
	require.NoError(t, err)
	t.Log(f)
	assert.Equal(t, 3, f.N)
	assert.Greater(t, f.One, time.Millisecond)
	assert.Greater(t, f.All, time.Millisecond)
	require.NotEmpty(t, f.RunID)
	left, err := docker.Leftovers(ctx, f.RunID)
	require.NoError(t, err)
	assert.Empty(t, left.Containers)
	assert.Empty(t, left.Networks)
}
