package reports

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/influxdata/tdigest"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
)

const (
	// sketchCompression trades quantile accuracy for memory: at 50 a per-second p99 is
	// within a few percent, and a sealed sketch keeps at most ~100 centroids.
	sketchCompression = 50
	// sealAfter is how far the history's clock must move past a bucket before its sketches
	// are compacted. Requests are written when they complete, so a request that started in a
	// bucket can arrive up to its timeout later; a later one re-opens the sketch.
	sealAfter = time.Minute
	// maxBuckets bounds the timeline (a day of one-second buckets) so a corrupted offset
	// cannot make the report allocate without limit.
	maxBuckets = 24 * 3600
	// maxSeries bounds journeys and metric series for the same reason.
	maxSeries = 32
	// ctxEvery is how many events pass between context checks.
	ctxEvery = 1 << 14
)

// cell is one journey's requests in one bucket.
type reqCell struct {
	count, errs, fallbacks uint64
	live                   *tdigest.TDigest
	sealed                 tdigest.CentroidList
}

func (c *reqCell) add(ms float64) {
	if c.live == nil {
		c.live = tdigest.NewWithCompression(sketchCompression)
		if len(c.sealed) > 0 {
			c.live.AddCentroidList(c.sealed)
			c.sealed = nil
		}
	}
	c.live.Add(ms, 1)
}

func (c *reqCell) seal() {
	if c.live != nil {
		c.sealed = c.live.Centroids()
		c.live = nil
	}
}

func (c *reqCell) centroids() tdigest.CentroidList {
	c.seal()
	return c.sealed
}

// gauge is one metric series sampled into buckets, plus what convergence needs from the
// raw samples (the buckets alone would round the moment to a second).
type gauge struct {
	label      string
	vals       []float64 // max per bucket; NaN: no sample
	last       float64
	sawNonZero bool
	zeroSince  time.Duration // first zero sample after the last non-zero one
}

func (g *gauge) add(b int, t time.Duration, v float64) {
	for len(g.vals) <= b {
		g.vals = append(g.vals, math.NaN())
	}
	if math.IsNaN(g.vals[b]) || v > g.vals[b] {
		g.vals[b] = v
	}
	switch {
	case v != 0:
		g.sawNonZero = true
		g.zeroSince = -1
	case g.last != 0 || g.zeroSince < 0:
		g.zeroSince = t
	}
	g.last = v
}

// aggregator folds histories into per-bucket figures in one pass.
type aggregator struct {
	bucket   time.Duration
	journeys map[string][]reqCell
	order    []string
	breakers map[string]*gauge
	backlog  map[string]*gauge
	lag      map[string]*gauge
	faults   map[string]*faultWindow
	fOrder   []string
	sealed   int
	lastT    time.Duration
	files    int
	bad      int // lines that could not be read
	dropped  int // events outside the timeline or beyond the series bound
	requests uint64
}

func newAggregator(bucket time.Duration) *aggregator {
	if bucket <= 0 {
		bucket = time.Second
	}
	return &aggregator{
		bucket:   bucket,
		journeys: map[string][]reqCell{},
		breakers: map[string]*gauge{},
		backlog:  map[string]*gauge{},
		lag:      map[string]*gauge{},
		faults:   map[string]*faultWindow{},
	}
}

// addFile streams one history file into the aggregate. offset is when the load began on
// the history's clock.
func (a *aggregator) addFile(ctx context.Context, path string, offset time.Duration) error {
	hr, err := history.Open(path)
	if err != nil {
		return err
	}
	defer hr.Close()
	a.files++
	a.sealed = 0
	n := 0
	for {
		ev, err := hr.Next()
		if err != nil {
			var le *history.LineError
			switch {
			case errors.Is(err, io.EOF):
				return nil
			case errors.As(err, &le):
				a.bad++
				continue
			}
			return fmt.Errorf("read history: %w", err)
		}
		if n++; n%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("read history: %w", err)
			}
		}
		// The history counts from the harness's start; a reader counts from load start.
		ev.T -= offset
		if ev.Request != nil {
			ev.Request.Start -= offset
			ev.Request.Planned -= offset
		}
		a.add(ev)
	}
}

func (a *aggregator) index(t time.Duration) (int, bool) {
	if t < 0 {
		t = 0
	}
	b := int(t / a.bucket)
	return b, b < maxBuckets
}

