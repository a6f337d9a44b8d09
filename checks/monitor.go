package checks

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Stop conditions (abort_when). They are judged every AbortTick over the last
// AbortWindow of the live request stream and of the scraped metrics, by the evaluators of
// expect: the same route matching, counter detection, comparisons and component matching,
// over a window instead of a phase. The first one that fails stops the run at once.
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
	// Window is how far back the condition looked.
	Window time.Duration
}

// Error names the condition and what it measured.
func (e *AbortError) Error() string {
	return fmt.Sprintf("stop condition %s fired over the last %s: %s", e.Check.Name, e.Window, e.Check.Message)
}

// Monitor judges a scenario's stop conditions over a rolling window of a running
// system's requests and metric samples. Its methods are safe for concurrent use.
type Monitor struct {
	sc      *scenarios.Scenario
	window  time.Duration
	conds   []abortCond
	metrics map[string]bool // metric names the conditions read
	now     func() time.Duration

	mu      sync.Mutex
	reqs    []loadgen.Result // by completion once sorted
	samples []abortSample    // in arrival order
}

type abortCond struct {
	check scenarios.Check
	build func(e *engine, p planned, w window) evaluator
}

type abortSample struct {
	t time.Duration
	m history.Metric
}

// NewMonitor returns a monitor of sc's stop conditions over the last window, on the
// clock now gives (the history's), or nil when sc has none a window can judge (see
// Unjudged).
func NewMonitor(sc *scenarios.Scenario, window time.Duration, now func() time.Duration) *Monitor {
	if sc == nil {
		return nil
	}
	m := &Monitor{sc: sc, window: window, now: now, metrics: map[string]bool{}}
	for i, c := range sc.AbortWhen {
		build, ok := abortBuild(c)
		if !ok {
			continue
		}
		if c.Name == "" {
			c.Name = fmt.Sprintf("abort_when[%d] %s", i, c.Type)
		}
		if r, ok := c.Spec.(scenarios.MetricReader); ok {
			for _, n := range r.MetricNames() {
				m.metrics[n] = true
			}
		}
		m.conds = append(m.conds, abortCond{check: c, build: build})
	}
	if len(m.conds) == 0 {
		return nil
	}
	return m
}

// Unjudged lists the kinds of sc's stop conditions that no window can judge (consistency,
// breaker_closed, ...: they have no meaning before a run ends); a run ignores them.
func Unjudged(sc *scenarios.Scenario) []string {
	var out []string
	for _, c := range sc.AbortWhen {
		if _, ok := abortBuild(c); !ok && !slices.Contains(out, c.Type) {
			out = append(out, c.Type)
		}
	}
	return out
}

// Request adds a completed request.
func (m *Monitor) Request(r loadgen.Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs = append(m.reqs, r)
}

// Metric adds a sample taken at t, when a condition reads its metric.
func (m *Monitor) Metric(t time.Duration, x history.Metric) {
	if !m.metrics[x.Name] {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, abortSample{t: t, m: x})
}

// trim drops what fell out of the window [from, now]; each series keeps its last sample
// before the window, which a counter's increase is measured from.
func (m *Monitor) trim(from time.Duration) {
	// Requests arrive out of completion order by at most a request timeout; sorting keeps
	// trimming exact.
	slices.SortStableFunc(m.reqs, func(a, b loadgen.Result) int { return int(a.End() - b.End()) })
	i := sort.Search(len(m.reqs), func(i int) bool { return m.reqs[i].End() >= from })
	m.reqs = slices.Delete(m.reqs, 0, i)
	lastBefore := map[string]int{}
	for i, s := range m.samples {
		if s.t < from {
			lastBefore[seriesKey(&s.m)] = i
		}
	}
	kept := m.samples[:0]
	for i, s := range m.samples {
		if s.t >= from || lastBefore[seriesKey(&s.m)] == i {
			kept = append(kept, s)
		}
	}
	clear(m.samples[len(kept):])
	m.samples = kept
}

// Check judges every condition over the window ending now and returns the first that
// fails. A condition on requests judges nothing until the window holds MinAbortRequests
// of the requests it filters.
func (m *Monitor) Check() *AbortError {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	from := now - m.window
	m.trim(from)
	w := window{name: PhaseAbort, start: from, end: now, open: true, byEnd: true}
	for _, c := range m.conds {
		e := &engine{sc: m.sc, ws: map[string]window{w.name: w}, loadStart: from, loadEnd: now,
			leaseTTL: DefaultLeaseTTL, accs: map[accKey]*reqAcc{}, metrics: map[string][]metricSink{}}
		ev := c.build(e, planned{check: c.check, phase: PhaseAbort, name: c.check.Name}, w)
		for i := range m.reqs {
			e.request(&m.reqs[i])
		}
		for i := range m.samples {
			e.metric(m.samples[i].t, &m.samples[i].m)
		}
		if s, ok := ev.(sized); ok && s.requests() < MinAbortRequests {
			continue
		}
		for _, rc := range ev.results() {
			if !rc.Passed && !rc.Skipped {
				rc.Name, rc.Kind, rc.Phase = c.check.Name, c.check.Type, PhaseAbort
				return &AbortError{Check: rc, Window: m.window}
			}
		}
	}
	return nil
}

// sized is an evaluator judging a number of requests, which a window must hold enough of.
type sized interface{ requests() uint64 }

func (ev *errorRateEval) requests() uint64 { return ev.acc.n }

func (ev *latencyEval) requests() uint64 {
	if ev.spec.SuccessfulOnly {
		return ev.acc.okLat.n
	}
	return ev.acc.lat.n
}

// Run judges the conditions every AbortTick until ctx ends or stop is called, and calls
// trip once with the first condition that fails. stop is safe to call more than once.
func (m *Monitor) Run(ctx context.Context, trip func(*AbortError)) (stop func()) {
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
				if e := m.Check(); e != nil {
					trip(e)
					return
				}
			}
		}
	})
	return sync.OnceFunc(func() { close(done); wg.Wait() })
}

var (
	_ sized = (*errorRateEval)(nil)
	_ sized = (*latencyEval)(nil)
)
