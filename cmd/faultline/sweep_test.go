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

// shortCascade is scenarios/compare/cascading-failure.yaml with its load cut from 8 s to
// 4 s and its fault window from 2 s–6 s to 1 s–3 s, so the sweep's 8 runs fit CI.
func shortCascade(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "scenarios", "compare", "cascading-failure.yaml"))
	require.NoError(t, err)
	s := string(b)
	for old, repl := range map[string]string{"duration: 8s": "duration: 4s", "at: 2s": "at: 1s", "for: 4s": "for: 2s"} {
		require.Equal(t, 1, strings.Count(s, old), "the scenario changed: %q", old)
		s = strings.Replace(s, old, repl, 1)
	}
	file := filepath.Join(t.TempDir(), "cascading-failure.yaml")
	require.NoError(t, os.WriteFile(file, []byte(s), 0o644))
	return file
}

func TestCompareSweepDrawsEveryDesignWithItsKnee(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole system per design, rate and mode")
	}
	t.Parallel()
	bin := faultlineBinary(t)
	dir := filepath.Join(t.TempDir(), "sweep")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "compare", shortCascade(t), "--rates", "20,40", "--dir", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)

	sw, err := result.ReadSweepFile(filepath.Join(dir, sweepJSONFile))
	require.NoError(t, err)
	assert.Equal(t, []float64{20, 40}, sw.Rates)
	assert.Equal(t, 1000.0, sw.WindowStartMS)
	assert.Equal(t, 3000.0, sw.WindowEndMS)
	assert.Equal(t, "check steady_state error_rate", sw.Bounds.ErrorRateSource, "the scenario's own bound is used")
	assert.Equal(t, "default (--knee-p99)", sw.Bounds.P99Source, "the scenario has no p99 check over the whole load")

	var designs []string
	for _, d := range sw.Designs {
		designs = append(designs, d.Design)
		require.Len(t, d.Curves, 2, "%s: one curve with the faults, one without", d.Design)
		for _, c := range d.Curves {
			require.Len(t, c.Points, 2, "%s faults=%v", d.Design, c.Faults)
			assert.NotEmpty(t, c.Knee.Why, "%s faults=%v: the knee (or its absence) is reported", d.Design, c.Faults)
			for _, p := range c.Points {
				assert.Positive(t, p.Requests, "%s faults=%v at %g/s", d.Design, c.Faults, p.Rate)
				assert.GreaterOrEqual(t, p.P99MS, p.P50MS)
				if p.Invalid {
					assert.NotEmpty(t, p.Reason)
				}
			}
			if d.Design == "breaker-off" && c.Faults {
				// Without a breaker every browse waits out the 1 s timeout while product
				// hangs: p99 is beyond the 500 ms bound at any rate, so the knee is the
				// lowest valid rate.
				for _, p := range c.Points {
					if !p.Invalid {
						assert.True(t, c.Knee.Found, "knee: %+v", c.Knee)
						assert.Equal(t, p.Rate, c.Knee.Rate, "knee: %+v", c.Knee)
						assert.Contains(t, c.Knee.Why, "p99")
						break
					}
				}
			}
		}
	}
	assert.Equal(t, []string{"breaker-off", "breaker-on"}, designs)

	chart, err := os.ReadFile(filepath.Join(dir, sweepChartFile))
	require.NoError(t, err)
	for _, want := range []string{"breaker-off with faults", "breaker-off without faults", "breaker-on with faults", "breaker-on without faults"} {
		assert.Contains(t, string(chart), want, "both designs' curves are on the one chart")
	}
	md, err := os.ReadFile(filepath.Join(dir, compareMarkdownFile))
	require.NoError(t, err)
	out := stdout.String()
	for _, doc := range []string{string(md), out} {
		assert.Contains(t, doc, "| design | knee with faults | knee without faults |")
		assert.Contains(t, doc, "| breaker-off |")
		assert.Contains(t, doc, "| breaker-on |")
	}
	assert.Contains(t, out, "chart:   "+filepath.Join(dir, sweepChartFile))
}

func TestCompareSweepUsage(t *testing.T) {
	file := filepath.Join("..", "..", "scenarios", "compare", "cascading-failure.yaml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "rates descending", args: []string{file, "--rates", "100,50"}, want: "ascending"},
		{name: "a knee flag without a sweep", args: []string{file, "--knee-p99", "1s"}, want: "--knee-p99 belongs to a load sweep"},
		{name: "a sweep with repeats", args: []string{file, "--rates", "50", "--repeat", "2"}, want: "--repeat and a sweep"},
		{name: "an error bound that is no share", args: []string{file, "--rates", "50", "--knee-errors", "150%"}, want: "not a share"},
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