func (a *aggregator) add(ev history.Event) {
	if ev.T > a.lastT {
		a.lastT = ev.T
	}
	switch ev.Kind {
	case history.KindRequest:
		if ev.Request != nil {
			a.addRequest(ev)
		}
	case history.KindMetric:
		if m := ev.Metric; m != nil {
			a.addMetric(ev.T, m)
		}
	case history.KindFault:
		if f := ev.Fault; f != nil {
			a.addFault(ev.T, f)
		}
	}
	// Compact buckets the clock has left well behind.
	for limit := int((ev.T - sealAfter) / a.bucket); a.sealed < limit; a.sealed++ {
		for _, cells := range a.journeys {
			if a.sealed < len(cells) {
				cells[a.sealed].seal()
			}
		}
	}
}

func (a *aggregator) addRequest(ev history.Event) {
	r := ev.Request
	b, ok := a.index(r.Start)
	if !ok {
		a.dropped++
		return
	}
	name := r.Journey
	if name == "" {
		name = "unknown"
	}
	cells, seen := a.journeys[name]
	if !seen {
		if len(a.order) >= maxSeries {
			name = "other"
			cells, seen = a.journeys[name]
		}
		if !seen {
			a.order = append(a.order, name)
		}
	}
	if b >= len(cells) {
		cells = slices.Grow(cells, b+1-len(cells))[:b+1]
	}
	c := &cells[b]
	c.count++
	if !r.OK {
		c.errs++
	}
	if r.Fallback != "" {
		c.fallbacks++
	}
	c.add(float64(r.Latency) / float64(time.Millisecond))
	a.journeys[name] = cells
	a.requests++
}

func (a *aggregator) addMetric(t time.Duration, m *history.Metric) {
	var set map[string]*gauge
	var key string
	switch m.Name {
	case "faultline_breaker_state":
		set = a.breakers
		key = m.Labels["caller"] + " → " + m.Labels["dependency"]
	case "faultline_outbox_backlog":
		set, key = a.backlog, "outbox backlog "+m.Component
	case "faultline_consumer_lag":
		set, key = a.lag, "consumer lag "+m.Component
	default:
		return
	}
	b, ok := a.index(t)
	if !ok || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		a.dropped++
		return
	}
	g := set[key]
	if g == nil {
		if len(set) >= maxSeries {
			a.dropped++
			return
		}
		g = &gauge{label: key, zeroSince: -1}
		set[key] = g
	}
	g.add(b, t, m.Value)
}

// faultWindow is when a fault was active, as the history recorded it.
type faultWindow struct {
	Name       string
	Start, End time.Duration // End 0: not healed within the record
	Targets    []string
	Link       bool // the target was a caller->callee link
	// Color is 1 + the palette index of the design the window belongs to on a comparison,
	// so each design's windows are told apart; 0 is the fault red of a run's page.
	Color int
}

func (a *aggregator) addFault(t time.Duration, f *history.Fault) {
	if f.Error != "" {
		return
	}
	w := a.faults[f.Name]
	if w == nil {
		if len(a.faults) >= maxSeries {
			a.dropped++
			return
		}
		w = &faultWindow{Name: f.Name}
		if from, to, ok := strings.Cut(f.Target, "->"); ok {
			w.Targets, w.Link = []string{from, to}, true
		} else if f.Target != "" {
			w.Targets = []string{f.Target}
		}
		a.faults[f.Name] = w
		a.fOrder = append(a.fOrder, f.Name)
	}
	switch f.Action {
	case history.FaultInject:
		if w.Start == 0 || t < w.Start {
			w.Start = t
		}
	case history.FaultHeal:
		if t > w.End {
			w.End = t
		}
	}
}

// line is one plotted series: a value per bucket, NaN where there is no data.
type line struct {
	Name string
	Y    []float64
}

// timeline is the finished aggregate the charts draw.
type timeline struct {
	Bucket     time.Duration
	Buckets    int
	End        time.Duration // the right edge of every time chart
	Requests   uint64
	Throughput []line // req/s per journey
	AllRate    line   // req/s over every journey
	AllErrors  line   // % over every journey
	ErrorRate  []line // % per journey (NaN without requests)
	Fallbacks  []line // fallback answers/s per journey
	Latency    []line // p50, p95, p99 in ms over every journey
	Breakers   []line
	Backlog    []line // outbox backlog and consumer lag
	Faults     []faultWindow
	// Convergence is the first moment after the last heal when every backlog and lag
	// series read zero and stayed there; Converged is false when one ended non-zero.
	Convergence time.Duration
	Converged   bool
	BadLines    int
	Dropped     int
}

