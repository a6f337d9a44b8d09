package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/console"
	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/undo"
)

// TestSIGKILLedDockerRunIsCleaned kills `faultline run --runtime docker` once its
// containers are up and shows that `faultline clean` removes every container, network,
// volume and image labelled with that run.
func TestSIGKILLedDockerRunIsCleaned(t *testing.T) {
	bin, undoDir := dockerRunSetup(t)
	env := append(os.Environ(), undo.DirEnv+"="+undoDir)
	runID := killDockerRun(t, bin, env, undoDir)

	before, err := docker.Leftovers(context.Background(), runID)
	require.NoError(t, err)
	require.NotEmpty(t, before.Containers, "a SIGKILLed harness leaves its containers")
	require.NotEmpty(t, before.Networks, "and its network")
	t.Logf("left by the killed run: %d containers, %d networks, %d volumes", len(before.Containers), len(before.Networks), len(before.Volumes))

	clean := exec.Command(bin, "clean")
	clean.Env = env
	cleaned, err := clean.CombinedOutput()
	require.NoError(t, err, "%s", cleaned)
	assert.Contains(t, string(cleaned), "healed run "+runID)

	after, err := docker.Leftovers(context.Background(), runID)
	require.NoError(t, err)
	assert.True(t, after.Empty(), "labelled with run %s and still there: %+v", runID, after)
	left, err := undo.Pending(undoDir)
	require.NoError(t, err)
	assert.Empty(t, left, "the record goes once everything is removed")
}

// dockerRunSetup skips without an engine (or with -short) and returns the faultline
// binary and an undo directory of the test's own.
func dockerRunSetup(t *testing.T) (bin, undoDir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the system as containers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		t.Skip("docker: no engine: " + err.Error())
	}
	return faultlineBinary(t), t.TempDir()
}

// killDockerRun starts `faultline run --runtime docker` and SIGKILLs it once its gateway
// container runs (by then the network, the Toxiproxy container, every component and the
// volumes exist); it returns the run id.
func killDockerRun(t *testing.T, bin string, env []string, undoDir string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, "run", filepath.Join("testdata", "killpoints.yaml"), "--runtime", "docker", "--dir", t.TempDir())
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var runID string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		require.True(t, time.Now().Before(deadline), "the run never started its gateway container:\n%s", &out)
		if paths, _ := undo.Pending(undoDir); len(paths) == 1 {
			if rec, err := undo.Read(paths[0]); err == nil && len(rec.Networks) > 0 {
				runID = rec.RunID
				rep, err := docker.Leftovers(context.Background(), runID)
				if err == nil && containsSuffix(rep.Containers, "-gateway-1") {
					break
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() { _, _ = docker.Clean(context.Background(), runID) })
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	return runID
}

// TestSIGKILLedDockerRunIsReapedWithoutACommand: nobody runs faultline after the kill; the
// run's reaper container removes the run once the harness's connection has been gone for
// its grace period.
func TestSIGKILLedDockerRunIsReapedWithoutACommand(t *testing.T) {
	bin, undoDir := dockerRunSetup(t)
	runID := killDockerRun(t, bin, append(os.Environ(), undo.DirEnv+"="+undoDir), undoDir)
	killed := time.Now()
	for {
		rep, err := docker.Leftovers(context.Background(), runID)
		require.NoError(t, err)
		if rep.Empty() {
			break
		}
		require.Less(t, time.Since(killed), docker.DefaultReaperGrace+30*time.Second, "still there: %+v", rep)
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("the reaper removed run %s %s after its harness was killed (grace %s)", runID, time.Since(killed).Round(100*time.Millisecond), docker.DefaultReaperGrace)
}

func containsSuffix(names []string, suffix string) bool {
	for _, n := range names {
		if len(n) >= len(suffix) && n[len(n)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}

// TestConsoleOnDocker: `faultline console --runtime docker` starts the reference system as
// containers through the same pipeline, takes a hand fault on gateway->product (a proxy
// in the run's Toxiproxy container), shows the registry's members, and Ctrl-C removes
// every container, network and volume of it.
func TestConsoleOnDocker(t *testing.T) {
	bin, undoDir := dockerRunSetup(t)
	env := append(os.Environ(), undo.DirEnv+"="+undoDir)
	cmd, rec, api := startConsoleOn(t, bin, env, "gateway->product", "--runtime", "docker")
	assert.Equal(t, "docker", rec.Runtime)
	require.Eventually(t, func() bool {
		_, body := api("GET", "/api/state", "")
		var st console.State
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		in := 0
		for _, i := range st.Instances {
			if i.Registry == "in" {
				in++
			}
		}
		return in >= 4
	}, 30*time.Second, 250*time.Millisecond, "gateway, order, product and merchant shown in the registry")

	// A paused container still runs by the process table; the page says what the engine
	// says of it: paused, then disconnected for one taken off the run's network.
	stateOf := func(name string) string {
		_, body := api("GET", "/api/state", "")
		var st console.State
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		for _, i := range st.Instances {
			if i.Name == name {
				return i.State
			}
		}
		return ""
	}
	for _, tt := range []struct{ kind, target, want string }{
		{"pause", "merchant-1", "paused"},
		{"disconnect", "product-1", "disconnected"},
	} {
		require.Equal(t, "running", strings.Fields(stateOf(tt.target))[0], "%s before the %s", tt.target, tt.kind)
		code, body := api("POST", "/api/faults", `{"kind":"`+tt.kind+`","params":{"target":"`+tt.target+`"}}`)
		require.Equal(t, http.StatusOK, code, "%s", body)
		require.Eventually(t, func() bool { return strings.HasPrefix(stateOf(tt.target), tt.want+" ("+tt.kind+")") },
			10*time.Second, 100*time.Millisecond, "%s shown %s", tt.target, tt.want)
		code, body = api("POST", "/api/heal-all", "")
		require.Equal(t, http.StatusOK, code, "%s", body)
		require.Eventually(t, func() bool { return stateOf(tt.target) == "running" }, 10*time.Second, 100*time.Millisecond, "%s shown running after the heal", tt.target)
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), "the console exits 0 on Ctrl-C")
	after, err := docker.Leftovers(context.Background(), rec.RunID)
	require.NoError(t, err)
	assert.True(t, after.Empty(), "labelled with run %s and still there: %+v", rec.RunID, after)
	left, err := undo.Pending(undoDir)
	require.NoError(t, err)
	assert.Empty(t, left, "the undo record is gone")
}
