// Package browsertest opens the pages Faultline writes or serves in a real browser —
// Debian's chromium, driven over the DevTools protocol by chromedp — for tests: what a user
// sees (the DOM after scripts ran, a screenshot), offline, from a file or a loopback URL.
// A machine without chromium skips the test with one line; CI installs it.
package browsertest

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Timeout bounds each thing one browser does for a test: its start, one load, one action,
// one read. It bounds each rather than all of them together, so that a long interactive
// test (the console's) does not run out of time on a loaded machine while every single
// step is still bounded.
const Timeout = 90 * time.Second

// Browser is one headless chromium with one tab, closed when its test ends.
type Browser struct {
	t   testing.TB
	ctx context.Context
}

// Path returns the path of Debian's chromium, or "" when the machine has none.
func Path() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts chromium with a viewport of width×height CSS pixels, or skips t (naming what
// the test would have checked) when chromium is not installed. The browser's profile lives
// in t's temporary directory, so parallel tests never share one.
func New(t testing.TB, what string, width, height int) *Browser {
	t.Helper()
	path := Path()
	if path == "" {
		t.Skipf("chromium not installed (Debian package chromium); skipping the %s test", what)
	}
	dir := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where chromium refuses its sandbox
		chromedp.DisableGPU,
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(width, height),
		chromedp.Env("HOME="+dir),
	)
	ctx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(ctx)
	// Cancelling the tab's context first lets chromedp close the browser cleanly.
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	// The first action starts the browser, which lives as long as that action's context:
	// the tab's own, bounded by a timer rather than a deadline.
	stuck := time.AfterFunc(Timeout, cancelTab)
	err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height)))
	if !stuck.Stop() || err != nil {
		t.Fatalf("start chromium (bounded by %s): %v", Timeout, err)
	}
	return &Browser{t: t, ctx: ctx}
}

// bounded is the tab's context bounded by Timeout, for one step.
func (b *Browser) bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, Timeout)
}

// Open loads url (file:// or http://127.0.0.1…) and waits for its body.
func (b *Browser) Open(url string) {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady("body")); err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
}

// DOM returns the page's HTML as the browser built it, scripts run.
func (b *Browser) DOM() string {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.OuterHTML("html"))
	if err != nil {
		b.t.Fatalf("read dom: %v", err)
	}
	return html
}

// Text returns the text of the first element matching the CSS selector, once it exists.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(selector))
	if err != nil {
		b.t.Fatalf("read %s: %v", selector, err)
	}
	return s
}

// Screenshot captures the viewport.
func (b *Browser) Screenshot() image.Image {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("capture screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		b.t.Fatalf("decode screenshot: %v", err)
	}
	return img
}

// Drawn tells how much of img is drawn: the number of distinct colours and the share of
// pixels that are not near-white, sampled every second pixel. A page that failed to parse,
// or lost its inline SVG, renders mostly white with few colours.
func Drawn(img image.Image) (colours int, share float64) {
	b := img.Bounds()
	seen := map[uint32]bool{}
	nonWhite, total := 0, 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				nonWhite++
			}
			total++
		}
	}
	if total == 0 {
		return 0, 0
	}
	return len(seen), float64(nonWhite) / float64(total)
}

// Do runs chromedp actions in the tab (click, type, wait) and fails the test on an error.
func (b *Browser) Do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("run browser actions: %v", err)
	}
}

// Eval returns the string a JavaScript expression evaluates to in the page.
func (b *Browser) Eval(expr string) string {
	b.t.Helper()
	ctx, cancel := b.bounded()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// WaitTrue waits until a JavaScript expression is truthy in the page, or fails the test
// after timeout, saying what it waited for.
func (b *Browser) WaitTrue(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, Timeout+timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.t.Fatalf("wait for %s (%s): %v", what, expr, err)
	}
}