// finish computes the timeline. repeats divides counts when several runs of one design
// were pooled, so throughput stays per run. run supplies fault windows and the duration.
func (a *aggregator) finish(run *result.Run, repeats int) *timeline {
	if repeats < 1 {
		repeats = 1
	}
	tl := &timeline{Bucket: a.bucket, Requests: a.requests, BadLines: a.bad, Dropped: a.dropped}
	n, reqBuckets := 0, 0
	for _, cells := range a.journeys {
		reqBuckets = max(reqBuckets, len(cells))
	}
	n = reqBuckets
	for _, set := range []map[string]*gauge{a.breakers, a.backlog, a.lag} {
		for _, g := range set {
			n = max(n, len(g.vals))
		}
	}
	end := a.lastT
	if run != nil {
		end = max(end, onLoadClock(run, run.Duration))
	}
	n = max(n, int((end+a.bucket-1)/a.bucket))
	tl.Buckets = n
	tl.End = max(end, time.Duration(n)*a.bucket)
	perSec := float64(time.Second) / float64(a.bucket) / float64(repeats)

	names := slices.Clone(a.order)
	slices.Sort(names)
	overall := make([]*tdigest.TDigest, n)
	counts, errs := make([]uint64, n), make([]uint64, n)
	for _, name := range names {
		cells := a.journeys[name]
		tp, er, fb := nanLine(name, n), nanLine(name, n), nanLine(name, n)
		// Past the last request the load had stopped: no line, rather than a fall to zero.
		for i := 0; i < reqBuckets; i++ {
			tp.Y[i] = 0
			fb.Y[i] = 0
			if i >= len(cells) || cells[i].count == 0 {
				continue
			}
			c := &cells[i]
			counts[i] += c.count
			errs[i] += c.errs
			tp.Y[i] = float64(c.count) * perSec
			fb.Y[i] = float64(c.fallbacks) * perSec
			er.Y[i] = 100 * float64(c.errs) / float64(c.count)
			if overall[i] == nil {
				overall[i] = tdigest.NewWithCompression(sketchCompression)
			}
			overall[i].AddCentroidList(c.centroids())
		}
		tl.Throughput = append(tl.Throughput, tp)
		tl.ErrorRate = append(tl.ErrorRate, er)
		tl.Fallbacks = append(tl.Fallbacks, fb)
	}
	tl.AllRate, tl.AllErrors = nanLine("all", n), nanLine("all", n)
	for i := range reqBuckets {
		tl.AllRate.Y[i] = float64(counts[i]) * perSec
		if counts[i] > 0 {
			tl.AllErrors.Y[i] = 100 * float64(errs[i]) / float64(counts[i])
		}
	}
	if len(names) > 0 {
		qs := []struct {
			name string
			q    float64
		}{{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}}
		for _, q := range qs {
			l := nanLine(q.name, n)
			for i, d := range overall {
				if d != nil {
					l.Y[i] = d.Quantile(q.q)
				}
			}
			tl.Latency = append(tl.Latency, l)
		}
	}
	tl.Breakers = gaugeLines(a.breakers, n)
	tl.Backlog = append(gaugeLines(a.backlog, n), gaugeLines(a.lag, n)...)
	tl.Faults = a.windows(run)

	if len(a.backlog)+len(a.lag) > 0 {
		var lastHeal time.Duration
		for _, f := range tl.Faults {
			lastHeal = max(lastHeal, f.End)
		}
		tl.Converged = true
		tl.Convergence = lastHeal
		for _, set := range []map[string]*gauge{a.backlog, a.lag} {
			for _, g := range set {
				if g.last != 0 {
					tl.Converged = false
				}
				if g.sawNonZero && g.zeroSince > tl.Convergence {
					tl.Convergence = g.zeroSince
				}
			}
		}
	}
	return tl
}

// windows merges the result's fault timings (authoritative) with the history's, from load
// start: a fault never injected is shown where the scenario planned it.
func (a *aggregator) windows(run *result.Run) []faultWindow {
	var out []faultWindow
	seen := map[string]bool{}
	if run != nil {
		for _, f := range run.Faults {
			w := faultWindow{Name: f.Name, Start: f.At.Std(), Targets: f.Targets}
			if f.Injected > 0 {
				w.Start = onLoadClock(run, f.Injected)
			}
			if f.Healed > 0 {
				w.End = onLoadClock(run, f.Healed)
			}
			if h := a.faults[f.Name]; h != nil {
				w.Link = h.Link
				if len(w.Targets) == 0 {
					w.Targets = h.Targets
				}
			}
			out = append(out, w)
			seen[f.Name] = true
		}
	}
	for _, name := range a.fOrder {
		if !seen[name] {
			out = append(out, *a.faults[name])
		}
	}
	return out
}

func nanLine(name string, n int) line {
	y := make([]float64, n)
	for i := range y {
		y[i] = math.NaN()
	}
	return line{Name: name, Y: y}
}

func gaugeLines(set map[string]*gauge, n int) []line {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]line, 0, len(keys))
	for _, k := range keys {
		g := set[k]
		l := nanLine(g.label, n)
		copy(l.Y, g.vals)
		out = append(out, l)
	}
	return out
}
