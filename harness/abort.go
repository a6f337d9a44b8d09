package harness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Stop conditions (abort_when). They are evaluated every AbortTick over the last
// AbortWindow of the live request stream and of the scraped metrics; the first one that
// fails stops the run at once: the load stops, every fault is healed, and the verdict is
// aborted with the condition as reason.
const (
	// DefaultAbortWindow is how far back a stop condition looks: "error rate above X" means
	// above X over the requests completed in the last two seconds.
	DefaultAbortWindow = 2 * time.Second
	// AbortTick is how often stop conditions are evaluated.
	AbortTick = 250 * time.Millisecond
	// MinAbortRequests is how many requests a window needs before a rate or percentile
	// over it can stop a run: a handful of early errors is not a trend.
	MinAbortRequests = 20
)

// AbortError is the cause of a run stopped by a stop condition.
type AbortError struct {
	// Check is the condition that fired, as a result check (figure, threshold, message).
	Check result.Check
}

// Error names the condition and what it measured.
func (e *AbortError) Error() string {
	return fmt.Sprintf("stop condition %s fired: %s", e.Check.Name, e.Check.Message)
}

// AbortConditions lists the kinds abort_when supports; others are ignored with a warning
// because they have no meaning before a run ends (consistency, breaker_closed, ...).
var AbortConditions = []string{scenarios.CheckErrorRate, scenarios.CheckLatency, scenarios.CheckMetric}

// abortReq is what a stop condition needs of one completed request.
type abortReq struct {
	end     time.Duration
	ok      bool
	latency time.Duration
	journey string
	method  string
	path    string
}

type abortSample struct {
	t time.Duration
	v float64
}

// abortMonitor holds a rolling window of requests and metric samples and evaluates the
// stop conditions over it.
type abortMonitor struct {
	window time.Duration
	conds  []scenarios.Check

	mu     sync.Mutex
	reqs   []abortReq                 // by completion, oldest first
	series map[string][]abortSample   // "component|name|labels" -> samples in the window
	meta   map[string]*history.Metric // series -> its identity
	now    func() time.Duration       // offset on the history's clock
}

// newAbortMonitor returns nil when the scenario has no stop condition the monitor can
// evaluate.
func newAbortMonitor(sc *scenarios.Scenario, window time.Duration, now func() time.Duration) *abortMonitor {
	m := &abortMonitor{window: window, series: map[string][]abortSample{}, meta: map[string]*history.Metric{}, now: now}
	for i, c := range sc.AbortWhen {
		if c.Spec == nil {
			continue
		}
		if !slices.Contains(AbortConditions, c.Type) {
			continue
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("abort_when[%d] %s", i, c.Type)
		}
		m.conds = append(m.conds, c)
	}
	if len(m.conds) == 0 {
		return nil
	}
	return m
}

// onRequest adds a completed request.
func (m *abortMonitor) onRequest(r loadgen.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs = append(m.reqs, abortReq{end: r.Start + r.Latency, ok: r.OK, latency: r.Latency, journey: r.Journey, method: r.Method, path: r.Path})
}

