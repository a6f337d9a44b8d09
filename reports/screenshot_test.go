package reports

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTMLScreenshot renders the page in a real browser, offline, and checks that
// something was drawn: a page that failed to parse or lost its inline SVG renders mostly
// white with few colours.
func TestHTMLScreenshot(t *testing.T) {
	chromium := chromiumOrSkip(t, "screenshot")
	dir := t.TempDir()
	pagePath := filepath.Join(dir, "report.html")
	p, err := WriteAll(context.Background(), dir, fixtureRun(), fixtureHistory(t))
	require.NoError(t, err)
	require.Equal(t, pagePath, p.HTML)
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1280,2400", "file://"+pagePath)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "chromium: %s", out)

	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	assert.Equal(t, image.Rect(0, 0, 1280, 2400), b)
	colours := map[uint32]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	assert.Greater(t, len(colours), 50, "a rendered page with charts has many colours")
	assert.Greater(t, nonWhite, total/50, "more than 2%% of the page is drawn")
}

// chromiumOrSkip returns the path of Debian's chromium, or skips the test named what when
// the machine has none (CI installs it).
func chromiumOrSkip(t *testing.T, what string) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("chromium not installed (Debian package chromium); skipping the %s test", what)
	return ""
}
