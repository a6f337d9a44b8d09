package browsertest

import (
	"image"
	"image/color"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDrawn(t *testing.T) {
	blank := image.NewRGBA(image.Rect(0, 0, 100, 100))
	for i := range blank.Pix {
		blank.Pix[i] = 0xff
	}
	half := image.NewRGBA(image.Rect(0, 0, 100, 100))
	copy(half.Pix, blank.Pix)
	for y := 0; y < 50; y++ {
		for x := 0; x < 100; x++ {
			half.Set(x, y, color.RGBA{uint8(x), uint8(y), 0x80, 0xff})
		}
	}
	for _, tc := range []struct {
		name        string
		img         image.Image
		wantColours int
		wantShare   float64
	}{
		{"blank", blank, 1, 0},
		{"half drawn", half, 1 + 50*25, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotColours, gotShare := Drawn(tc.img)
			assert.Equal(t, tc.wantColours, gotColours)
			assert.InDelta(t, tc.wantShare, gotShare, 1e-9)
		})
	}
}

// TestBrowserRunsScripts opens a loopback page whose text only a script writes: the DOM
// and the text read back are the browser's, not the served bytes.
func TestBrowserRunsScripts(t *testing.T) {
	b := New(t, "browser", 800, 600)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`<html><body style="background:#123456"><p id="out">static</p>` +
			`<script>document.getElementById('out').textContent = 'ran ' + (6*7)</script></body></html>`))
	}))
	defer srv.Close()
	b.Open(srv.URL)
	assert.Equal(t, "ran 42", b.Text("#out"))
	assert.Contains(t, b.DOM(), `<p id="out">ran 42</p>`)
	img := b.Screenshot()
	assert.Equal(t, image.Rect(0, 0, 800, 600), img.Bounds())
	colours, share := Drawn(img)
	assert.GreaterOrEqual(t, colours, 1)
	assert.Greater(t, share, 0.9, "the dark background fills the viewport")
}
