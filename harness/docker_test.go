package harness_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
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

// TestCustomTopologyOnDocker runs a user's topology as containers: the test's own HTTP
// server, built static, becomes an image FROM scratch (build: binaries), and the link
// fault on web->api lands in the Toxiproxy container exactly as it does locally.
func TestCustomTopologyOnDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containers")
	}
	requireDocker(t)
	sc := dockerTopology(t, "link-latency.yaml")
	res, runDir := runScenario(t, sc, harness.WithRuntime("docker"))
	require.Equal(t, "docker", res.Runtime)
	assert.Equal(t, result.Passed, res.Verdict, res.Reason)
	require.Len(t, res.Faults, 1)
	eff := res.Faults[0].Effect
	require.NotNil(t, eff)
	t.Logf("web->api latency in the toxiproxy container: landed=%t measured %.1f ms", eff.Landed, eff.Measured)
	assert.True(t, eff.Landed, "%+v", eff)
	assert.InDelta(t, 300, eff.Measured, 150)
	byName := map[string]result.Check{}
	for _, c := range res.Checks {
		byName[c.Name] = c
	}
	assert.True(t, byName["web-counted"].Passed, "metric scraped from the container's published port: %+v", byName["web-counted"])
	assert.False(t, byName["slowed"].Passed, "calls through web->api were slowed by the fault")

	rep, err := docker.Leftovers(context.Background(), undoRunIDOf(t, runDir))
	require.NoError(t, err)
	assert.True(t, rep.Empty(), "left behind: %+v", rep)
}

// TestTopologyWithoutImagesIsRefusedOnDocker: a component that only has a command cannot
// run as a container; the run says which, before anything starts.
func TestTopologyWithoutImagesIsRefusedOnDocker(t *testing.T) {
	sc := loadTestdata(t, "custom/link-latency.yaml")
	res, err := harness.Run(t.Context(), sc, harness.WithSystemFor(systems.For), harness.WithRuntime("docker"), harness.WithDir(t.TempDir()))
	require.Error(t, err)
	assert.Equal(t, result.Error, res.Verdict)
	assert.Contains(t, res.Reason, "run topology on docker: api has no image or build; web has no image or build")
}

// dockerTopology loads a custom testdata scenario whose components run the test's HTTP
// server, built static and packed into an image FROM scratch (build: binaries).
func dockerTopology(t *testing.T, name string) *scenarios.Scenario {
	t.Helper()
	dir := t.TempDir()
	httpd := filepath.Join(dir, "httpd")
	cmd := exec.Command("go", "build", "-o", httpd, "./testdata/custom/httpd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build httpd: %s", out)
	src, err := os.ReadFile(filepath.Join("testdata", "custom", name))
	require.NoError(t, err)
	text := strings.ReplaceAll(string(src), "command: httpd", "command: "+httpd+"\n      build: {binaries: ["+httpd+"]}")
	file := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(file, []byte(text), 0o644))
	sc, err := scenarios.Load(file)
	require.NoError(t, err)
	return sc
}

// TestCustomContainersWithoutHTTPChecksShowPauseAndDisconnect: a TCP port answers even
// for a frozen or disconnected container (the port forwarder accepts), so those faults
// are observed through the engine; both land.
func TestCustomContainersWithoutHTTPChecksShowPauseAndDisconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containers")
	}
	requireDocker(t)
	res, runDir := runScenario(t, dockerTopology(t, "docker-process.yaml"), harness.WithRuntime("docker"))
	assert.Equal(t, result.Passed, res.Verdict, res.Reason)
	require.Len(t, res.Faults, 2)
	for _, f := range res.Faults {
		require.NotNil(t, f.Effect, f.Name)
		t.Logf("%s: landed=%t (%s)", f.Name, f.Effect.Landed, f.Effect.Detail)
		assert.True(t, f.Effect.Landed, "%s: %+v", f.Name, f.Effect)
	}
	rep, err := docker.Leftovers(context.Background(), undoRunIDOf(t, runDir))
	require.NoError(t, err)
	assert.True(t, rep.Empty(), "left behind: %+v", rep)
}
