package reports

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

func st(runs int, vals ...float64) *figureStat {
	s := statOf(vals, "ms")
	s.Runs = runs
	return &s
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		name       string
		op         string
		stats      []*figureStat
		wantWinner int
		wantNoise  bool
	}{
		{"lower wins, clear", "<=", []*figureStat{st(3, 100, 110, 120), st(3, 300, 310, 320)}, 0, false},
		{"lower wins, overlapping spreads", "<=", []*figureStat{st(3, 100, 200, 300), st(3, 250, 260, 270)}, 0, true},
		{"higher wins", ">=", []*figureStat{st(2, 5, 6), st(2, 50, 60), st(2, 1, 2)}, 1, false},
		{"only one design measured", "<=", []*figureStat{st(2, 5, 6), nil}, -1, false},
		{"tie", "<=", []*figureStat{st(1, 5), st(1, 5)}, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := compareRow{Op: tc.op, Stats: tc.stats}
			judge(&row)
			assert.Equal(t, tc.wantWinner, row.Winner)
			assert.Equal(t, tc.wantNoise, row.Noise)
		})
	}
	t.Run("equality bound: more passes wins", func(t *testing.T) {
		row := compareRow{Op: "==", Stats: []*figureStat{{Runs: 3, Passed: 1}, {Runs: 3, Passed: 3}}}
		judge(&row)
		assert.Equal(t, 1, row.Winner)
	})
}

// designGroups builds two designs of two repeats; "no-breaker" is slower and fails more.
func designGroups(t *testing.T) []result.DesignRuns {
	t.Helper()
	dir := t.TempDir()
	var groups []result.DesignRuns
	for gi, design := range []string{"with-breaker", "no-breaker"} {
		g := result.DesignRuns{Design: design}
		for rep := range 2 {
			r := fixtureRun()
			r.Design = design
			p99 := []float64{800, 900}[rep]
			errRate := []float64{0.05, 0.07}[rep]
			if gi == 1 {
				p99, errRate = p99+1500, errRate+0.01
			}
			r.Checks[6].Figure = p99
			r.Checks[6].Passed = p99 <= 1000
			r.Checks[4].Figure = errRate
			path := filepath.Join(dir, design+string(rune('a'+rep))+".jsonl")
			s := fixtureSynth
			s.seed = uint64(10*gi + rep)
			s.slow = float64(10 + 60*gi)
			writeHistory(t, path, s)
			g.Runs = append(g.Runs, r)
			g.Histories = append(g.Histories, path)
		}
		groups = append(groups, g)
	}
	return groups
}

func TestCompareHTML(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Compare(context.Background(), &buf, designGroups(t)))
	page := buf.String()
	for _, bad := range []string{"http://", "https://", "<script", "<link"} {
		assert.NotContains(t, page, bad)
	}
	assert.Contains(t, page, "<th>with-breaker</th><th>no-breaker</th>")
	assert.Regexp(t, `(?s)<td>after/latency p99</td>.*?<td class="num win">850 ms \[800 ms – 900 ms\]`, page, "the winner's mean and spread")
	assert.Regexp(t, `(?s)<td>during:slow-product/error_rate browse</td>.*?<span class="win">with-breaker</span> <span class="noise">within noise</span>`, page,
		"5–7% against 6–8% overlaps")
	for _, id := range []string{"compare-latency", "compare-errors", "compare-throughput"} {
		svg := chartSVG(t, page, id)
		assert.Contains(t, svg, ">with-breaker", id)
		assert.Contains(t, svg, ">no-breaker", id)
		assert.Contains(t, svg, ">with-breaker: slow-product</text>", "%s shows each design's fault window", id)
		assert.Contains(t, svg, ">no-breaker: slow-product</text>", id)
		// One stroke colour per design: both designs are drawn.
		assert.Contains(t, svg, "stroke:#0072B2", id)
		assert.Contains(t, svg, "stroke:#D55E00", id)
	}
}

func TestCompareMarkdown(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, CompareMarkdown(&buf, designGroups(t)))
	got := buf.String()
	assert.Contains(t, got, "| check | bound | with-breaker | no-breaker | winner |")
	assert.Contains(t, got, "| after/latency p99 | <= 1000 ms | 850 ms [800 ms – 900 ms] (2/2 passed) | 2350 ms [2300 ms – 2400 ms] (0/2 passed) | with-breaker |")
	assert.Contains(t, got, "| with-breaker (within noise) |")
	assert.Contains(t, got, "| with-breaker | 2 | 2 failed |")
}

func TestCompareRejects(t *testing.T) {
	var buf bytes.Buffer
	for _, tc := range []struct {
		name   string
		groups []result.DesignRuns
		want   string
	}{
		{"no designs", nil, "no designs"},
		{"nil run", []result.DesignRuns{{Design: "a", Runs: []*result.Run{nil}}}, "a run 0 is nil"},
		{"missing history", []result.DesignRuns{{Design: "a", Runs: []*result.Run{fixtureRun()}, Histories: []string{"/nonexistent/h.jsonl"}}}, "open history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Compare(context.Background(), &buf, tc.groups)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestCompareWithoutHistories(t *testing.T) {
	groups := designGroups(t)
	for i := range groups {
		groups[i].Histories = nil
	}
	var buf bytes.Buffer
	require.NoError(t, Compare(context.Background(), &buf, groups))
	assert.False(t, strings.Contains(buf.String(), `<svg class="chart"`))
	assert.Contains(t, buf.String(), "No histories were given")
}

// A repeat whose moment never came (converge_within that never converged: figure -1) has no
// figure: it must neither pull the design's mean below every real figure nor win the row.
func TestCompareNeverObservedLoses(t *testing.T) {
	check := func(fig float64, never bool) result.Check {
		return result.Check{Name: "converged", Kind: "consistency", Op: "<=", Threshold: 5, Unit: "s",
			Figure: fig, Never: never, Passed: !never && fig <= 5}
	}
	run := func(c result.Check) *result.Run { return &result.Run{Scenario: "s", Checks: []result.Check{c}} }
	groups := []result.DesignRuns{
		{Design: "outbox", Runs: []*result.Run{run(check(1.9, false)), run(check(2.1, false))}},
		{Design: "no-outbox", Runs: []*result.Run{run(check(-1, true)), run(check(-1, true))}},
		{Design: "flaky", Runs: []*result.Run{run(check(0.5, false)), run(check(-1, true))}},
	}
	cmp, err := compare(groups)
	require.NoError(t, err)
	row := cmp.Rows[0]
	assert.Equal(t, 0, row.Winner, row.Why)
	assert.Equal(t, "never observed", statText(row.Stats[1]))
	assert.Equal(t, "0.5 s; never observed in 1 of 2", statText(row.Stats[2]))
	for _, tc := range []struct {
		name  string
		stats []*figureStat
		want  int
	}{
		{"all never vs a figure", []*figureStat{{Runs: 2, Never: 2}, {Runs: 2, N: 2, Mean: 9, Min: 8, Max: 10}}, 1},
		{"fewer nevers beat a better mean", []*figureStat{{Runs: 2, N: 1, Never: 1, Mean: 1, Min: 1, Max: 1}, {Runs: 2, N: 2, Mean: 9, Min: 8, Max: 10}}, 1},
		{"all never on both sides: tie", []*figureStat{{Runs: 1, Never: 1}, {Runs: 1, Never: 1}}, -1},
	} {
		r := compareRow{Op: "<=", Stats: tc.stats}
		judge(&r)
		assert.Equal(t, tc.want, r.Winner, tc.name)
	}
}
