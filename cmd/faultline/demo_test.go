package main

import (
	"bytes"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/internal/browsertest"
)

// TestDemoEndsWithARenderedReport runs what `make demo` runs and opens the page it names
// in headless Chromium: the page must load offline and draw its charts.
func TestDemoEndsWithARenderedReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole system")
	}
	if browsertest.Path() == "" {
		t.Skip("chromium not installed (Debian package chromium); skipping the demo screenshot test")
	}
	t.Parallel()
	bin := faultlineBinary(t)
	work := t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "demo", "--dir", filepath.Join(work, "demo"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "stdout:\n%s\nstderr:\n%s", &stdout, &stderr)

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	page, ok := strings.CutPrefix(last, "open the report: ")
	require.True(t, ok, "the demo ends with the report's path, got %q", last)
	require.True(t, filepath.IsAbs(page) && strings.HasSuffix(page, "/report.html"), page)
	_, err := os.Stat(page)
	require.NoError(t, err)
	assert.Contains(t, stdout.String(), "dependency-latency: ", "the verdict is printed")

	// The DOM Chromium built holds every chart with drawn lines in it.
	b := browsertest.New(t, "demo screenshot", 1280, 3000)
	b.Open("file://" + page)
	dom := b.DOM()
	for _, id := range []string{"latency", "throughput", "errors", "breakers"} {
		svg := regexp.MustCompile(`(?s)<svg class="chart" id="` + id + `".*?</svg>`).FindString(dom)
		require.NotEmpty(t, svg, "chart %s is on the page", id)
		assert.GreaterOrEqual(t, strings.Count(svg, "<path"), 5, "chart %s has lines drawn", id)
		points := regexp.MustCompile(`<path[^>]* d="M[^"]*L[^"]*L[^"]*"`).FindAllString(svg, -1)
		assert.NotEmpty(t, points, "chart %s has a polyline of several points", id)
	}

	// The screenshot is not a blank page: many colours, a good share of it drawn.
	img := b.Screenshot()
	assert.Equal(t, image.Rect(0, 0, 1280, 3000), img.Bounds())
	colours, drawn := browsertest.Drawn(img)
	assert.Greater(t, colours, 50, "a page with charts has many colours")
	assert.Greater(t, drawn, 0.02, "more than 2%% of the page is drawn")
}
