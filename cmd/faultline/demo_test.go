package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDemoEndsWithARenderedReport runs what `make demo` runs and opens the page it names
// in headless Chromium: the page must load offline and draw its charts.
func TestDemoEndsWithARenderedReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole system")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
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
	_, err = os.Stat(page)
	require.NoError(t, err)
	assert.Contains(t, stdout.String(), "dependency-latency: ", "the verdict is printed")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	browse := func(args ...string) []byte {
		c := exec.CommandContext(ctx, chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu",
			"--user-data-dir=" + filepath.Join(work, "profile"), "--window-size=1280,3000"}, append(args, "file://"+page)...)...)
		c.Env = append(os.Environ(), "HOME="+work)
		var out, errs bytes.Buffer
		c.Stdout, c.Stderr = &out, &errs
		require.NoError(t, c.Run(), "chromium: %s", &errs)
		return out.Bytes()
	}

	// The DOM Chromium built holds every chart with drawn lines in it.
	dom := string(browse("--dump-dom"))
	for _, id := range []string{"latency", "throughput", "errors", "breakers"} {
		svg := regexp.MustCompile(`(?s)<svg class="chart" id="` + id + `".*?</svg>`).FindString(dom)
		require.NotEmpty(t, svg, "chart %s is on the page", id)
		assert.GreaterOrEqual(t, strings.Count(svg, "<path"), 5, "chart %s has lines drawn", id)
		points := regexp.MustCompile(`<path[^>]* d="M[^"]*L[^"]*L[^"]*"`).FindAllString(svg, -1)
		assert.NotEmpty(t, points, "chart %s has a polyline of several points", id)
	}

	// The screenshot is not a blank page: many colours, a good share of it drawn.
	shot := filepath.Join(work, "shot.png")
	browse("--screenshot=" + shot)
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	assert.Equal(t, image.Rect(0, 0, 1280, 3000), b)
	colours := map[uint32]bool{}
	nonWhite, total := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
			total++
		}
	}
	assert.Greater(t, len(colours), 50, "a page with charts has many colours")
	assert.Greater(t, nonWhite, total/50, "more than 2%% of the page is drawn")
}
