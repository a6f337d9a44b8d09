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
