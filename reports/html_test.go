package reports

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/result"
)

func htmlOf(t *testing.T, run *result.Run, historyPath string) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, HTML(context.Background(), &buf, run, historyPath))
	return buf.String()
}

// chartSVG returns the inline SVG element of the chart with the given id.
func chartSVG(t *testing.T, page, id string) string {
	t.Helper()
	start := strings.Index(page, `<svg class="chart" id="`+id+`"`)
	require.GreaterOrEqual(t, start, 0, "chart %s is on the page", id)
	end := strings.Index(page[start:], "</svg>")
	require.Greater(t, end, 0)
	return page[start : start+end]
}

var shadedPath = regexp.MustCompile(`<path d="M[^"]*Z"\s*style="fill:#[0-9A-Fa-f]{6};fill-opacity:0\.1[0-9]*"`)

func TestHTMLSelfContained(t *testing.T) {
	page := htmlOf(t, fixtureRun(), fixtureHistory(t))
	for _, bad := range []string{"http://", "https://", "<script", "<link", "src=", "@import", "@font-face"} {
		assert.NotContains(t, page, bad, "the page must open offline")
	}
	assert.True(t, strings.HasPrefix(page, "<!DOCTYPE html>"))
	assert.NotContains(t, page, "<?xml", "chart prologs are stripped before inlining")
}

func TestHTMLCharts(t *testing.T) {
	page := htmlOf(t, fixtureRun(), fixtureHistory(t))
	ids := []string{"latency", "throughput", "errors", "fallbacks", "breakers", "convergence"}
	assert.Equal(t, len(ids), strings.Count(page, `<svg class="chart"`), "one svg per chart")
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			svg := chartSVG(t, page, id)
			assert.GreaterOrEqual(t, strings.Count(svg, "<path"), 5, "the chart has plotted paths")
			assert.Regexp(t, shadedPath, svg, "the fault window is shaded")
			assert.Contains(t, svg, ">slow-product</text>", "the fault window is labelled")
		})
	}
	assert.Contains(t, chartSVG(t, page, "convergence"), ">drained at 7.5s</text>", "the moment the series drained is marked")
	assert.Contains(t, chartSVG(t, page, "breakers"), ">half-open</text>")
	assert.Contains(t, chartSVG(t, page, "breakers"), "gateway → product")
	for _, j := range []string{"browse", "place_order", "view_order"} {
		assert.Contains(t, chartSVG(t, page, "throughput"), ">"+j+"</text>", "legend names journey %s", j)
	}
}

func TestHTMLContent(t *testing.T) {
	run := fixtureRun()
	page := htmlOf(t, run, fixtureHistory(t))
	assert.Contains(t, page, `<span class="verdict failed" id="verdict">FAILED</span>`)
	for _, c := range run.Checks {
		assert.Contains(t, page, "<td>"+strings.ReplaceAll(c.Name, ">", "&gt;")+"</td>", "check %s is listed", c.Name)
	}
	assert.Contains(t, page, `<td class="num">12.5%</td><td class="num">&lt;= 10%</td>`, "figure and bound of the failed check")
	assert.Contains(t, page, "It teaches the circuit breaker and the fallback &lt;b&gt;not bold&lt;/b&gt;.", "the description is shown, escaped")
	assert.Contains(t, page, `<line class="link faulted"`, "the faulted link is marked on the topology")
	assert.Regexp(t, `class="fault-label"[^>]*>slow-product</text>`, page)
	assert.Equal(t, 2, strings.Count(page, `class="link faulted"`), "gateway reaches both product instances through the faulted link")
}

func TestHTMLProcessFaultMarksComponent(t *testing.T) {
	run := fixtureRun()
	run.Faults = []result.Fault{{Name: "crash-p2", Type: "crash", Targets: []string{"product-2"}, Injected: d("2s"), Healed: d("4s")}}
	page := htmlOf(t, run, fixtureHistory(t))
	assert.Regexp(t, `<rect[^>]*stroke="#c0392b"[^>]*/><text[^>]*>product-2</text>`, page)
	assert.Contains(t, chartSVG(t, page, "latency"), ">crash-p2</text>")
}

func TestHTMLWithoutHistory(t *testing.T) {
	run := fixtureRun()
	run.History = ""
	page := htmlOf(t, run, "")
	assert.NotContains(t, page, `<svg class="chart"`)
	assert.Contains(t, page, "names no history file")
	assert.Contains(t, page, `id="topology"`, "the topology needs no history")
}

func TestHTMLErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	big := filepath.Join(t.TempDir(), "big.jsonl")
	writeHistory(t, big, synth{requests: 3 * ctxEvery, duration: 30e9, faultAt: 10e9, faultFor: 5e9, seed: 3, slow: 5})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		run  *result.Run
		path string
		want string
	}{
		{"missing history", context.Background(), fixtureRun(), filepath.Join(t.TempDir(), "nope.jsonl"), "open history"},
		{"nil run", context.Background(), nil, "", "run is nil"},
		{"cancelled", ctx, fixtureRun(), big, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := HTML(tc.ctx, &buf, tc.run, tc.path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			if tc.name == "cancelled" {
				assert.True(t, errors.Is(err, context.Canceled))
			}
		})
	}
}

func TestHTMLToleratesTruncatedHistory(t *testing.T) {
	path := fixtureHistory(t)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"t":9000000000,"kind":"request","request":{"jour`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	page := htmlOf(t, fixtureRun(), path)
	assert.Contains(t, page, "1 history lines could not be read")
	assert.Contains(t, page, `<svg class="chart" id="latency"`)
}
