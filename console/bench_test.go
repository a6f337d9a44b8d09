package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/internal/browsertest"
)

// benchIdle is how long the idle CPU is measured: long enough for a few hundred pushes.
const benchIdle = 10 * time.Second

// stableFor is how long a breaker state must hold in the service's metrics for the page to
// owe it: a state held for less may fall between two scrapes.
const stableFor = time.Second

// pageMarks records, in the page, the moment each change reaches the DOM: the
// gateway->product breaker's state and whether a latency fault is drawn on that link.
const pageMarks = `(() => {
  window.marks = [];
  const look = () => {
    const st = document.querySelector('tr.breaker[data-caller="gateway"][data-dependency="product"] .state')?.textContent;
    if (st && st !== window.lastBreaker) { window.lastBreaker = st; window.marks.push({kind: "breaker", value: st, t: Date.now()}); }
    const f = [...document.querySelectorAll('tr[data-link^="gateway->product"] .fault')].some((e) => e.textContent.includes("latency")) ? "on" : "off";
    if (f !== window.lastFault) { window.lastFault = f; window.marks.push({kind: "fault", value: f, t: Date.now()}); }
  };
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
  look();
  return true;
})()`

type mark struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	T     int64  `json:"t"` // Unix ms, the page's clock (the machine's)
}

// BenchmarkConsoleLatency measures, with a real browser on the reference system under
// load, how long an event takes to show on the page: a fault injected (from the call to
// the fault drawn on its link), a fault healed, and a breaker transition (from the moment
// the gateway's /metrics shows it, polled every 10 ms and stamped at the earliest it can
// have happened, to the page showing it). Each
// iteration injects 1.5 s of latency on gateway->product, waits for the breaker shown
// open, heals and waits for it shown closed. Then, load off and the page connected, it
// measures the console's own CPU (this process: the components are processes of their
// own) over benchIdle. Reported: the median and the worst of each latency, and the idle
// CPU in per cent of one core.
//
//	go test -run '^$' -bench BenchmarkConsoleLatency -benchtime 10x ./console/
func BenchmarkConsoleLatency(b *testing.B) {
	if browsertest.Path() == "" {
		b.Skip("chromium not installed (Debian package chromium)")
	}
	c, sys := startBaseline(b)
	scrape, err := sys.Scrape()
	require.NoError(b, err)
	var gateway string
	for _, t := range scrape.Targets() {
		if t.Component == "gateway-1" {
			gateway = t.URL
		}
	}
	require.NotEmpty(b, gateway, "the gateway's metrics")

	br := browsertest.New(b, "console benchmark", 1400, 1000)
	const state = `document.querySelector('tr.breaker[data-caller="gateway"][data-dependency="product"] .state')?.textContent`
	br.Open(c.URL())
	br.WaitTrue("the breakers listed", state+` === "closed"`, 30*time.Second)
	require.Equal(b, "true", br.Eval(pageMarks+` ? "true" : "false"`), "the page's marks installed")
	require.NoError(b, c.StartLoad(50))

	// The gateway's breaker state as its metrics show it, polled; transitions with times.
	poll := &breakerPoll{url: gateway}
	pctx, stopPoll := context.WithCancel(context.Background())
	var pollDone sync.WaitGroup
	pollDone.Go(func() { poll.run(pctx) })

	var faultShown, healShown, breakerShown []time.Duration
	brief := 0
	for b.Loop() {
		t0 := time.Now()
		id, err := c.Inject(b.Context(), "latency", map[string]string{"target": "gateway->product", "latency": "1500ms"})
		require.NoError(b, err)
		br.WaitTrue("the breaker shown open", state+` === "open"`, 30*time.Second)
		t1 := time.Now()
		require.NoError(b, c.Heal(b.Context(), id))
		br.WaitTrue("the breaker shown closed", state+` === "closed"`, 60*time.Second)
		br.WaitTrue("the fault gone from its link", `window.lastFault === "off"`, 30*time.Second)
		marks := readMarks(b, br)
		faultShown = append(faultShown, shownAfter(marks, "fault", "on", t0))
		healShown = append(healShown, shownAfter(marks, "fault", "off", t1))
		trs := poll.since(t0)
		for i, tr := range trs {
			// A state the metrics held for less than stableFor is sampled past (the console
			// scrapes every 250 ms): counted apart, not as a latency.
			if i+1 < len(trs) && trs[i+1].at.Sub(tr.at) < stableFor {
				brief++
				continue
			}
			d := shownAfter(marks, "breaker", tr.state, tr.at)
			require.GreaterOrEqual(b, d, time.Duration(0), "breaker %s at %s held %s never shown", tr.state, tr.at, stableFor)
			breakerShown = append(breakerShown, d)
		}
	}
	stopPoll()
	pollDone.Wait()
	c.StopLoad()

	// Idle: the system running, the page connected and pushed to, no load, no fault.
	time.Sleep(2 * time.Second) // the load's last requests drain
	cpu0, wall0 := processCPU(b), time.Now()
	time.Sleep(benchIdle)
	idle := float64(processCPU(b)-cpu0) / float64(time.Since(wall0)) * 100

	report := func(name string, ds []time.Duration) {
		require.NotEmpty(b, ds, name)
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Milliseconds()), name+"-p50-ms")
		b.ReportMetric(float64(ds[len(ds)-1].Milliseconds()), name+"-max-ms")
	}
	report("fault-shown", faultShown)
	report("heal-shown", healShown)
	report("breaker-shown", breakerShown)
	b.ReportMetric(idle, "idle-cpu-%")
	b.ReportMetric(float64(brief), "breaker-brief")
	b.ReportMetric(0, "ns/op")
	b.Logf("fault shown %v; heal shown %v; breaker transitions shown %v (%d more held less than %s); idle CPU %.2f%% of one core over %s",
		faultShown, healShown, breakerShown, brief, stableFor, idle, benchIdle)
}

