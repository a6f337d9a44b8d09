// Package console serves a live page on loopback that shows a running system under test
// — its instances, links with their faults, circuit breakers and load — and steers it:
// load on and off, any registered fault kind injected and healed by hand. It starts the
// system through the harness's pipeline (harness.StartSystem) like a soak does; every
// hand fault is written to the run's undo record, and Close heals everything. A catalog
// scenario plays on the pipeline's own fault timeline (harness.Up.NewTimeline), whole or
// phase by phase; the session's hand actions export as a scenario (scenarios.Marshal), and
// the session writes the history and result a run writes, for faultline report.
//
// The page is one embedded file (page.html): plain JavaScript that renders tables and
// inline SVG charts from server-sent events (net/http, no library). The charts are small
// multiples of polylines over one point a second (each journey's rates and latencies,
// fallbacks served, the system's gauges, fault windows shaded): a charting library would
// add a file to vendor and keep current for what is forty lines of SVG, so none is taken.
// The topology is drawn as a graph laid out by dagre (dagre.min.js, embedded and served
// beside the page), in the page, only when its structure changes; every state after that
// only recolours it. Graphviz compiled to WebAssembly (go-graphviz) was the other
// candidate, laying out on the server: it compiles its module in a package init, which
// every process of this binary would pay, the system's components included, since they
// are this binary re-executed.
//
// What is domain-specific comes from the system, never from this package: registry
// membership through sut.Registrar, the gauges worth charting through sut.Gauger.
package console

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/undo"
)

//go:embed page.html
var page string

// dagreJS lays out the topology graph in the page (dagre, see dagre.LICENSE): embedded so
// the page loads nothing from elsewhere.
//
//go:embed dagre.min.js
var dagreJS []byte

const (
	// DefaultAddr lets the kernel pick a free loopback port.
	DefaultAddr = "127.0.0.1:0"
	// DefaultInterval is how often the page gets the state: twice the 1 Hz floor.
	DefaultInterval = 500 * time.Millisecond
	// cleanupTimeout bounds healing and stopping on the way out.
	cleanupTimeout = 30 * time.Second
	// loadChunk is one load run; the load is a sequence of them until stopped, so that no
	// schedule is planned for longer than a minute.
	loadChunk = time.Minute
	// statsWindow is the load figures' sliding window.
	statsWindow = 2 * time.Second
	// keep bounds the event log and the chart's points.
	keepEvents, keepPoints = 200, 180
	// Metric names the checks read (docs/ARCHITECTURE.md).
	metricPrefix  = "faultline_"
	metricBreaker = "faultline_breaker_state"
	metricPolicy  = "faultline_policy_events_total"
	// metricDiscovery is each caller's count of a service's instances in its discovery
	// cache, which the failover check reads for a lease's expiry.
	metricDiscovery = "faultline_discovery_instances"
)

// Options configure a console.
type Options struct {
	// Addr is the loopback address to serve on (default DefaultAddr).
	Addr string
	// Interval is how often the state is pushed to the page (default DefaultInterval).
	Interval time.Duration
	// Harness options for harness.StartSystem (WithDir, WithLogger, ...).
	Harness []harness.Option
	// Load is the scenario's load section the steering's load follows (mix, clients,
	// timeout); its rate and duration are the page's. Scenario's load when unset.
	Load scenarios.LoadSpec
	// Scenario is the scenario whose system the console runs: a recorded session exports
	// on its system, seed and load settings.
	Scenario *scenarios.Scenario
}

// Console is a started system with its page served. Close ends both.
type Console struct {
	up       *harness.Up
	sys      sut.System
	ln       net.Listener
	srv      *http.Server
	token    string
	csrf     string
	interval time.Duration
	loadSpec scenarios.LoadSpec
	log      *slog.Logger
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// closeOnce makes Close safe to call twice (a test's cleanup after its own Close).
	closeOnce sync.Once

	// began is the session's clock: the history's T and the result's times count from it.
	began time.Time
	base  *scenarios.Scenario
	hist  *history.Writer

	mu      sync.Mutex
	seq     int
	hand    []*handFault
	events  []Event
	metrics map[string]observe.Sample // component|name|labels → latest
	load    *loadRun
	points  []Point
	// registered is the registry's membership as last read (a sut.Registrar), nil before
	// or without one; members is every instance it ever listed, whose absence is news.
	registered, members map[string]bool
	// journeys are the names the load can weigh: the system's journeys and the scenario's
	// targets; mix is the weights the hand load runs (or will run) with.
	journeys []string
	mix      map[string]float64
	// states is each instance's state as its runtime last told it (instanceState).
	states map[string]string
	// scen is the catalog scenario playing, or played last; nil before any.
	scen *play
	// The session record: every load change and hand fault, and the load's totals.
	loads          []loadStep
	recorded       []recFault
	issued, failed int
	planned        float64
	loadOn         time.Duration
}

