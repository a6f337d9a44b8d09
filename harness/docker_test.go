package harness_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime/docker"
)

// requireDocker skips with one line when no engine answers.
func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		t.Skip("docker: no engine: " + err.Error())
	}
}

// TestDockerRunMeasuresContainerFaults runs a scenario on the Docker runtime that kills one
// container, pauses another and disconnects a third, and shows each fault's measured
// effect; afterwards nothing labelled with the run is left.
func TestDockerRunMeasuresContainerFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the system as containers")
	}
	requireDocker(t)
	sc := loadTestdata(t, "docker-faults.yaml")
	res, dir := runScenario(t, sc)
	require.Equal(t, "docker", res.Runtime)
	assert.Equal(t, result.Passed, res.Verdict, "reason: %s", res.Reason)

	want := map[string]string{ // fault -> how its effect shows
		"kill-order-2":          "running=false",
		"pause-product-2":       "healthy=false",
		"disconnect-merchant-2": "healthy=false",
	}
	require.Len(t, res.Faults, len(want))
	for _, f := range res.Faults {
		require.NotNil(t, f.Effect, "fault %s has a measured effect", f.Name)
		t.Logf("%s: landed=%t measured %g/%g %s (%s)", f.Name, f.Effect.Landed, f.Effect.Measured, f.Effect.Configured, f.Effect.Unit, f.Effect.Detail)
		assert.True(t, f.Effect.Landed, "fault %s landed", f.Name)
		assert.Equal(t, 1.0, f.Effect.Measured, "fault %s hit one container", f.Name)
		assert.Contains(t, f.Effect.Detail, want[f.Name], "fault %s observed the right way", f.Name)
	}

	// The run's undo record named its docker run id; nothing carrying it is left.
	runID := undoRunIDOf(t, dir)
	rep, err := docker.Leftovers(context.Background(), runID)
	require.NoError(t, err)
	assert.True(t, rep.Empty(), "left behind: %+v", rep)
}

// undoRunIDOf reads, from the stored result, the run id a run labelled its resources with.
func undoRunIDOf(t *testing.T, dir string) string {
	t.Helper()
	res, err := result.LoadFile(filepath.Join(dir, harness.ResultFile))
	require.NoError(t, err)
	require.NotEmpty(t, res.RunID, "a docker run records its run id")
	require.False(t, strings.ContainsAny(res.RunID, "/ "), res.RunID)
	return res.RunID
}