// readMarks takes the page's marks so far and clears them.
func readMarks(b *testing.B, br *browsertest.Browser) []mark {
	b.Helper()
	var ms []mark
	require.NoError(b, json.Unmarshal([]byte(br.Eval(`JSON.stringify(window.marks.splice(0))`)), &ms))
	return ms
}

// shownAfter is how long after t the page first showed kind at value: 0 when it showed
// it already (it never showed a state held between two of its updates), -1 when never.
func shownAfter(ms []mark, kind, value string, t time.Time) time.Duration {
	shown := ""
	for _, m := range ms {
		if m.Kind == kind && m.T < t.UnixMilli() {
			shown = m.Value
		}
	}
	if shown == value {
		return 0
	}
	for _, m := range ms {
		if m.Kind == kind && m.Value == value && m.T >= t.UnixMilli() {
			return time.Duration(m.T-t.UnixMilli()) * time.Millisecond
		}
	}
	return -1
}

type transition struct {
	at    time.Time
	state string
}

// breakerPoll reads the gateway->product breaker from the gateway's /metrics every 10 ms.
type breakerPoll struct {
	url  string
	mu   sync.Mutex
	last string
	seen []transition
}

func (p *breakerPoll) run(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	// A transition is stamped with the start of the last read that still saw the state
	// before it: the earliest it can have happened, so a latency measured from it is an
	// upper bound, however slow the gateway answers under the fault.
	prev := time.Now()
	for ctx.Err() == nil {
		start := time.Now()
		if s := p.read(ctx); s != "" {
			p.mu.Lock()
			if s != p.last {
				p.last = s
				p.seen = append(p.seen, transition{at: prev, state: s})
			}
			p.mu.Unlock()
			prev = start
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

func (p *breakerPoll) read(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, "GET", p.url, nil)
	if err != nil {
		return ""
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "faultline_breaker_state{") || !strings.Contains(l, `caller="gateway"`) || !strings.Contains(l, `dependency="product"`) {
			continue
		}
		switch l[strings.LastIndexByte(l, ' ')+1:] {
		case "0":
			return "closed"
		case "1":
			return "half-open"
		case "2":
			return "open"
		}
	}
	return ""
}

// since lists the transitions seen from t on.
func (p *breakerPoll) since(t time.Time) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []transition
	for _, tr := range p.seen {
		if !tr.at.Before(t) {
			out = append(out, tr)
		}
	}
	return out
}

// processCPU is this process's CPU time, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