// onMetric adds a scraped sample taken at t.
func (m *abortMonitor) onMetric(t time.Duration, x history.Metric) {
	key := x.Component + "|" + x.Name + "|" + labelKey(x.Labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.meta[key]; !ok {
		mx := x
		m.meta[key] = &mx
	}
	m.series[key] = append(m.series[key], abortSample{t: t, v: x.Value})
}

func labelKey(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}

// trim drops what fell out of the window; a counter series keeps one sample older than
// the window to measure its increase from.
func (m *abortMonitor) trim(now time.Duration) {
	from := now - m.window
	i := sort.Search(len(m.reqs), func(i int) bool { return m.reqs[i].end >= from })
	m.reqs = slices.Delete(m.reqs, 0, i)
	for k, ss := range m.series {
		j := 0
		for j+1 < len(ss) && ss[j+1].t < from {
			j++
		}
		if ss[j].t >= from {
			j = 0
		}
		m.series[k] = slices.Delete(ss, 0, j)
	}
}

// check evaluates every condition and returns the first that fails.
func (m *abortMonitor) check() *AbortError {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	// Requests arrive out of completion order by at most a request timeout; sorting keeps
	// trimming exact.
	slices.SortStableFunc(m.reqs, func(a, b abortReq) int { return int(a.end - b.end) })
	m.trim(now)
	for _, c := range m.conds {
		var rc *result.Check
		switch s := c.Spec.(type) {
		case *scenarios.ErrorRateCheck:
			rc = m.errorRate(s)
		case *scenarios.LatencyCheck:
			rc = m.latency(s)
		case *scenarios.MetricCheck:
			rc = m.metric(s, now)
		}
		if rc != nil && !rc.Passed {
			rc.Name, rc.Kind, rc.Phase = c.Name, c.Type, "abort_when"
			return &AbortError{Check: *rc}
		}
	}
	return nil
}

func (m *abortMonitor) filter(journey, route string) []abortReq {
	var out []abortReq
	for _, r := range m.reqs {
		if journey != "" && r.journey != journey {
			continue
		}
		if route != "" && !routeMatches(route, r.method, r.path) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// routeMatches matches "GET /orders/{id}" against a request, a {name} segment matching
// any one segment (the checks package's rule).
func routeMatches(route, method, path string) bool {
	route = strings.TrimSpace(route)
	if m, p, ok := strings.Cut(route, " "); ok {
		if !strings.EqualFold(m, method) {
			return false
		}
		route = strings.TrimSpace(p)
	}
	path, _, _ = strings.Cut(path, "?")
	want := strings.Split(strings.Trim(route, "/"), "/")
	got := strings.Split(strings.Trim(path, "/"), "/")
	if len(want) != len(got) {
		return false
	}
	for i, w := range want {
		if !(strings.HasPrefix(w, "{") && strings.HasSuffix(w, "}")) && w != got[i] {
			return false
		}
	}
	return true
}

func (m *abortMonitor) errorRate(s *scenarios.ErrorRateCheck) *result.Check {
	reqs := m.filter(s.Journey, s.Route)
	if len(reqs) < MinAbortRequests {
		return nil
	}
	failed := 0
	for _, r := range reqs {
		if !r.ok {
			failed++
		}
	}
	c := &result.Check{Op: "<=", Unit: "ratio", Threshold: float64(s.Max), Figure: float64(failed) / float64(len(reqs))}
	c.Passed = c.Figure <= c.Threshold
	c.Message = fmt.Sprintf("error rate %.1f%% > %.1f%% over the last %s (%d of %d requests failed)",
		100*c.Figure, 100*c.Threshold, m.window, failed, len(reqs))
	return c
}

func (m *abortMonitor) latency(s *scenarios.LatencyCheck) *result.Check {
	var ds []time.Duration
	for _, r := range m.filter(s.Journey, s.Route) {
		if r.ok {
			ds = append(ds, r.latency)
		}
	}
	if len(ds) < MinAbortRequests {
		return nil
	}
	q := map[string]float64{"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}[s.Percentile]
	if q == 0 {
		return nil
	}
	slices.Sort(ds)
	got := ds[min(len(ds)-1, int(math.Ceil(q*float64(len(ds))))-1)]
	c := &result.Check{Op: "<=", Unit: "ms", Threshold: float64(s.Max.Std()) / 1e6, Figure: float64(got) / 1e6}
	c.Passed = got <= s.Max.Std()
	c.Message = fmt.Sprintf("%s latency %s > %s over the last %s (%d successful requests)", s.Percentile, got.Round(time.Millisecond), s.Max.Std(), m.window, len(ds))
	return c
}

// metric compares the matching series over the window: a counter by its increase in the
// window (summed over series), a gauge by the latest sample of each series, reduced as
// the check says (last and all: every series must hold; any: one must; min, max: the
// smallest or largest value must).
func (m *abortMonitor) metric(s *scenarios.MetricCheck, now time.Duration) *result.Check {
	if s.Value == nil {
		return nil
	}
	from := now - m.window
	var vals []float64
	var names []string
	counter := strings.HasSuffix(s.Metric, "_total") || strings.HasSuffix(s.Metric, "_count")
	sum, seen := 0.0, false
	for _, k := range slices.Sorted(maps.Keys(m.series)) {
		x := m.meta[k]
		if x.Name != s.Metric || !componentIs(x.Component, s.Component) || !labelsHave(x.Labels, s.Labels) {
			continue
		}
		ss := m.series[k]
		if len(ss) == 0 || ss[len(ss)-1].t < from {
			continue // a target that stopped answering has no current value
		}
		if counter {
			first, last := ss[0].v, ss[len(ss)-1].v
			if ss[0].t >= from || last < first {
				first = 0 // a series born (or restarted) in the window counts whole
			}
			sum += last - first
			seen = true
			continue
		}
		vals = append(vals, ss[len(ss)-1].v)
		names = append(names, x.Component)
	}
	if counter {
		if !seen {
			return nil
		}
		vals, names = []float64{sum}, []string{s.Component}
	}
	if len(vals) == 0 {
		return nil
	}
	want := *s.Value
	c := &result.Check{Op: s.Op, Threshold: want}
	holds := func(v float64) bool { return compareOp(v, s.Op, want) }
	bad := -1
	switch s.Reduce {
	case "any":
		if !slices.ContainsFunc(vals, holds) {
			bad = 0
		}
	case "min":
		i := argBy(vals, func(a, b float64) bool { return a < b })
		if !holds(vals[i]) {
			bad = i
		}
	case "max":
		i := argBy(vals, func(a, b float64) bool { return a > b })
		if !holds(vals[i]) {
			bad = i
		}
	default:
		for i, v := range vals {
			if !holds(v) {
				bad = i
				break
			}
		}
	}
	c.Passed = bad < 0
	if bad >= 0 {
		c.Figure = vals[bad]
		what := "value"
		if counter {
			what = "increase over the last " + m.window.String()
		}
		c.Message = fmt.Sprintf("%s %s of %s is %g, want %s %g", s.Metric, what, names[bad], vals[bad], s.Op, want)
	}
	return c
}

func argBy(vs []float64, better func(a, b float64) bool) int {
	best := 0
	for i, v := range vs {
		if better(v, vs[best]) {
			best = i
		}
	}
	return best
}

func compareOp(a float64, op string, b float64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case "==":
		return a == b
	case "!=":
		return a != b
	case ">=":
		return a >= b
	case ">":
		return a > b
	}
	return true
}

// componentIs matches a component ("order-2") against an instance or a service name.
func componentIs(component, want string) bool {
	return component == want || serviceOf(component) == want
}

func labelsHave(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// watchAbort starts evaluating the scenario's stop conditions over the run's live
// streams. The returned context is cancelled with an *AbortError when one fires; stop
// ends the evaluation (not the context) and release, deferred, frees the context. Both
// are safe to call more than once.
func (r *runner) watchAbort(ctx context.Context) (actx context.Context, stop, release func()) {
	for _, c := range r.sc.AbortWhen {
		if !slices.Contains(AbortConditions, c.Type) {
			r.o.log.Warn("abort_when: this check cannot be evaluated while the run goes; ignored", "check", c.Type, "supported", strings.Join(AbortConditions, ", "))
		}
	}
	m := newAbortMonitor(r.sc, DefaultAbortWindow, r.since)
	if m == nil {
		return ctx, func() {}, func() {}
	}
	actx, cancel := context.WithCancelCause(ctx)
	r.abort.Store(m)
	halt := m.run(actx, func(e *AbortError) {
		r.o.log.Warn("stop condition fired; healing at once", "condition", e.Check.Name, "reason", e.Check.Message)
		cancel(e)
	})
	stop = sync.OnceFunc(func() { halt(); r.abort.Store(nil) })
	return actx, stop, func() { stop(); cancel(nil) }
}

// abortedBy reports the stop condition that ended ctx, if one did.
func abortedBy(ctx context.Context) (*AbortError, bool) {
	var e *AbortError
	ok := ctx.Err() != nil && errors.As(context.Cause(ctx), &e)
	return e, ok
}

// run evaluates the conditions every AbortTick until ctx ends or stop is called, and
// calls trip once with the first condition that fails.
func (m *abortMonitor) run(ctx context.Context, trip func(*AbortError)) (stop func()) {
	if m == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(AbortTick)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if e := m.check(); e != nil {
					trip(e)
					return
				}
			}
		}
	})
	return sync.OnceFunc(func() { close(done); wg.Wait() })
}
