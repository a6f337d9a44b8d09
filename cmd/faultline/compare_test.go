package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// shortComparison is the cascading-failure comparison cut to 6 s of load per design.
const shortComparison = `name: short-comparison
description: a slow product service with and without circuit breakers, briefly
compare:
  - name: breaker-off
    design: designs/no-breaker.yaml
  - name: breaker-on
    design: designs/resilient.yaml
seed: 11
load:
  rate: 30/s
  duration: 6s
  max_workers: 128
  timeout: 4s
  clients: 5
  mix: {browse: 80, place_order: 20}
faults:
  - name: product-hangs
    type: latency
    at: 1500ms
    for: 3s
    target: gateway->product
    latency: 1500ms
expect:
  during:
    product-hangs:
      - check: fault_landed
      - name: breaker-opens
        check: breaker_opened
        caller: gateway
        dependency: product
        within: 2s
      - name: browse-stays-fast
        check: latency
        journey: browse
        percentile: p90
        max: 300ms
`

func TestCompareTwoDesigns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole system per design")
	}
	t.Parallel()
	bin := faultlineBinary(t)
	work := t.TempDir()
	file := filepath.Join(work, "short.yaml")
	require.NoError(t, os.WriteFile(file, []byte(shortComparison), 0o644))
	dir := filepath.Join(work, "cmp")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "compare", file, "--dir", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	out := stdout.String()

	page, err := os.ReadFile(filepath.Join(dir, compareHTMLFile))
	require.NoError(t, err, out)
	md, err := os.ReadFile(filepath.Join(dir, compareMarkdownFile))
	require.NoError(t, err)
	for _, doc := range []string{string(page), string(md), out} {
		assert.Contains(t, doc, "breaker-off")
		assert.Contains(t, doc, "breaker-on")
		assert.Contains(t, doc, "breaker-opens")
		assert.Contains(t, doc, "browse-stays-fast")
	}
	assert.Contains(t, string(page), `id="compare-latency"`, "latency per design on one chart")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Equal(t, "  comparison: "+filepath.Join(dir, compareHTMLFile), lines[len(lines)-1])

	// Each design's run is kept whole, with its own reports; without breakers none can open.
	for _, design := range []string{"breaker-off", "breaker-on"} {
		res, err := result.LoadFile(filepath.Join(dir, design, "1", "result.json"))
		require.NoError(t, err, design)
		assert.Equal(t, "short-comparison", res.Scenario)
		assert.Nil(t, res.ExpectedFailure)
		_, err = os.Stat(filepath.Join(dir, design, "1", "report.html"))
		assert.NoError(t, err, "%s has its own report", design)
	}
	off, err := result.LoadFile(filepath.Join(dir, "breaker-off", "1", "result.json"))
	require.NoError(t, err)
	assert.Equal(t, "no-breaker", off.Design)
	opened := false
	for _, c := range off.Checks {
		if c.Kind == "breaker_opened" {
			opened = opened || c.Passed
			assert.False(t, c.Passed, "no breaker to open: %s", c.Message)
		}
	}
	assert.False(t, opened)
	assert.Regexp(t, `\| breaker-opens \| [^|]+ \| [^|]*\(0/1 passed\) \|`, string(md), "breaker-off's column shows it not passing")
}

func TestCompareNeedsDesigns(t *testing.T) {
	base, err := filepath.Abs(filepath.Join("..", "..", "scenarios", "baseline.yaml"))
	require.NoError(t, err)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no compare list", []string{base}, "lists no designs"},
		{"pair that differs in load", []string{base, filepath.Join("..", "..", "scenarios", "dependency-latency.yaml")}, "only the design may differ"},
		{"repeat 0", []string{base, "--repeat", "0"}, "--repeat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, append([]string{"compare"}, tt.args...)...)
			require.Error(t, err)
			assert.Equal(t, result.ExitError, exitCode(err))
			assert.Contains(t, err.Error()+out, tt.want)
		})
	}
}
