package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/console"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/internal/browsertest"
	"github.com/faultline-dev/faultline/reference-services/serve"
	"github.com/faultline-dev/faultline/reports"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/systems"
)

// TestMain lets the test binary double as the faultline binary: the components the
// console starts are this binary re-executed with FAULTLINE_SERVE_CONFIG set.
func TestMain(m *testing.M) {
	serve.FromEnv()
	os.Exit(m.Run())
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startBaseline starts a console on the reference system of the built-in baseline
// scenario, run by this test binary, closed when the test ends; it returns the system too.
func startBaseline(tb testing.TB) (*console.Console, sut.System) {
	tb.Helper()
	exe, err := os.Executable()
	require.NoError(tb, err)
	sc, err := scenarios.Builtin("baseline")
	require.NoError(tb, err)
	log := slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sys := systems.For(sc, exe)
	c, err := console.Start(tb.Context(), sys, console.Options{
		Scenario: sc, Harness: []harness.Option{harness.WithDir(tb.TempDir()), harness.WithLogger(log)},
	})
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c, sys
}

// TestConsoleInBrowser drives the page as a teacher would: load on, 1.5 s of latency on
// gateway->product through the form, the breaker shown open with fallbacks served, heal,
// the breaker shown closed again. The resilient design's gateway->product policy times out
// after 1 s and opens its breaker when half of at least 10 calls in a second fail, so 50
// req/s (half of them browses) open it within about a second of the injection.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the reference system and a browser")
	}
	if browsertest.Path() == "" {
		t.Skip("chromium not installed (Debian package chromium); skipping the console browser test")
	}
	artifacts := os.Getenv("FAULTLINE_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(artifacts, 0o755))
	c, _ := startBaseline(t)

	requireLoopbackOnly(t, c.Listeners())
	requireEventsAtLeast(t, c.URL(), 2)

	b := browsertest.New(t, "console", 1400, 1400)
	began := time.Now()
	shot := func(name string) {
		t.Helper()
		t.Logf("step %s reached after %s", name, time.Since(began).Round(time.Millisecond))
		f, err := os.Create(filepath.Join(artifacts, "console-"+name+".png"))
		require.NoError(t, err)
		defer f.Close()
		require.NoError(t, png.Encode(f, b.Screenshot()))
	}
	const breaker = `document.querySelector('tr.breaker[data-caller="gateway"][data-dependency="product"]')`
	const state = breaker + `?.querySelector(".state")?.textContent`

	// A failed step leaves the page as it was, for the artefacts.
	t.Cleanup(func() {
		if t.Failed() {
			if f, err := os.Create(filepath.Join(artifacts, "console-failed.png")); err == nil {
				_ = png.Encode(f, b.Screenshot())
				f.Close()
			}
		}
	})
	// The drawn topology: a node per instance, the link's edge and the breaker's dot.
	const graphBreaker = `document.querySelector('#graph circle.breaker[data-caller="gateway-1"][data-dependency="product"]')`
	const graphLink = `[...document.querySelectorAll('#graph g.edge[data-link^="gateway->product"]')]`
	b.Open(c.URL())
	b.WaitTrue("the breakers listed", state+` === "closed"`, 15*time.Second)
	b.WaitTrue("the topology drawn", `document.querySelectorAll("#graph g.gnode").length === 6 && `+graphLink+`.length > 0`, 10*time.Second)
	b.WaitTrue("the breaker drawn closed", graphBreaker+`?.classList.contains("closed")`, 10*time.Second)
	require.Empty(t, b.Eval(`location.search`), "the token stays in the address bar")
	shot("1-open")

	b.Do(chromedp.SetValue(chromedp.ID("#rate"), "50"), chromedp.Click(chromedp.ID("#load-start")))
	b.WaitTrue("load figures", `document.querySelector("#load-summary").textContent === "load 50 req/s"`, 5*time.Second)
	b.WaitTrue("throughput above zero", `Number(document.querySelector("#figures b")?.textContent) > 0`, 10*time.Second)
	shot("2-load")

	// The journey mix changed by hand while the load runs: orders only, then back.
	const journeyNow = `document.querySelector('[data-chart="journey:%s:rate"] .mini-title i')?.textContent`
	setMix := func(weights map[string]string) {
		t.Helper()
		for name, w := range weights {
			b.Do(chromedp.SetValue(chromedp.CSS(`#mix-fields [data-journey="`+name+`"]`), w))
		}
		b.Do(chromedp.Click(chromedp.ID("#mix-apply")))
	}
	b.WaitTrue("browse charted", `parseFloat(`+fmt.Sprintf(journeyNow, "browse")+`?.split(" ")[1]) > 10`, 10*time.Second)
	setMix(map[string]string{"browse": "-1"})
	b.WaitTrue("a bad weight refused", `document.querySelector("#error").textContent.includes("set mix")`, 5*time.Second)
	setMix(map[string]string{"browse": "0", "view_order": "0", "place_order": "1", "retry_order": "0"})
	b.WaitTrue("the mix in force shown", `document.querySelector("#mix-now").textContent === "in force: browse 0, place_order 1, retry_order 0, view_order 0"`, 5*time.Second)
	b.WaitTrue("browse no longer sent", fmt.Sprintf(journeyNow, "browse")+` === "ok+failed –"`, 10*time.Second)
	b.WaitTrue("orders placed", `parseFloat(`+fmt.Sprintf(journeyNow, "place_order")+`.split(" ")[1]) > 20`, 10*time.Second)
	shot("2b-mix")
	setMix(map[string]string{"browse": "50", "view_order": "20", "place_order": "25", "retry_order": "5"})
	b.WaitTrue("browse sent again", `parseFloat(`+fmt.Sprintf(journeyNow, "browse")+`.split(" ")[1]) > 10`, 10*time.Second)
	require.Empty(t, b.Text("#error"), "the page reported an error")

	b.Do(
		chromedp.SetValue(chromedp.ID("#kind"), "latency"),
		chromedp.SendKeys(chromedp.CSS(`#fields [name="target"]`), "gateway->product"),
		chromedp.SendKeys(chromedp.CSS(`#fields [name="latency"]`), "1500ms"),
		chromedp.Click(chromedp.ID("#inject")),
	)
	b.WaitTrue("the fault drawn on its link", `[...document.querySelectorAll('tr[data-link^="gateway->product"] .fault')].some(e => e.textContent.includes("latency 1500ms"))`, 15*time.Second)
	b.WaitTrue("the gateway->product breaker shown open", state+` === "open"`, 15*time.Second)
	b.WaitTrue("fallbacks served", `Number(`+breaker+`.children[3].textContent) > 0`, 10*time.Second)
	b.WaitTrue("the fault written on the link's edge", graphLink+`.some(e => e.classList.contains("faulted") && e.querySelector("text.fault-label").textContent.includes("latency 1500ms"))`, 5*time.Second)
	b.WaitTrue("the breaker drawn open", graphBreaker+`?.classList.contains("open")`, 5*time.Second)
	require.Empty(t, b.Text("#error"), "the page reported an error")
	// The charts: each journey's rates and latencies, fallbacks served rising with the fault
	// window shaded, and the system's own gauges read from its metrics.
	b.WaitTrue("a chart per journey", `[...document.querySelectorAll('[data-chart^="journey:"] polyline')].length >= 4`, 10*time.Second)
	b.WaitTrue("fallbacks charted", `Number(document.querySelector('[data-chart="fallbacks"] svg')?.dataset.max) > 1`, 10*time.Second)
	b.WaitTrue("the fault window shaded", `!!document.querySelector('[data-chart="fallbacks"] rect.fault-window title')?.textContent.includes("latency gateway->product")`, 5*time.Second)
	b.WaitTrue("the system's gauges charted", `["faultline_outbox_backlog", "faultline_consumer_lag"].every(m => document.querySelector('[data-chart="gauge:' + m + '"] polyline'))`, 5*time.Second)
	shot("3-breaker-open")

	b.Do(chromedp.Click(chromedp.ID("#heal-all")))
	b.WaitTrue("no fault in place", `!document.querySelector("tr[data-fault]")`, 15*time.Second)
	b.WaitTrue("the gateway->product breaker shown closed again", state+` === "closed"`, 20*time.Second)
	b.WaitTrue("the breaker drawn closed again, the edge clear", graphBreaker+`?.classList.contains("closed") && !`+graphLink+`.some(e => e.classList.contains("faulted"))`, 5*time.Second)
	b.WaitTrue("the event log's transitions", `document.querySelector("#log").textContent.includes("gateway→product on gateway-1: open")`, 5*time.Second)
	shot("4-healed")

	// Another kind through the same generated form: an instance shown paused, then running.
	const merchant = `[...document.querySelectorAll("#instances tr")].find(r => r.cells[0].textContent === "merchant-1")?.cells[2].textContent`
	// Registry membership: a paused instance keeps no lease alive, so it leaves the registry
	// within its TTL (2 s) and rejoins once thawed.
	const registry = `document.querySelector('tr[data-instance="merchant-1"] td.registry')?.textContent`
	b.WaitTrue("merchant-1 shown in the registry", registry+` === "in registry"`, 10*time.Second)
	b.Do(chromedp.SetValue(chromedp.ID("#kind"), "pause"))
	b.Do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#kind").dispatchEvent(new Event("change"))`))
	b.Do(chromedp.SendKeys(chromedp.CSS(`#fields [name="target"]`), "merchant-1"), chromedp.Click(chromedp.ID("#inject")))
	b.WaitTrue("merchant-1 shown paused", merchant+`?.startsWith("paused")`, 15*time.Second)
	b.WaitTrue("merchant-1 shown out of the registry, its lease expired", registry+` === "left registry"`, 15*time.Second)
	b.WaitTrue("merchant-1 drawn paused and out of the registry", `document.querySelector('#graph g.gnode[data-instance="merchant-1"]')?.getAttribute("class") === "gnode paused left"`, 5*time.Second)
	b.WaitTrue("the event log's leaving", `document.querySelector("#log").textContent.includes("merchant-1 left the registry")`, 5*time.Second)
	shot("5-paused")
	b.Do(chromedp.Click(chromedp.ID("#heal-all")))
	b.WaitTrue("merchant-1 shown running again", merchant+` === "running"`, 15*time.Second)
	b.WaitTrue("merchant-1 back in the registry", registry+` === "in registry"`, 15*time.Second)
	b.WaitTrue("the event log's rejoining", `document.querySelector("#log").textContent.includes("merchant-1 rejoined the registry")`, 5*time.Second)

	// The session exported as a scenario, through the page's button, and validated as
	// `faultline validate` does a file.
	b.Do(chromedp.Click(chromedp.ID("#export")))
	b.WaitTrue("the exported scenario shown", `document.querySelector("#export-yaml").textContent.startsWith("name: console-session")`, 15*time.Second)
	require.Empty(t, b.Text("#error"), "the page reported an error")
	shot("6-exported")
	exported := b.Eval(`document.querySelector("#export-yaml").textContent`)
	file := filepath.Join(artifacts, "console-session.yaml")
	require.NoError(t, os.WriteFile(file, []byte(exported), 0o644))
	require.Empty(t, scenarios.ValidateFile(file, scenarios.SystemShape{}), "faultline validate %s:\n%s", file, exported)
	rec, err := scenarios.Load(file)
	require.NoError(t, err)
	var kinds []string
	for _, f := range rec.Faults {
		kinds = append(kinds, f.Type+" "+harness.FaultTarget(f.Spec.(faults.Fault)))
		assert.Positive(t, f.For.Std(), "%s lasts", f.Name)
	}
	assert.Equal(t, []string{"latency gateway->product", "pause merchant-1"}, kinds)
	assert.Equal(t, 1500*time.Millisecond, rec.Faults[0].Spec.(*faults.Latency).Latency)
	// The load at one rate throughout, its mix changed twice: three steps, the later two
	// with their own mix.
	require.Len(t, rec.Load.Ramp, 3, "%s", exported)
	for _, st := range rec.Load.Ramp {
		assert.Equal(t, scenarios.Rate{Freq: 50, Per: time.Second}, st.Rate)
	}
	sc, err := scenarios.Builtin("baseline") // the console's scenario (startBaseline)
	require.NoError(t, err)
	assert.Equal(t, sc.Load.Mix, rec.Load.Mix)
	assert.Equal(t, map[string]float64{"browse": 0, "view_order": 0, "place_order": 1, "retry_order": 0}, rec.Load.Ramp[1].Mix)
	assert.Equal(t, map[string]float64{"browse": 50, "view_order": 20, "place_order": 25, "retry_order": 5}, rec.Load.Ramp[2].Mix)
	assert.Equal(t, sc.System, rec.System)

	// A catalog scenario on the same system, stepped through as a class would: its faults
	// played by the pipeline's timeline, its checks pending until their phase closes.
	const play = `document.querySelector("#play-status")`
	b.Do(chromedp.SetValue(chromedp.ID("#scenario"), "cascading-failure-with-breaker"))
	b.Do(chromedp.Evaluate[chromedp.Void](`document.querySelector("#scenario").dispatchEvent(new Event("change"))`))
	b.WaitTrue("the scenario's description", `document.querySelector("#scenario-desc").textContent.includes("circuit breaker contains the failure")`, 5*time.Second)
	b.Do(chromedp.Click(chromedp.ID("#step")))
	b.WaitTrue("the first step offered", `document.querySelector("#next-what")?.textContent === "inject product-hangs"`, 15*time.Second)
	b.WaitTrue("checks pending before any fault", `[...document.querySelectorAll("#play-checks td.pending")].length >= 4`, 5*time.Second)
	// Some steady load before the fault, so that the steady state has something to judge.
	b.WaitTrue("three seconds of load", `parseFloat(`+play+`.textContent.split(": ")[1]) >= 3`, 20*time.Second)
	shot("7-step-before")
	b.Do(chromedp.Click(chromedp.ID("#next")))
	b.WaitTrue("the fault shown injected", `document.querySelector('[data-play-fault="product-hangs"] td:last-child')?.textContent.startsWith("injected")`, 15*time.Second)
	// What the 4 s fault draws is read while it lasts; judging the phase before it may take
	// longer than that on a slowed (-race) machine.
	b.WaitTrue("the scenario's fault drawn on its link", `[...document.querySelectorAll('tr[data-link^="gateway->product"] .fault')].some(e => e.textContent.includes("product-hangs latency"))`, 4*time.Second)
	b.WaitTrue("the gateway->product breaker shown open by the scenario's fault", state+` === "open"`, 15*time.Second)
	shot("8-step-during")
	b.WaitTrue("the before phase judged", `[...document.querySelectorAll('[data-check-phase="steady_state:before"] td:nth-child(3)')].some(e => e.textContent !== "pending")`, 30*time.Second)
	b.WaitTrue("the fault healed on its own after its 4s", `document.querySelector('[data-play-fault="product-hangs"] td:last-child')?.textContent.startsWith("healed")`, 20*time.Second)
	b.WaitTrue("the during checks judged", `[...document.querySelectorAll('[data-check-phase="during:product-hangs"] td:nth-child(3)')].every(e => e.textContent !== "pending")`, 15*time.Second)
	during := b.Eval(`[...document.querySelectorAll('[data-check-phase="during:product-hangs"]')].map(r => r.cells[0].textContent + "=" + r.cells[2].textContent).join("; ")`)
	assert.Contains(t, during, "breaker_opened", "the breaker check is listed")
	if !raceEnabled { // race-instrumented services are too slow for the scenario's bounds
		assert.NotContains(t, during, "=failed", "during checks")
	}
	b.WaitTrue("the finish offered", `document.querySelector("#next-what")?.textContent.startsWith("finish")`, 10*time.Second)
	b.WaitTrue("two seconds after the heal", `parseFloat(`+play+`.textContent.split(": ")[1]) >= 10`, 20*time.Second)
	b.Do(chromedp.Click(chromedp.ID("#next")))
	b.WaitTrue("the verdict shown", `!!`+play+`.querySelector("[data-verdict]")`, 30*time.Second)
	shot("9-step-verdict")
	assert.Empty(t, b.Eval(`[...document.querySelectorAll("#play-checks td.pending")].map(e => e.parentElement.cells[0].textContent).join(", ")`), "checks left pending")
	// The verdict says what the checks on the page say.
	failed := b.Eval(`[...document.querySelectorAll("#play-checks td.failed")].map(e => e.parentElement.cells[0].textContent).join(", ")`)
	verdict := b.Eval(play + `.querySelector("[data-verdict]").textContent`)
	if failed != "" {
		// checks.Decide: a run whose steady state did not hold before its fault, whose fault
		// did not land or whose load fell short cannot show what it claims: invalid.
		want := "failed"
		for _, name := range strings.Split(failed, ", ") {
			if strings.HasPrefix(name, "steady_state:before/") || strings.Contains(name, "fault_landed") || strings.Contains(name, "throughput") {
				want = "invalid"
			}
		}
		assert.Equal(t, want, verdict, "verdict with failed checks %s", failed)
	}
	if !raceEnabled {
		assert.Equal(t, "passed", verdict, "verdict: %s", b.Text("#play-status"))
	}

	// Closed, the session leaves the records a run leaves, and `faultline report` renders them.
	c.Close(context.Background())
	res, err := result.LoadFile(filepath.Join(c.Dir(), harness.ResultFile))
	require.NoError(t, err)
	assert.Positive(t, res.Load.Requests)
	require.Len(t, res.Faults, 2)
	assert.Positive(t, res.Faults[0].Healed)
	injected := 0
	hr, err := history.Open(filepath.Join(c.Dir(), harness.HistoryFile))
	require.NoError(t, err)
	for ev, err := range hr.Events() {
		require.NoError(t, err)
		if f, ok := ev.AsFault(); ok && f.Action == history.FaultInject {
			injected++
		}
	}
	require.NoError(t, hr.Close())
	assert.Equal(t, 3, injected, "fault injections in the history: two by hand, one by the scenario")
	paths, err := reports.WriteAll(t.Context(), t.TempDir(), res, filepath.Join(c.Dir(), harness.HistoryFile))
	require.NoError(t, err)
	html, err := os.ReadFile(paths.HTML)
	require.NoError(t, err)
	assert.Contains(t, string(html), "latency-1")
	assert.FileExists(t, filepath.Join(c.Dir(), console.SessionFile))
	t.Logf("screenshots and the exported session in %s", artifacts)
}