// handFault is a hand fault in place: what the page shows of it, and the fault to heal.
type handFault struct {
	FaultView
	fault faults.Fault
}

type loadRun struct {
	rate    int
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	results []sample // the last statsWindow of results
	issued  int
	failed  int
}

type sample struct {
	at      time.Time
	journey string
	latency time.Duration
	ok      bool
}

// Event is one line of the page's event log.
type Event struct {
	T    time.Time `json:"t"`
	Kind string    `json:"kind"` // fault, heal, breaker, load, error
	Text string    `json:"text"`
}

// Point is one second of the charts.
type Point struct {
	T time.Time `json:"t"`
	// Figures are the load's over the last statsWindow, every journey together.
	Figures
	// Faulted says a fault, by hand or the scenario's, was in place; Faults names them.
	Faulted bool     `json:"faulted"`
	Faults  []string `json:"faults,omitempty"`
	// Journeys are the load's figures per journey.
	Journeys map[string]Figures `json:"journeys,omitempty"`
	// Fallbacks is fallbacks served per second since the point before, every caller's.
	Fallbacks float64 `json:"fallbacks"`
	// Gauges are the system's gauges (sut.Gauger) by metric name, each summed over the
	// instances that publish it; a gauge no instance publishes yet is missing.
	Gauges map[string]float64 `json:"gauges,omitempty"`
}

