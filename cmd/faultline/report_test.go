package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
)

// storedRun writes what CI archives after a run, result.json and history.jsonl, into dir.
// The result names a run directory that no longer exists, as it would on another machine.
func storedRun(t *testing.T, dir string, withHistory bool) string {
	t.Helper()
	res := &result.Run{
		Version: result.Version, Scenario: "dependency-latency", Runtime: "local", Seed: 2,
		StartedAt: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC), Duration: result.Duration(6 * time.Second),
		RunDir: "/nonexistent/ci-runner/run-17", History: "history.jsonl",
		Verdict: result.Failed, Reason: "during:slow-product/error_rate browse: 12.5% > 10%",
		Faults: []result.Fault{{Name: "slow-product", Type: "latency", Targets: []string{"gateway", "product"},
			At: result.Duration(2 * time.Second), For: result.Duration(2 * time.Second),
			Injected: result.Duration(2 * time.Second), Healed: result.Duration(4 * time.Second),
			Effect: &result.Effect{Configured: 1.5, Measured: 1.5, Unit: "s", Landed: true}}},
		Checks: []result.Check{
			{Name: "during:slow-product/fault_landed", Kind: "fault_landed", Phase: "during:slow-product", Passed: true, Figure: 1.5, Op: ">=", Threshold: 1.2, Unit: "s", Message: "landed"},
			{Name: "during:slow-product/error_rate browse", Kind: "error_rate", Phase: "during:slow-product", Figure: 0.125, Op: "<=", Threshold: 0.1, Unit: "ratio", Message: "12.5% of browse requests failed"},
		},
		Load: result.Load{PlannedRate: 20, AchievedRate: 20, Requests: 120, Errors: 5},
	}
	path := filepath.Join(dir, "result.json")
	require.NoError(t, res.Save(path))
	if !withHistory {
		return path
	}
	w, err := history.Create(filepath.Join(dir, "history.jsonl"), time.Now())
	require.NoError(t, err)
	for i := range 120 {
		start := time.Duration(i) * 50 * time.Millisecond
		lat := 5 * time.Millisecond
		if start >= 2*time.Second && start < 4*time.Second {
			lat = 900 * time.Millisecond
		}
		require.NoError(t, w.Write(history.Event{T: start + lat, Kind: history.KindRequest, Request: &loadgen.Result{
			Seq: uint64(i), Journey: reference.JourneyBrowse, Method: "GET", Path: "/products", Planned: start, Start: start,
			Latency: lat, Status: 200, OK: true}}))
		if i%5 == 0 {
			state := 0.0
			if start >= 2500*time.Millisecond && start < 4500*time.Millisecond {
				state = 2
			}
			ev := history.MetricEvent(history.Metric{Component: "gateway-1", Name: "faultline_breaker_state",
				Labels: map[string]string{"caller": "gateway", "dependency": "product"}, Value: state})
			ev.T = max(start, 1)
			require.NoError(t, w.Write(ev))
		}
	}
	require.NoError(t, w.Close())
	return path
}

func TestReportRerendersStoredResult(t *testing.T) {
	tests := []struct {
		name        string
		withHistory bool
		out         bool // --out elsewhere instead of next to result.json
		dirArg      bool // give the directory instead of result.json
		wantCharts  bool
	}{
		{"next to the result, with its history", true, false, false, true},
		{"run directory as the argument", true, false, true, true},
		{"into another directory", true, true, false, true},
		{"history lost: page without charts", false, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := t.TempDir()
			resultPath := storedRun(t, archive, tt.withHistory)
			args := []string{"report", resultPath}
			if tt.dirArg {
				args[1] = archive
			}
			outDir := archive
			if tt.out {
				outDir = filepath.Join(t.TempDir(), "public")
				args = append(args, "--out", outDir)
			}
			out, err := run(t, args...)
			require.NoError(t, err, out)

			page, err := os.ReadFile(filepath.Join(outDir, reports.HTMLFile))
			require.NoError(t, err, out)
			assert.Contains(t, string(page), "dependency-latency")
			assert.Equal(t, tt.wantCharts, strings.Contains(string(page), `<svg class="chart" id="latency"`), "latency chart drawn from the history")
			assert.Equal(t, tt.wantCharts, strings.Contains(string(page), `<svg class="chart" id="breakers"`), "breaker chart drawn from the history")
			if !tt.withHistory {
				assert.Contains(t, out, "not found", "the missing history is reported")
			}

			md, err := os.ReadFile(filepath.Join(outDir, reports.MarkdownFile))
			require.NoError(t, err)
			assert.Contains(t, string(md), "error_rate browse")
			junit, err := os.ReadFile(filepath.Join(outDir, reports.JUnitFile))
			require.NoError(t, err)
			var suites struct {
				Failures int `xml:"failures,attr"`
			}
			require.NoError(t, xml.Unmarshal(junit, &suites))
			assert.Positive(t, suites.Failures, "the failed check is a JUnit failure")

			lines := strings.Split(strings.TrimSpace(out), "\n")
			assert.Equal(t, "  report:  "+filepath.Join(outDir, reports.HTMLFile), lines[len(lines)-1], "the HTML path is the last line")
		})
	}
}

func TestReportRefusesWhatIsNotAResult(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "result.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"scenario": 7}`), 0o644))
	for _, arg := range []string{bad, filepath.Join(dir, "missing.json"), t.TempDir()} {
		out, err := run(t, "report", arg)
		require.Error(t, err, fmt.Sprintf("report %s: %s", arg, out))
		assert.Equal(t, result.ExitError, exitCode(err))
		_, statErr := os.Stat(filepath.Join(filepath.Dir(arg), reports.HTMLFile))
		assert.True(t, os.IsNotExist(statErr), "no report for a bad result")
	}
}