// requireLoopbackOnly checks, live, that every listener is bound to loopback and that
// none answers on the machine's other addresses.
func requireLoopbackOnly(t *testing.T, addrs []string) {
	t.Helper()
	var others []net.IP
	ifaces, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range ifaces {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			others = append(others, ipn.IP)
		}
	}
	require.Greater(t, len(addrs), 1, "the console and its link proxies")
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		require.NoError(t, err)
		require.True(t, net.ParseIP(host).IsLoopback(), "%s is not bound to loopback", a)
		for _, ip := range others {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), time.Second)
			if err == nil {
				conn.Close()
				t.Errorf("%s answers on %s", a, ip)
			}
		}
	}
}

// requireEventsAtLeast reads the page's event stream for two seconds and checks it carried
// at least perSecond states a second, each with the instances and breakers.
func requireEventsAtLeast(t *testing.T, url string, perSecond int) {
	t.Helper()
	base, token, _ := strings.Cut(url, "/?"+console.TokenParam+"=")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/events", nil)
	require.NoError(t, err)
	req.Header.Set(console.TokenHeader, token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	states := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var st console.State
		require.NoError(t, json.Unmarshal([]byte(data), &st))
		require.NotEmpty(t, st.Instances)
		states++
	}
	assert.GreaterOrEqual(t, states, 2*perSecond, "states pushed in 2 s")
}