// Figures are a load's throughput, error rate and latency percentiles over a window.
type Figures struct {
	Throughput float64 `json:"throughput"`
	Errors     float64 `json:"errors"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
}

// Start starts sys through the harness's pipeline and serves the console on
// opts.Addr. It returns once the page is served; URL gives its address with the token.
func Start(ctx context.Context, sys sut.System, opts Options) (_ *Console, err error) {
	addr := cmp.Or(opts.Addr, DefaultAddr)
	// The address is checked before anything starts: a refused address starts nothing.
	ln, err := ListenLoopback(addr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = ln.Close()
		}
	}()
	c := &Console{
		sys: sys, ln: ln, interval: cmp.Or(opts.Interval, DefaultInterval), loadSpec: opts.Load,
		metrics: map[string]observe.Sample{}, began: time.Now(), base: opts.Scenario,
	}
	if c.base == nil {
		c.base = &scenarios.Scenario{Load: opts.Load}
	} else if opts.Load.Mix == nil {
		c.loadSpec = c.base.Load
	}
	if c.token, err = NewToken(); err != nil {
		return nil, err
	}
	if c.csrf, err = NewToken(); err != nil {
		return nil, err
	}
	up, err := harness.StartSystem(ctx, sys, "console", opts.Harness...)
	if err != nil {
		return nil, err
	}
	c.up, c.log = up, up.Log
	c.journeys, c.mix = loadJourneys(sys, c.loadSpec)
	// The session writes the history a run writes, on the session's clock.
	if c.hist, err = history.Create(filepath.Join(up.Dir, harness.HistoryFile), c.began); err != nil {
		c.closeUp(ctx)
		return nil, err
	}
	scrape, err := sys.Scrape()
	if err != nil {
		c.closeHistory()
		c.closeUp(ctx)
		return nil, err
	}
	// As a run does: every Faultline metric of a system that publishes only its own (the
	// checks read some, such as the discovery's instances, without naming them), the
	// metrics the checks name of one that publishes more.
	prefixes := []string{metricPrefix}
	if scrape.Checked {
		prefixes = append([]string{metricBreaker, metricPolicy, metricDiscovery}, c.metricNames()...)
		if g, ok := sys.(sut.Gauger); ok {
			for _, gg := range g.Gauges() {
				prefixes = append(prefixes, gg.Metric)
			}
		}
	}
	scraper, err := observe.NewScraper(scrape.Targets, observe.WithInterval(c.interval/2),
		observe.WithPrefixes(prefixes...), observe.WithStart(c.began))
	if err != nil {
		c.closeHistory()
		c.closeUp(ctx)
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.wg.Go(func() { _ = scraper.Run(bg, c.observe) })
	c.wg.Go(func() { c.chart(bg) })
	if r, ok := sys.(sut.Registrar); ok {
		c.wg.Go(func() { c.watchRegistry(bg, r) })
	}
	c.wg.Go(func() { c.watchInstances(bg) })
	c.srv = &http.Server{Handler: guard(c.token, c.csrf, c.routes()), ReadHeaderTimeout: 10 * time.Second}
	c.wg.Go(func() { _ = c.srv.Serve(ln) })
	c.event("load", "system started in "+up.Dir)
	return c, nil
}

// URL is the page's address with the access token, to print for the user.
func (c *Console) URL() string {
	return "http://" + c.ln.Addr().String() + "/?" + TokenParam + "=" + c.token
}

// Addr is the address the console listens on.
func (c *Console) Addr() string { return c.ln.Addr().String() }

// Listeners lists every address the console listens on: its page and every link's proxy.
func (c *Console) Listeners() []string {
	out := []string{c.Addr()}
	for _, l := range c.up.Links.All() {
		if a, err := c.up.Links.ListenAddr(l.Name()); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Dir is the run directory.
func (c *Console) Dir() string { return c.up.Dir }

// LeaseLost is closed when the lease the system's runtime holds on its cluster is lost
// (harness.Up.LeaseLost): the console should then be closed, since the namespace's reaper
// may be deleting the system. Nil, never closed, when no lease is held.
func (c *Console) LeaseLost() <-chan struct{} { return c.up.LeaseLost() }

// Close stops the load, heals every hand fault and every link, writes the session's
// record (history, result, SessionFile), stops the system and the server. ctx bounds it;
// it should outlive an interrupted console. A second call does nothing.
func (c *Console) Close(ctx context.Context) {
	c.closeOnce.Do(func() { c.close(ctx) })
}

func (c *Console) close(ctx context.Context) {
	c.StopPlay()
	c.StopLoad()
	_ = c.healAll(ctx)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_ = c.srv.Shutdown(sctx)
	cancel()
	_ = c.srv.Close()
	c.cancel()
	c.wg.Wait()
	now := time.Now()
	if b, err := c.exportYAML(now); err == nil {
		if werr := os.WriteFile(filepath.Join(c.up.Dir, SessionFile), b, 0o644); werr != nil {
			c.log.Warn("write session", "err", werr)
		}
	}
	c.closeHistory()
	if err := c.writeResult(now); err != nil {
		c.log.Warn("write session result", "err", err)
	}
	c.closeUp(ctx)
}

// closeHistory flushes and closes the session's history.
func (c *Console) closeHistory() {
	if err := c.hist.Close(); err != nil && c.log != nil {
		c.log.Warn("close history", "err", err)
	}
}

// exportYAML is Export, marshalled.
func (c *Console) exportYAML(now time.Time) ([]byte, error) {
	sc, err := c.Export(now)
	if err != nil {
		return nil, err
	}
	return scenarios.Marshal(sc)
}

func (c *Console) closeUp(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	c.up.Close(cctx)
}

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		// The page may load nothing from anywhere else.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
		_, _ = w.Write([]byte(strings.Replace(page, "{{CSRF}}", c.csrf, 1)))
	})
	mux.HandleFunc("GET /dagre.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "private, max-age=3600")
		_, _ = w.Write(dagreJS)
	})
	mux.HandleFunc("GET /api/kinds", func(w http.ResponseWriter, r *http.Request) {
		var gauges []sut.Gauge
		if g, ok := c.sys.(sut.Gauger); ok {
			gauges = g.Gauges()
		}
		writeJSON(w, http.StatusOK, map[string]any{"kinds": Kinds(), "targets": c.targets(), "gauges": gauges, "journeys": c.journeys})
	})
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.State())
	})
	mux.HandleFunc("GET /api/events", c.serveEvents)
	mux.HandleFunc("GET /export.yaml", func(w http.ResponseWriter, r *http.Request) {
		b, err := c.exportYAML(time.Now())
		if err != nil {
			writeErr(w, http.StatusConflict, err)
			return
		}
		w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="console-session.yaml"`)
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /api/load", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Rate int `json:"rate"`
		}
		if err := decodeBody(r, &req); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		if err := c.StartLoad(req.Rate); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"rate": req.Rate})
	})
	mux.HandleFunc("POST /api/load/mix", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Mix map[string]float64 `json:"mix"`
		}
		if err := decodeBody(r, &req); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		if err := c.SetMix(req.Mix); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"mix": req.Mix})
	})
	mux.HandleFunc("GET /api/scenarios", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"scenarios": c.Scenarios()})
	})
	mux.HandleFunc("POST /api/play", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string `json:"name"`
			Step bool   `json:"step"`
		}
		if err := decodeBody(r, &req); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		if err := c.Play(req.Name, req.Step); err != nil {
			writeErr(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	mux.HandleFunc("POST /api/play/next", func(w http.ResponseWriter, r *http.Request) {
		if err := c.Next(); err != nil {
			writeErr(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	mux.HandleFunc("POST /api/play/stop", func(w http.ResponseWriter, r *http.Request) {
		c.StopPlay()
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	mux.HandleFunc("POST /api/load/stop", func(w http.ResponseWriter, r *http.Request) {
		c.StopLoad()
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	mux.HandleFunc("POST /api/faults", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Kind   string            `json:"kind"`
			Params map[string]string `json:"params"`
		}
		if err := decodeBody(r, &req); err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		id, err := c.Inject(r.Context(), req.Kind, req.Params)
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id})
	})
	mux.HandleFunc("POST /api/faults/{id}/heal", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err == nil {
			err = c.Heal(r.Context(), id)
		}
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	mux.HandleFunc("POST /api/heal-all", func(w http.ResponseWriter, r *http.Request) {
		if err := c.healAll(r.Context()); err != nil {
			writeErr(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	return mux
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// serveEvents pushes the state as server-sent events every interval until the page goes.
func (c *Console) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		b, err := json.Marshal(c.State())
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// targets lists what a fault can name: every link (per instance and per service), every
// instance and every service.
func (c *Console) targets() []string {
	seen := map[string]bool{}
	for _, l := range c.up.Links.All() {
		seen[l.Name()] = true
		if l.FromService != "" && l.ToService != "" {
			seen[l.FromService+"->"+l.ToService] = true
		}
	}
	for _, comp := range c.sys.Topology() {
		seen[comp.Name] = true
		if comp.Service != "" {
			seen[comp.Service] = true
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	})
}

func (c *Console) event(kind, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addEvent(kind, text)
}

func (c *Console) addEvent(kind, text string) {
	c.events = append(c.events, Event{T: time.Now().UTC(), Kind: kind, Text: text})
	if len(c.events) > keepEvents {
		c.events = slices.Clone(c.events[len(c.events)-keepEvents:])
	}
	if c.log != nil {
		c.log.Info("console", "event", kind, "text", text)
	}
}

// observe keeps each metric's latest value and logs breaker transitions.
func (c *Console) observe(s observe.Sample) {
	ev := history.MetricEvent(history.Metric{Component: s.Component, Name: s.Name, Labels: s.Labels, Value: s.Value})
	ev.T = max(s.T, 1)
	_ = c.hist.Write(ev)
	key := s.Component + "|" + s.Name + history.LabelString(s.Labels)
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, had := c.metrics[key]
	c.metrics[key] = s
	if s.Name == metricBreaker && (!had || prev.Value != s.Value) && (had || s.Value != 0) {
		c.addEvent("breaker", fmt.Sprintf("breaker %s→%s on %s: %s", s.Labels["caller"], s.Labels["dependency"], s.Component, checks.BreakerStateName(s.Value)))
	}
}

// watchRegistry reads the registry's membership as often as the scraper reads metrics,
// and logs every instance that leaves it or joins it again.
func (c *Console) watchRegistry(ctx context.Context, r sut.Registrar) {
	t := time.NewTicker(c.interval / 2)
	defer t.Stop()
	for {
		if now, ok := r.Registered(); ok {
			c.mu.Lock()
			if c.members == nil {
				c.members = map[string]bool{}
			}
			for _, ev := range membershipChanges(c.registered, now, c.members) {
				c.addEvent("registry", ev)
			}
			c.registered = now
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchInstances asks each instance's runtime its state as often as the scraper reads
// metrics (a Docker engine is asked over its API, so not once per page), and logs every
// change after the first reading.
func (c *Console) watchInstances(ctx context.Context) {
	t := time.NewTicker(c.interval / 2)
	defer t.Stop()
	for {
		now := map[string]string{}
		for _, comp := range c.sys.Topology() {
			now[comp.Name] = instanceState(ctx, c.sys, comp.Name)
		}
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		if c.states != nil {
			for _, name := range slices.Sorted(maps.Keys(now)) {
				if prev, ok := c.states[name]; ok && prev != now[name] {
					c.addEvent("instance", name+" "+now[name])
				}
			}
		}
		c.states = now
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// membershipChanges compares two readings of the registry and returns one line per
// instance that left it or joined it again; members (updated) is every instance ever
// listed, so that an instance's first registration at start is not news but its return is.
func membershipChanges(prev, now, members map[string]bool) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(members)) {
		switch {
		case prev[name] && !now[name]:
			out = append(out, name+" left the registry (lease expired or deregistered)")
		case !prev[name] && now[name]:
			out = append(out, name+" rejoined the registry")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(now)) {
		if !members[name] {
			members[name] = true
			if prev != nil {
				out = append(out, name+" joined the registry")
			}
		}
	}
	return out
}

// Inject decodes a fault of kind from params, injects it and records it in the undo
// record; it returns the fault's id for Heal.
func (c *Console) Inject(ctx context.Context, kind string, params map[string]string) (int, error) {
	if c.playing() {
		return 0, errors.New("inject fault: a scenario is playing; its checks judge its own faults, so stop it first")
	}
	f, err := NewFault(kind, params)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.seq++
	h := &handFault{FaultView: FaultView{ID: c.seq, Kind: kind, Target: params["target"], Params: params, Since: time.Now().UTC()}, fault: f}
	c.hand = append(c.hand, h)
	// Recorded before the inject, so a console killed during it is still healed.
	rerr := c.recordLocked()
	c.mu.Unlock()
	if rerr != nil {
		c.drop(h.ID)
		return 0, rerr
	}
	injected := time.Now()
	if err := f.Inject(ctx, c.up.Env); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		_ = f.Heal(cctx, c.up.Env)
		cancel()
		c.drop(h.ID)
		c.event("error", fmt.Sprintf("inject %s on %s: %v", kind, h.Target, err))
		return 0, err
	}
	// The export gets a fresh copy: the injected fault holds its in-place state.
	cp, _ := NewFault(kind, params)
	rec := recFault{id: h.ID, kind: kind, params: maps.Clone(params), fault: cp, injected: injected}
	c.mu.Lock()
	c.recorded = append(c.recorded, rec)
	c.mu.Unlock()
	c.event("fault", fmt.Sprintf("#%d %s on %s injected", h.ID, kind, h.Target))
	hf := history.Fault{Action: history.FaultInject, Name: rec.name(), Type: kind, Target: harness.FaultTarget(f), Params: harness.FaultParams(f)}
	if m, ok := f.(faults.Measurer); ok {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if e, merr := m.Measure(mctx, c.up.Env); merr == nil {
			c.event("fault", fmt.Sprintf("#%d measured %.4g %s of %.4g configured", h.ID, e.Measured, e.Unit, e.Configured))
			hf.Configured = &history.Effect{Quantity: e.Kind, Value: e.Configured, Unit: e.Unit}
			hf.Measured = &history.Effect{Quantity: e.Kind, Value: e.Measured, Unit: e.Unit}
			c.mu.Lock()
			if j := slices.IndexFunc(c.recorded, func(r recFault) bool { return r.id == h.ID }); j >= 0 {
				c.recorded[j].effect = &result.Effect{Configured: e.Configured, Measured: e.Measured, Unit: e.Unit, Tolerance: e.Tolerance, Landed: e.Landed, Detail: e.Detail}
			}
			c.mu.Unlock()
		}
		cancel()
	}
	// Stamped with the moment of injection, although written once the effect is known.
	ev := history.FaultEvent(hf)
	ev.T = max(injected.Sub(c.began), 1)
	_ = c.hist.Write(ev)
	return h.ID, nil
}

// Heal heals the hand fault id.
func (c *Console) Heal(ctx context.Context, id int) error {
	c.mu.Lock()
	i := slices.IndexFunc(c.hand, func(h *handFault) bool { return h.ID == id })
	if i < 0 {
		c.mu.Unlock()
		return fmt.Errorf("heal fault %d: no such fault in place", id)
	}
	h := c.hand[i]
	c.mu.Unlock()
	if err := h.fault.Heal(ctx, c.up.Env); err != nil {
		return fmt.Errorf("heal fault %d: %w", id, err)
	}
	c.mu.Lock()
	name := ""
	if j := slices.IndexFunc(c.recorded, func(r recFault) bool { return r.id == id }); j >= 0 {
		c.recorded[j].healed = time.Now()
		name = c.recorded[j].name()
	}
	c.mu.Unlock()
	_ = c.hist.Write(history.FaultEvent(history.Fault{Action: history.FaultHeal, Name: name, Type: h.Kind, Target: harness.FaultTarget(h.fault)}))
	c.drop(id)
	c.event("heal", fmt.Sprintf("#%d %s on %s healed", h.ID, h.Kind, h.Target))
	return nil
}

func (c *Console) drop(id int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hand = slices.DeleteFunc(c.hand, func(h *handFault) bool { return h.ID == id })
	if err := c.recordLocked(); err != nil {
		c.addEvent("error", "update undo record: "+err.Error())
	}
}

// playing reports whether a catalog scenario is playing.
func (c *Console) playing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scen != nil && !c.scen.finished
}

// recordLocked writes the hand faults in place, and the faults of the scenario playing,
// to the undo record.
func (c *Console) recordLocked() error {
	fs := c.playUndoLocked()
	for _, h := range c.hand {
		uf := undo.Fault{Name: "console-" + strconv.Itoa(h.ID), Type: h.Kind, From: h.Since, HealBy: h.Since.Add(24 * time.Hour)}
		if t, ok := h.fault.(faults.Targeted); ok {
			uf.Targets = t.Targets()
		}
		fs = append(fs, uf)
	}
	return c.up.RecordFaults(fs)
}

// healAll heals every hand fault, then every link, whoever placed what on it.
func (c *Console) healAll(ctx context.Context) error {
	c.mu.Lock()
	hand := slices.Clone(c.hand)
	c.mu.Unlock()
	var errs []error
	for _, h := range hand {
		errs = append(errs, c.Heal(ctx, h.ID))
	}
	errs = append(errs, c.up.Links.HealAll(ctx))
	err := errors.Join(errs...)
	if err == nil && len(hand) > 0 {
		c.event("heal", "healed everything")
	}
	return err
}

// StartLoad starts (or changes the rate of) the load: the system's journeys in the
// scenario's mix at rate requests per second, until StopLoad.
func (c *Console) StartLoad(rate int) error {
	if rate <= 0 || rate > 5000 {
		return fmt.Errorf("start load: rate %d is not in 1..5000", rate)
	}
	if c.playing() {
		return errors.New("start load: a scenario is playing and drives the load; stop it first")
	}
	spec, targets, err := c.loadGen(rate)
	if err != nil {
		return err
	}
	c.endLoad(false)
	ctx, cancel := context.WithCancel(context.Background())
	lr := &loadRun{rate: rate, cancel: cancel, done: make(chan struct{}), started: time.Now()}
	c.mu.Lock()
	c.load = lr
	c.recordLoadLocked(loadStep{at: lr.started, rate: rate, mix: maps.Clone(c.mix)},
		fmt.Sprintf("load at %d req/s, mix %s", rate, mixString(c.mix)))
	c.mu.Unlock()
	go func() {
		defer close(lr.done)
		for ctx.Err() == nil {
			spec.Seed++
			if _, err := loadgen.RunTargets(ctx, spec, targets, func(r loadgen.Result) { c.result(lr, r) }, loadgen.WithEpoch(c.began)); err != nil && ctx.Err() == nil {
				c.event("error", "load: "+err.Error())
				return
			}
		}
	}()
	return nil
}

// loadGen is the load at rate for one loadChunk and the base URLs it goes to.
func (c *Console) loadGen(rate int) (loadgen.Spec, []string, error) {
	ls := c.loadSpec
	if len(ls.Targets) > 0 {
		return c.targetsLoad(rate)
	}
	clients := cmp.Or(ls.Clients, 10)
	spec := loadgen.Spec{
		Rate:       loadgen.Rate{Freq: rate, Per: time.Second},
		Duration:   loadChunk,
		MaxWorkers: cmp.Or(ls.MaxWorkers, 256),
		Timeout:    cmp.Or(time.Duration(ls.Timeout), 4*time.Second),
		Clients:    clients,
		Seed:       time.Now().UnixNano(),
		Mix:        map[string]int{},
	}
	if j, ok := c.sys.(sut.Journeyer); ok {
		tokens := make([]string, clients)
		if tk, ok := c.sys.(sut.Tokener); ok {
			for i := range tokens {
				t, err := tk.Token("console-"+strconv.Itoa(i), 24*time.Hour)
				if err != nil {
					return spec, nil, fmt.Errorf("issue token: %w", err)
				}
				tokens[i] = t
			}
		}
		spec.Journeys = j.Journeys(func(c int) string { return tokens[c%len(tokens)] })
	}
	c.mu.Lock()
	spec.Mix = mixWeights(c.mix)
	c.mu.Unlock()
	if len(spec.Mix) == 0 {
		return spec, nil, errors.New("start load: the system has no journeys and the scenario no targets")
	}
	return spec, c.sys.LoadTargets(), nil
}

// targetsLoad is the load of a scenario that names its own targets (a user's topology's):
// mapped as a run maps it (harness.Up.LoadSpec), its templated addresses rendered by the
// started system, at rate for one loadChunk.
func (c *Console) targetsLoad(rate int) (loadgen.Spec, []string, error) {
	sc := *c.base
	sc.Load = c.loadSpec
	c.mu.Lock()
	sc.Load.Mix = maps.Clone(c.mix)
	c.mu.Unlock()
	sc.Load.Rate = scenarios.Rate{Freq: rate, Per: time.Second}
	sc.Load.Ramp = nil
	sc.Load.Duration = scenarios.Duration(loadChunk)
	run := &sc
	if rd, ok := c.sys.(sut.Renderer); ok {
		r, err := rd.Render(run)
		if err != nil {
			return loadgen.Spec{}, nil, fmt.Errorf("start load: %w", err)
		}
		run = r
	}
	spec, bases, err := c.up.LoadSpec(run, time.Now().UnixNano())
	if err != nil {
		return spec, nil, fmt.Errorf("start load: %w", err)
	}
	return spec, bases, nil
}

func (c *Console) result(lr *loadRun, r loadgen.Result) {
	_ = c.hist.Write(history.RequestEvent(r))
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Cut { // aborted by the finish: in the history, not in the live figures
		return
	}
	lr.results = append(lr.results, sample{at: now, journey: r.Journey, latency: r.Latency, ok: !r.Failed()})
	lr.issued++
	c.issued++
	if r.Failed() {
		lr.failed++
		c.failed++
	}
}

// SetMix changes the weights of the journeys the hand load runs: at once, on the running
// load, or from its next start. A journey left out is not sent. The change is logged,
// written to the history and kept for the export as a step of the load.
func (c *Console) SetMix(mix map[string]float64) error {
	if err := checkMix(mix, c.journeys); err != nil {
		return err
	}
	if c.playing() {
		return errors.New("set mix: a scenario is playing and drives the load with its own mix; stop it first")
	}
	c.mu.Lock()
	c.mix = maps.Clone(mix)
	rate := 0
	if c.load != nil {
		rate = c.load.rate
	} else {
		c.addEvent("load", "mix set to "+mixString(mix)+"; the load starts with it")
	}
	c.mu.Unlock()
	if rate == 0 {
		return nil
	}
	// The load generator's schedule is fixed for a run: the running chunk ends and the
	// next starts at once with the new mix, as a rate change does.
	return c.StartLoad(rate)
}

// checkMix reports what is wrong with a mix set by hand: a name that is not one of the
// journeys, a weight below 0 or not a number, no positive weight, or weights so small
// that the load generator's whole-number shares round them all to 0.
func checkMix(mix map[string]float64, journeys []string) error {
	if len(mix) == 0 {
		return errors.New("set mix: no weights given; give each journey to send a weight above 0")
	}
	total := 0.0
	for _, name := range slices.Sorted(maps.Keys(mix)) {
		w := mix[name]
		if !slices.Contains(journeys, name) {
			return fmt.Errorf("set mix: %q is not a journey of this system (journeys: %s)", name, strings.Join(journeys, ", "))
		}
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("set mix: weight %g of %s is not a relative share; use 0 or more", w, name)
		}
		total += w
	}
	if total <= 0 {
		return errors.New("set mix: every weight is 0; give at least one journey a weight above 0")
	}
	sum := 0
	for _, n := range mixWeights(mix) {
		sum += n
	}
	if sum <= 0 {
		return errors.New("set mix: the weights are too small to share out; use weights such as 1 and 3")
	}
	return nil
}

// mixWeights is a mix as the load generator weighs it, in whole numbers: the weights
// themselves when they are whole, thousandths otherwise; the zero weights left out.
func mixWeights(mix map[string]float64) map[string]int {
	scale := 1.0
	for _, w := range mix {
		if w != math.Trunc(w) {
			scale = 1000
		}
	}
	out := make(map[string]int, len(mix))
	for k, w := range mix {
		if n := int(math.Round(w * scale)); n > 0 {
			out[k] = n
		}
	}
	return out
}

// mixString writes a mix for people: "browse 1, place_order 3".
func mixString(mix map[string]float64) string {
	parts := make([]string, 0, len(mix))
	for _, name := range slices.Sorted(maps.Keys(mix)) {
		parts = append(parts, name+" "+strconv.FormatFloat(mix[name], 'g', -1, 64))
	}
	return strings.Join(parts, ", ")
}

// loadJourneys are the names a hand load can weigh (the system's journeys, then the
// scenario's targets) and the mix it starts with: the scenario's, or each journey alike.
func loadJourneys(sys sut.System, ls scenarios.LoadSpec) ([]string, map[string]float64) {
	var names []string
	if j, ok := sys.(sut.Journeyer); ok {
		for _, jj := range j.Journeys(func(int) string { return "" }) {
			names = append(names, jj.Name())
		}
	}
	for _, t := range ls.Targets {
		names = append(names, t.Name)
	}
	mix := maps.Clone(ls.Mix)
	if len(mix) == 0 && len(names) > 0 {
		mix = map[string]float64{}
		for _, n := range names {
			mix[n] = 1
		}
	}
	return names, mix
}

// recordLoadLocked keeps a load change for the export, logs it and writes it to the
// session's history; c.mu is held.
func (c *Console) recordLoadLocked(step loadStep, text string) {
	c.loads = append(c.loads, step)
	c.addEvent("load", text)
	ev := history.NoteEvent(text)
	ev.T = max(step.at.Sub(c.began), 1)
	_ = c.hist.Write(ev)
}

// StopLoad stops the load, if any, and records the stop.
func (c *Console) StopLoad() { c.endLoad(true) }

// endLoad ends the running load, if any; stopped says the load stops rather than changes
// rate, which the session record keeps as a step of its own.
func (c *Console) endLoad(stopped bool) {
	c.mu.Lock()
	lr := c.load
	c.load = nil
	if lr != nil {
		now := time.Now()
		on := now.Sub(lr.started)
		c.loadOn += on
		c.planned += float64(lr.rate) * on.Seconds()
		if stopped && (c.scen == nil || lr != c.scen.lr) {
			c.recordLoadLocked(loadStep{at: now, rate: 0, mix: maps.Clone(c.mix)}, "load stopped")
		}
	}
	c.mu.Unlock()
	if lr != nil {
		lr.cancel()
		<-lr.done
	}
}

// chart adds one point a second, load or not: the system's gauges and the fault windows
// are worth watching without load too.
func (c *Console) chart(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var gauges []sut.Gauge
	if g, ok := c.sys.(sut.Gauger); ok {
		gauges = g.Gauges()
	}
	prevFallbacks, prevAt := math.NaN(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		c.mu.Lock()
		p := Point{T: now.UTC()}
		if c.load != nil {
			p = c.loadFigures(now)
		}
		for _, h := range c.hand {
			p.Faults = append(p.Faults, "#"+strconv.Itoa(h.ID)+" "+h.Kind+" "+h.Target)
		}
		for _, f := range c.playInPlaceLocked() {
			p.Faults = append(p.Faults, f.Name+" "+f.Type+" "+targetOfSpec(f))
		}
		p.Faulted = len(p.Faults) > 0
		fallbacks := 0.0
		for _, s := range c.metrics {
			if s.Name == metricPolicy && s.Labels["event"] == "fallback" {
				fallbacks += s.Value
			}
		}
		// A restarted instance's counter starts again from zero: no negative rate.
		if !math.IsNaN(prevFallbacks) {
			p.Fallbacks = max(0, fallbacks-prevFallbacks) / now.Sub(prevAt).Seconds()
		}
		prevFallbacks, prevAt = fallbacks, now
		p.Gauges = sumGauges(c.metrics, gauges)
		c.points = append(c.points, p)
		if len(c.points) > keepPoints {
			c.points = slices.Clone(c.points[len(c.points)-keepPoints:])
		}
		c.mu.Unlock()
	}
}

// sumGauges sums each gauge over the instances (and label sets) publishing it.
func sumGauges(metrics map[string]observe.Sample, gauges []sut.Gauge) map[string]float64 {
	if len(gauges) == 0 {
		return nil
	}
	out := map[string]float64{}
	for _, s := range metrics {
		for _, g := range gauges {
			if s.Name == g.Metric {
				out[g.Metric] += s.Value
			}
		}
	}
	return out
}

// loadFigures computes the load's figures over the last statsWindow, all together and
// per journey; c.mu is held.
func (c *Console) loadFigures(now time.Time) Point {
	lr := c.load
	from := now.Add(-statsWindow)
	i := sort.Search(len(lr.results), func(i int) bool { return !lr.results[i].at.Before(from) })
	lr.results = lr.results[i:]
	p := Point{T: now.UTC(), Figures: figures(lr.results, statsWindow)}
	byJourney := map[string][]sample{}
	for _, s := range lr.results {
		byJourney[s.journey] = append(byJourney[s.journey], s)
	}
	if len(byJourney) > 0 {
		p.Journeys = make(map[string]Figures, len(byJourney))
		for j, ss := range byJourney {
			p.Journeys[j] = figures(ss, statsWindow)
		}
	}
	return p
}

// figures are the throughput, error rate and latency percentiles (nearest rank) of the
// samples of a window.
func figures(ss []sample, window time.Duration) Figures {
	if len(ss) == 0 {
		return Figures{}
	}
	lat := make([]float64, 0, len(ss))
	errs := 0
	for _, s := range ss {
		lat = append(lat, float64(s.latency)/float64(time.Millisecond))
		if !s.ok {
			errs++
		}
	}
	slices.Sort(lat)
	secs := window.Seconds()
	return Figures{
		Throughput: float64(len(ss)) / secs,
		Errors:     float64(errs) / secs,
		P50:        lat[int(0.50*float64(len(lat)-1))],
		P99:        lat[int(0.99*float64(len(lat)-1))],
	}
}
