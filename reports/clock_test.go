package reports

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

// offsetRun is a run whose load started 1.45 s into the harness's clock (the system took
// that long to come up), with a fault at 6s for 2s as the scenario wrote it: the result
// and history record 7.45 s and 9.45 s, and a reader must see 6s and 8s.
func offsetRun(t *testing.T, offset, at time.Duration) (*result.Run, string) {
	t.Helper()
	r := fixtureRun()
	r.LoadStart = result.Duration(offset)
	r.Duration = result.Duration(offset + 12*time.Second)
	r.Phases = []result.Phase{
		{Name: "before", Start: result.Duration(offset), End: result.Duration(offset + at)},
		{Name: "during:slow-product", Start: result.Duration(offset + at), End: result.Duration(offset + at + 2*time.Second)},
		{Name: "after", Start: result.Duration(offset + at + 2*time.Second), End: result.Duration(offset + 10*time.Second)},
		{Name: "overall", Start: result.Duration(offset), End: result.Duration(offset + 10*time.Second)},
	}
	f := &r.Faults[0]
	f.At, f.For = result.Duration(6*time.Second), result.Duration(2*time.Second)
	f.Injected, f.Healed = result.Duration(offset+at), result.Duration(offset+at+2*time.Second)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("history-%s.jsonl", offset))
	s := fixtureSynth
	s.duration, s.faultAt, s.faultFor, s.offset, s.requests = 10*time.Second, at, 2*time.Second, offset, 400
	writeHistory(t, path, s)
	return r, path
}

// firstSlowBucket is the first bucket whose p99 is above 200 ms: where the spike starts.
func firstSlowBucket(tl *timeline) int {
	for _, l := range tl.Latency {
		if l.Name != "p99" {
			continue
		}
		for i, v := range l.Y {
			if v > 200 {
				return i
			}
		}
	}
	return -1
}

func TestReportTimesCountFromLoadStart(t *testing.T) {
	run, hist := offsetRun(t, 1450*time.Millisecond, 6*time.Second)

	agg := newAggregator(time.Second)
	require.NoError(t, agg.addFile(context.Background(), hist, loadStartOf(run)))
	tl := agg.finish(run, 1)
	require.Len(t, tl.Faults, 1)
	assert.Equal(t, 6*time.Second, tl.Faults[0].Start, "the window starts where the scenario's at: puts it")
	assert.Equal(t, 8*time.Second, tl.Faults[0].End)
	assert.Equal(t, 6, firstSlowBucket(tl), "the latency spike starts in the fault's first second")
	assert.Equal(t, 40.0, tl.AllRate.Y[0], "the load's first second is bucket 0")
	assert.Equal(t, 12*time.Second, tl.End, "the time axis ends with the run, counted from load start")

	var md bytes.Buffer
	require.NoError(t, Markdown(&md, run))
	assert.Contains(t, md.String(), "| 6s – 8s |", "the fault window in the summary")
	assert.NotContains(t, md.String(), "7.45s")

	page := htmlOf(t, run, hist)
	assert.Contains(t, page, `<td class="num">6s</td><td class="num">8s</td>`, "injected and healed in the fault table")
	assert.NotContains(t, page, "7.45s")
	assert.Contains(t, chartSVG(t, page, "latency"), "seconds since load start")
}

// Each run's fault window is shaded on the comparison where that run had it, in its
// design's colour: designs whose harness clocks differ, and whose faults landed at
// different moments, are not drawn against the first design's window.
func TestCompareShadesEachRunsOwnWindows(t *testing.T) {
	a, ha := offsetRun(t, 1450*time.Millisecond, 6*time.Second)
	b, hb := offsetRun(t, 2900*time.Millisecond, 6500*time.Millisecond)
	a.Design, b.Design = "with-breaker", "no-breaker"
	groups := []result.DesignRuns{
		{Design: "with-breaker", Runs: []*result.Run{a}, Histories: []string{ha}},
		{Design: "no-breaker", Runs: []*result.Run{b}, Histories: []string{hb}},
	}
	got := compareWindows(groups)
	require.Len(t, got, 2)
	assert.Equal(t, faultWindow{Name: "with-breaker: slow-product", Start: 6 * time.Second, End: 8 * time.Second,
		Targets: []string{"gateway", "product"}, Color: 1}, got[0])
	assert.Equal(t, faultWindow{Name: "no-breaker: slow-product", Start: 6500 * time.Millisecond, End: 8500 * time.Millisecond,
		Targets: []string{"gateway", "product"}, Color: 2}, got[1])

	var buf bytes.Buffer
	require.NoError(t, Compare(context.Background(), &buf, groups))
	svg := chartSVG(t, buf.String(), "compare-latency")
	assert.Contains(t, svg, ">with-breaker: slow-product</text>")
	assert.Contains(t, svg, ">no-breaker: slow-product</text>")
	assert.Contains(t, svg, "seconds since load start")

	// Each design's spike starts in its own fault's first second, on one axis.
	for i, g := range groups {
		agg := newAggregator(time.Second)
		require.NoError(t, agg.addFile(context.Background(), g.Histories[0], loadStartOf(g.Runs[0])))
		assert.Equal(t, int(got[i].Start/time.Second), firstSlowBucket(agg.finish(g.Runs[0], 1)), g.Design)
	}
	assert.False(t, strings.Contains(buf.String(), "8.45s"))
}
