package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// TestValidateTakesWhatSuiteTakes: suite accepted a directory and built-in names while
// validate refused them; both now expand their arguments with one function.
func TestValidateTakesWhatSuiteTakes(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join("..", "..", "scenarios", "baseline.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), good, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yml"), good, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a scenario"), 0o644))

	out, err := run(t, "validate", dir, "baseline")
	require.NoError(t, err, out)
	assert.Contains(t, out, filepath.Join(dir, "a.yaml")+": ok")
	assert.Contains(t, out, filepath.Join(dir, "b.yml")+": ok")
	assert.Contains(t, out, "baseline: ok")
	assert.NotContains(t, out, "notes.txt")

	files, err := scenarioArgs([]string{dir, "baseline"})
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yml"), "baseline"}, files, "suite runs exactly what validate checks")

	empty := t.TempDir()
	_, err = run(t, "validate", empty)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds no *.yaml scenario")
	assert.Equal(t, result.ExitError, exitCode(err))

	bad := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: x\n"), 0o644))
	out, err = run(t, "validate", dir)
	require.Error(t, err)
	assert.Contains(t, out, bad+":1:1: scenario: missing required field")
}

// TestSuiteRunDirsAreUnique: two files of one suite with the same scenario name ran into
// one directory, the second overwriting the first's records.
func TestSuiteRunDirsAreUnique(t *testing.T) {
	used := map[string]bool{}
	got := []string{uniqueName(used, "baseline"), uniqueName(used, "baseline"), uniqueName(used, "other"), uniqueName(used, "baseline")}
	assert.Equal(t, []string{"baseline", "baseline-2", "other", "baseline-3"}, got)
}

// TestValidateKnowsTheRuntime: a delete fault (only Kubernetes replaces a deleted pod) and
// a crash loop (the kubelet's back-off decides restarts there) passed validate and were
// refused only when a run started. Validate now refuses each where its runtime cannot
// carry it out: --runtime, else the scenario's system.runtime, else local.
func TestValidateKnowsTheRuntime(t *testing.T) {
	dir := t.TempDir()
	write := func(name, runtime, kind, extra string) string {
		t.Helper()
		sys := ""
		if runtime != "" {
			sys = "system:\n  runtime: " + runtime + "\n"
		}
		src := "name: " + name + "\ndescription: d\n" + sys + `load: {rate: 10/s, duration: 10s, mix: {browse: 1}}
faults:
  - name: f
    type: ` + kind + `
    at: 1s
    for: 2s
    target: product-1
` + extra
		p := filepath.Join(dir, name+".yaml")
		require.NoError(t, os.WriteFile(p, []byte(src), 0o644))
		return p
	}
	del := write("del", "", "delete", "")
	delDocker := write("del-docker", "docker", "delete", "")
	loop := write("loop", "", "crash_loop", "    interval: 1s\n    duration: 2s\n")
	cases := []struct {
		args    []string
		bad     []string // files with a problem, each named with its line
		reason  string
		goodOut []string
	}{
		{[]string{del}, []string{del + ":6:11:"}, `fault type "delete" is not available on local`, nil},
		{[]string{delDocker}, []string{delDocker + ":8:11:"}, `fault type "delete" is not available on docker`, nil},
		{[]string{del, "--runtime", "kubernetes"}, nil, "", []string{del + ": ok"}},
		{[]string{loop}, nil, "", []string{loop + ": ok"}},
		{[]string{loop, "--runtime", "kubernetes"}, []string{loop + ":6:11:"}, `fault type "crash_loop" is not available on kubernetes (hint: the kubelet restarts`, nil},
	}
	for _, tc := range cases {
		out, err := run(t, append([]string{"validate"}, tc.args...)...)
		for _, b := range tc.bad {
			require.Error(t, err, "%v: %s", tc.args, out)
			assert.Contains(t, out, b, "%v", tc.args)
			assert.Contains(t, out, tc.reason, "%v", tc.args)
		}
		for _, g := range tc.goodOut {
			require.NoError(t, err, "%v: %s", tc.args, out)
			assert.Contains(t, out, g)
		}
	}
	_, err := run(t, "validate", del, "--runtime", "nomad")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--runtime "nomad": want local, docker, kubernetes`)
}
