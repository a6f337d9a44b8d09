package reports

import (
	"context"
	"image"
	"path/filepath"
	"testing"

	"github.com/faultline-dev/faultline/internal/browsertest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTMLScreenshot renders the page in a real browser, offline, and checks that
// something was drawn: a page that failed to parse or lost its inline SVG renders mostly
// white with few colours.
func TestHTMLScreenshot(t *testing.T) {
	b := browsertest.New(t, "screenshot", 1280, 2400)
	dir := t.TempDir()
	p, err := WriteAll(context.Background(), dir, fixtureRun(), fixtureHistory(t))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "report.html"), p.HTML)
	b.Open("file://" + p.HTML)
	img := b.Screenshot()
	assert.Equal(t, image.Rect(0, 0, 1280, 2400), img.Bounds())
	colours, drawn := browsertest.Drawn(img)
	assert.Greater(t, colours, 50, "a rendered page with charts has many colours")
	assert.Greater(t, drawn, 0.02, "more than 2%% of the page is drawn")
}
