package checks

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Metric names the evaluator reads (docs/ARCHITECTURE.md).
const (
	metricBreakerState = "faultline_breaker_state"
	metricPolicyEvents = "faultline_policy_events_total"
	metricDiscovery    = "faultline_discovery_instances"
)

// Breaker states as faultline_breaker_state reports them (docs/ARCHITECTURE.md): the one
// reading of the gauge for the checks, the console and the report.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// BreakerStateName names a faultline_breaker_state value: "closed", "half-open", "open",
// or "unknown" for a value the protocol does not define.
func BreakerStateName(v float64) string {
	switch v {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// seriesKey identifies one time series: the instance and its labels.
func seriesKey(m *history.Metric) string {
	if len(m.Labels) == 0 {
		return m.Component
	}
	return m.Component + history.LabelString(m.Labels)
}

// isCounter reports a cumulative metric, which checks read as its increase within the
// phase rather than as its raw value since the process started.
func isCounter(name string) bool {
	return strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_bucket")
}

// counterSum adds up the increase of counter series within a window. A series' increase
// is counted from its last sample before the window; a series first seen inside the
// window is a process that started then (counters start at zero), so its whole value
// counts; a value going down is a restart, after which the new value counts.
type counterSum struct {
	w     window
	prev  map[string]float64
	total float64
	seen  bool // a sample fell inside the window
}

// add folds in a sample and reports whether it fell inside the window.
func (c *counterSum) add(t time.Duration, key string, v float64) bool {
	if c.prev == nil {
		c.prev = map[string]float64{}
	}
	if t < c.w.start {
		c.prev[key] = v
		return false
	}
	if !c.w.contains(t) {
		return false
	}
	prev, ok := c.prev[key]
	switch {
	case !ok || v < prev:
		c.total += v
	default:
		c.total += v - prev
	}
	c.prev[key] = v
	c.seen = true
	return true
}

// --- breaker_opened ---

// faultWindow is when a breaker opening counts as a fault's: from the injection to the
// heal, and up to grace after the heal for an opening that may have happened before the
// heal but was sampled after it.
type faultWindow struct {
	fault        string
	inject, heal time.Duration
	grace        time.Duration
}

// openingTracker finds the first sample, per instance of one breaker, showing the breaker
// not closed (open, or half-open with want == BreakerHalfOpen) inside a fault's window.
// The breaker is sampled, so the state changed somewhere between two samples: an opening
// first seen after the heal counts only when it was seen within the grace and no sample
// of that instance taken at or after the heal showed it in another state first (then the
// change may have happened before the heal); otherwise it happened after the heal and is
// not the fault's doing.
type openingTracker struct {
	w          faultWindow
	halfOpen   bool // a half-open sample counts as opened (it was open before)
	lastOther  map[string]time.Duration
	found      bool
	at         time.Duration // sample time of the counted opening
	late       time.Duration // first opening seen after the heal that did not count
	lateSeen   bool
	n          int // samples inside the window that did not count as an opening
	seenBefore bool
}

func newOpeningTracker(w faultWindow, halfOpen bool) *openingTracker {
	return &openingTracker{w: w, halfOpen: halfOpen, lastOther: map[string]time.Duration{}}
}

func (o *openingTracker) isOpen(v float64) bool {
	return v == BreakerOpen || (o.halfOpen && v == BreakerHalfOpen)
}

func (o *openingTracker) add(t time.Duration, comp string, v float64) {
	if o.found {
		return
	}
	if t < o.w.inject {
		o.seenBefore = true
		if !o.isOpen(v) {
			o.lastOther[comp] = t
		}
		return
	}
	if !o.isOpen(v) {
		o.lastOther[comp] = t
		if t <= o.w.heal+o.w.grace {
			o.n++
		}
		return
	}
	other, ok := o.lastOther[comp]
	counts := t <= o.w.heal || (t <= o.w.heal+o.w.grace && (!ok || other < o.w.heal))
	if counts {
		o.found, o.at = true, t
		return
	}
	if !o.lateSeen {
		o.late, o.lateSeen = t, true
	}
}

// describe says the window in words on the load's clock.
func (o *openingTracker) describe(e *engine) string {
	return fmt.Sprintf("%s to %s, grace %s", e.clock(o.w.inject), e.clock(o.w.heal), fmtS(secs(o.w.grace)))
}

// clock renders an instant of the run's clock on the user's clock: seconds from the load's
// start, as the scenario file counts them.
func (e *engine) clock(t time.Duration) string { return fmtS(secs(t - e.loadStart)) }

type breakerOpenedEval struct {
	p     planned
	e     *engine
	spec  *scenarios.BreakerOpenedCheck
	fault faultTimes
	open  *openingTracker
}

func (e *engine) phaseFault(p planned) (faultTimes, bool) {
	if p.fault != "" {
		return e.fault(p.fault)
	}
	if len(e.faults) == 0 {
		return faultTimes{}, false
	}
	first := e.faults[0]
	for _, f := range e.faults[1:] {
		if f.inject < first.inject {
			first = f
		}
	}
	return first, true
}

func (e *engine) buildBreakerOpened(p planned, s *scenarios.BreakerOpenedCheck) evaluator {
	f, ok := e.phaseFault(p)
	if !ok {
		return fixed{skip(p, "the run has no fault for the breaker to open on")}
	}
	w := faultWindow{fault: f.name, inject: f.inject, heal: f.heal, grace: s.GraceOrDefault().Std()}
	ev := &breakerOpenedEval{p: p, e: e, spec: s, fault: f, open: newOpeningTracker(w, false)}
	e.onMetric(metricBreakerState, ev)
	return ev
}

func (ev *breakerOpenedEval) onMetric(t time.Duration, m *history.Metric) {
	if m.Labels["caller"] != ev.spec.Caller || m.Labels["dependency"] != ev.spec.Dependency {
		return
	}
	ev.open.add(t, m.Component, m.Value)
}

func (ev *breakerOpenedEval) results() []result.Check {
	c := newCheck(ev.p)
	o := ev.open
	edge := ev.spec.Caller + "->" + ev.spec.Dependency
	c.Op, c.Threshold, c.Unit = "<=", secs(ev.spec.Within.Std()), "s"
	if !o.found {
		c.Figure, c.Never = -1, true
		if o.n == 0 && !o.lateSeen {
			c.Skipped = true
			c.Message = fmt.Sprintf("breaker %s was never sampled while %s was active (%s; no %s samples)", edge, ev.fault.name, o.describe(ev.e), metricBreakerState)
			return []result.Check{c}
		}
		c.Message = fmt.Sprintf("breaker %s did not open while %s was active (%s; %d samples, none open)", edge, ev.fault.name, o.describe(ev.e), o.n)
		if o.lateSeen {
			c.Message += fmt.Sprintf("; it opened at %s, after the heal", ev.e.clock(o.late))
		}
		return []result.Check{c}
	}
	c.Figure = secs(o.at - ev.fault.inject)
	c.Passed = c.Figure <= c.Threshold
	where := ""
	if o.at > ev.fault.heal {
		where = fmt.Sprintf(" (seen open at %s; grace %s after the heal at %s)", ev.e.clock(o.at), fmtS(secs(o.w.grace)), ev.e.clock(ev.fault.heal))
	} else {
		where = fmt.Sprintf(" (seen open at %s)", ev.e.clock(o.at))
	}
	c.Message = fmt.Sprintf("breaker %s opened %s after %s was injected%s, %s %s", edge, fmtS(c.Figure), ev.fault.name, where, verdictOp("<=", c.Passed), fmtS(c.Threshold))
	return []result.Check{c}
}

// --- breaker_closed ---

// breakerClosedEval finds the first sample after the heal at which every instance that
// ever reported the edge's breaker was last seen closed. The breaker must have opened
// (or half-opened) while a fault it recovers from was active (see openingTracker), unless
// the check says it may not open: closing proves recovery only after an opening.
type breakerClosedEval struct {
	p      planned
	e      *engine
	spec   *scenarios.BreakerClosedCheck
	heal   time.Duration
	fault  string
	opens  []*openingTracker  // one per fault the breaker may have opened on
	last   map[string]float64 // by component
	closed time.Duration
	found  bool
	after  int
}

func (e *engine) buildBreakerClosed(p planned, s *scenarios.BreakerClosedCheck) evaluator {
	ev := &breakerClosedEval{p: p, e: e, spec: s, last: map[string]float64{}}
	grace := scenarios.DefaultBreakerGrace.Std()
	if p.fault != "" {
		f, ok := e.fault(p.fault)
		if !ok {
			return fixed{skip(p, fmt.Sprintf("fault %s is not in the timeline", p.fault))}
		}
		ev.heal, ev.fault = f.heal, f.name
		ev.opens = append(ev.opens, newOpeningTracker(faultWindow{fault: f.name, inject: f.inject, heal: f.heal, grace: grace}, true))
	} else {
		if len(e.faults) == 0 {
			return fixed{skip(p, "the run has no fault for the breaker to recover from")}
		}
		for _, f := range e.faults {
			if f.heal >= ev.heal {
				ev.heal, ev.fault = f.heal, f.name
			}
			ev.opens = append(ev.opens, newOpeningTracker(faultWindow{fault: f.name, inject: f.inject, heal: f.heal, grace: grace}, true))
		}
	}
	e.onMetric(metricBreakerState, ev)
	return ev
}

func (ev *breakerClosedEval) onMetric(t time.Duration, m *history.Metric) {
	if m.Labels["caller"] != ev.spec.Caller || m.Labels["dependency"] != ev.spec.Dependency {
		return
	}
	for _, o := range ev.opens {
		o.add(t, m.Component, m.Value)
	}
	ev.last[m.Component] = m.Value
	if t < ev.heal || ev.found {
		return
	}
	ev.after++
	for _, v := range ev.last {
		if v != BreakerClosed {
			return
		}
	}
	ev.closed, ev.found = t-ev.heal, true
}

// opened reports whether the breaker opened while one of its faults was active.
func (ev *breakerClosedEval) opened() bool {
	for _, o := range ev.opens {
		if o.found {
			return true
		}
	}
	return false
}

func (ev *breakerClosedEval) windows() string {
	parts := make([]string, 0, len(ev.opens))
	for _, o := range ev.opens {
		parts = append(parts, fmt.Sprintf("%s (%s)", o.w.fault, o.describe(ev.e)))
	}
	return strings.Join(parts, ", ")
}

func (ev *breakerClosedEval) results() []result.Check {
	c := newCheck(ev.p)
	edge := ev.spec.Caller + "->" + ev.spec.Dependency
	c.Op, c.Threshold, c.Unit = "<=", secs(ev.spec.Within.Std()), "s"
	if ev.found {
		c.Figure = secs(ev.closed)
		c.Passed = c.Figure <= c.Threshold
		closedAt := ev.e.clock(ev.heal + ev.closed)
		if !ev.opened() && !ev.spec.MayNotOpen {
			c.Passed = false
			c.Message = fmt.Sprintf("breaker %s never opened while %s was active, so its being closed %s after the heal (at %s) shows no recovery; say may_not_open: true if it may stay closed",
				edge, ev.windows(), fmtS(c.Figure), closedAt)
			return []result.Check{c}
		}
		c.Message = fmt.Sprintf("breaker %s closed on every instance %s after %s was healed (at %s), %s %s", edge, fmtS(c.Figure), ev.fault, closedAt, verdictOp("<=", c.Passed), fmtS(c.Threshold))
		if !ev.opened() {
			c.Message += "; it never opened, which may_not_open allows"
		}
		return []result.Check{c}
	}
	c.Figure, c.Never = -1, true
	if ev.after == 0 {
		c.Skipped = true
		c.Message = fmt.Sprintf("breaker %s was never sampled after %s was healed at %s (no %s samples)", edge, ev.fault, ev.e.clock(ev.heal), metricBreakerState)
		return []result.Check{c}
	}
	var half, open []string
	for _, comp := range sortedKeys(ev.last) {
		switch ev.last[comp] {
		case BreakerHalfOpen:
			half = append(half, comp)
		case BreakerOpen:
			open = append(open, comp)
		}
	}
	msg := fmt.Sprintf("breaker %s did not close after %s was healed", edge, ev.fault)
	if len(open) > 0 {
		msg += "; still open on " + strings.Join(open, ", ")
	}
	if len(half) > 0 {
		msg += "; still half-open on " + strings.Join(half, ", ") +
			" (a half-open breaker closes only after trial calls succeed, and no traffic reached it: it counts as not closed)"
	}
	c.Message = msg
	return []result.Check{c}
}

// --- fallback_served ---

// fallbackEval counts fallbacks two ways: responses with an X-Fallback header in the
// phase (when the caller is the gateway or not named) and the increase of
// faultline_policy_events_total{event="fallback"} for the edge. The figure is the larger,
// both are in the detail.
type fallbackEval struct {
	p       planned
	spec    *scenarios.FallbackServedCheck
	acc     *reqAcc // nil when the header cannot tell this caller's fallbacks
	counter counterSum
	want    map[string]string
}

func (e *engine) buildFallback(p planned, w window, s *scenarios.FallbackServedCheck) evaluator {
	ev := &fallbackEval{p: p, spec: s, counter: counterSum{w: w}, want: map[string]string{"event": "fallback"}}
	if s.Caller == "" || s.Caller == "gateway" {
		ev.acc = e.acc(w, "", "", false)
	}
	if s.Caller != "" {
		ev.want["caller"] = s.Caller
	}
	if s.Dependency != "" {
		ev.want["dependency"] = s.Dependency
	}
	e.onMetric(metricPolicyEvents, ev)
	return ev
}

func (ev *fallbackEval) onMetric(t time.Duration, m *history.Metric) {
	if labelsMatch(m.Labels, ev.want) {
		ev.counter.add(t, seriesKey(m), m.Value)
	}
}

func (ev *fallbackEval) results() []result.Check {
	c := newCheck(ev.p)
	c.Op, c.Threshold, c.Unit = ">=", float64(ev.spec.Min), "count"
	var parts []string
	if ev.acc != nil {
		c.Figure = float64(ev.acc.fallbacks)
		parts = append(parts, fmt.Sprintf("%d of %d responses carried %s", ev.acc.fallbacks, ev.acc.n, loadgen.HeaderFallback))
	}
	if ev.counter.seen {
		c.Figure = max(c.Figure, ev.counter.total)
		parts = append(parts, fmt.Sprintf("%s%s rose by %s", metricPolicyEvents, history.LabelString(ev.want), num(ev.counter.total)))
	}
	if len(parts) == 0 {
		c.Skipped = true
		c.Message = fmt.Sprintf("no %s samples %s to count fallbacks from", metricPolicyEvents, describePhase(ev.p.phase))
		return []result.Check{c}
	}
	c.Passed = c.Figure >= c.Threshold
	edge := ""
	if ev.spec.Caller != "" || ev.spec.Dependency != "" {
		edge = " by " + ev.spec.Caller + "->" + ev.spec.Dependency
	}
	c.Message = fmt.Sprintf("%s fallbacks served%s %s, %s %s", num(c.Figure), edge, describePhase(ev.p.phase), verdictOp(">=", c.Passed), num(c.Threshold))
	c.Detail = strings.Join(parts, "; ")
	return []result.Check{c}
}

// --- failover ---

// failoverEval measures the client-visible error window of a crash: from the completion
// of the first failed request to the completion of the last one, among the requests of
// the fault's phase: those that started during the fault and those in flight at its
// injection (successes in between do not split it, so the window is an upper bound on
// the outage clients saw). With lease_expiry_observed it also finds the
// first sample, after the injection, at which some component's
// faultline_discovery_instances{service} fell below its last value before the injection.
type failoverEval struct {
	p       planned
	spec    *scenarios.FailoverCheck
	w       window
	fault   faultTimes
	service string
	ttl     time.Duration

	n, fails    uint64
	first, last time.Duration

	baseline map[string]float64
	dropped  time.Duration
	drop     bool
	from, to float64
	where    string
}

func (e *engine) buildFailover(p planned, w window, s *scenarios.FailoverCheck) evaluator {
	f, ok := e.phaseFault(p)
	if !ok {
		return fixed{skip(p, "the run has no fault to fail over from")}
	}
	ev := &failoverEval{p: p, spec: s, w: w, fault: f, service: s.Service, ttl: e.ttl(), baseline: map[string]float64{}}
	if ev.service == "" && len(f.targets) > 0 {
		ev.service = scenarios.ServiceOf(f.targets[0])
	}
	e.reqSinks = append(e.reqSinks, ev)
	if s.LeaseExpiryObserved {
		e.onMetric(metricDiscovery, ev)
	}
	return ev
}

func (e *engine) ttl() time.Duration { return e.leaseTTL }

func (ev *failoverEval) onRequest(r *loadgen.Result) {
	if !ev.w.holds(r.Start, r.End()) {
		return
	}
	ev.n++
	if r.OK {
		return
	}
	end := r.End()
	if ev.fails == 0 {
		ev.first, ev.last = end, end
	}
	ev.first, ev.last = min(ev.first, end), max(ev.last, end)
	ev.fails++
}

func (ev *failoverEval) onMetric(t time.Duration, m *history.Metric) {
	if ev.drop || m.Labels["service"] != ev.service {
		return
	}
	if t < ev.fault.inject {
		ev.baseline[m.Component] = m.Value
		return
	}
	if b, ok := ev.baseline[m.Component]; ok && m.Value < b {
		ev.dropped, ev.drop = t-ev.fault.inject, true
		ev.from, ev.to, ev.where = b, m.Value, m.Component
	}
}

func (ev *failoverEval) results() []result.Check {
	c := newCheck(ev.p)
	c.Op, c.Threshold, c.Unit = "<=", secs(ev.spec.MaxErrorWindow.Std()), "s"
	if ev.fails > 0 {
		c.Figure = secs(ev.last - ev.first)
	}
	c.Passed = c.Figure <= c.Threshold
	c.Message = fmt.Sprintf("clients saw errors for %s after %s (%d failed requests) %s, %s %s",
		fmtS(c.Figure), ev.fault.name, ev.fails, describePhase(ev.p.phase), verdictOp("<=", c.Passed), fmtS(c.Threshold))
	if ev.n == 0 {
		c.Passed, c.Skipped = false, true
		c.Message = fmt.Sprintf("no requests started %s, so no client could see the failover", describePhase(ev.p.phase))
	}
	out := []result.Check{c}
	if !ev.spec.LeaseExpiryObserved {
		return out
	}
	l := newCheck(ev.p)
	l.Name += "/lease_expiry"
	bound := ev.ttl + time.Second
	l.Op, l.Threshold, l.Unit = "<=", secs(bound), "s"
	switch {
	case ev.service == "":
		l.Skipped = true
		l.Message = "no service to watch: set service on the failover check"
	case len(ev.baseline) == 0:
		l.Skipped = true
		l.Message = fmt.Sprintf("no %s{service=%q} samples before %s was injected", metricDiscovery, ev.service, ev.fault.name)
	case !ev.drop:
		l.Figure, l.Never = -1, true
		l.Message = fmt.Sprintf("the lost %s instance was never seen leaving any discovery cache after %s (lease TTL %s)", ev.service, ev.fault.name, ev.ttl)
	default:
		l.Figure = secs(ev.dropped)
		l.Passed = l.Figure <= l.Threshold
		l.Message = fmt.Sprintf("%s dropped from %s to %s %s instances %s after %s, %s lease TTL + 1 s = %s",
			ev.where, num(ev.from), num(ev.to), ev.service, fmtS(l.Figure), ev.fault.name, verdictOp("<=", l.Passed), fmtS(l.Threshold))
	}
	return append(out, l)
}

// --- metric ---

// metricEval reduces the samples of one metric within the phase. For a gauge each sample
// of each matching series counts; for a counter (…_total, …_count, …_bucket) the samples
// are the running sum, over the matching series, of their increase within the phase (see
// counterSum), so "retries <= 60" means retries during the phase across all instances.
// Reductions: last (every series' last sample must satisfy, the default), min, max, all
// (every sample), any (some sample).
type metricEval struct {
	p       planned
	spec    *scenarios.MetricCheck
	w       window
	counter *counterSum

	n           int
	min, max    float64
	last        map[string]lastSample
	firstBad    *float64
	firstGood   *float64
	latestValue float64
}

type lastSample struct {
	t time.Duration
	v float64
}

func (e *engine) buildMetric(p planned, w window, s *scenarios.MetricCheck) evaluator {
	if s.Value == nil {
		return fixed{skip(p, "metric check has no value to compare with")}
	}
	ev := &metricEval{p: p, spec: s, w: w, last: map[string]lastSample{}}
	if isCounter(s.Metric) {
		ev.counter = &counterSum{w: w}
	}
	e.onMetric(s.Metric, ev)
	return ev
}

func compare(a float64, op string, b float64) bool {
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
	return false
}

func (ev *metricEval) onMetric(t time.Duration, m *history.Metric) {
	if !componentMatches(m.Component, ev.spec.Component) || !labelsMatch(m.Labels, ev.spec.Labels) {
		return
	}
	key, v := seriesKey(m), m.Value
	if ev.counter != nil {
		if !ev.counter.add(t, key, v) {
			return
		}
		key, v = "sum", ev.counter.total
	} else if !ev.w.contains(t) {
		return
	}
	if ev.n == 0 {
		ev.min, ev.max = v, v
	}
	ev.n++
	ev.min, ev.max = min(ev.min, v), max(ev.max, v)
	ev.last[key] = lastSample{t, v}
	ev.latestValue = v
	ok := compare(v, ev.spec.Op, *ev.spec.Value)
	if !ok && ev.firstBad == nil {
		ev.firstBad = &v
	}
	if ok && ev.firstGood == nil {
		ev.firstGood = &v
	}
}

func (ev *metricEval) results() []result.Check {
	s, p := ev.spec, ev.p
	c := newCheck(p)
	c.Op, c.Threshold = s.Op, *s.Value
	series := s.Metric + history.LabelString(s.Labels)
	if ev.n == 0 {
		return []result.Check{skip(p, fmt.Sprintf("no samples of %s from %s %s", series, s.Component, describePhase(p.phase)))}
	}
	reduce := s.Reduce
	if reduce == "" {
		reduce = "last"
	}
	what := reduce
	switch reduce {
	case "min":
		c.Figure = ev.min
		c.Passed = compare(c.Figure, s.Op, c.Threshold)
	case "max":
		c.Figure = ev.max
		c.Passed = compare(c.Figure, s.Op, c.Threshold)
	case "all":
		c.Passed, c.Figure = ev.firstBad == nil, ev.latestValue
		if !c.Passed {
			c.Figure, what = *ev.firstBad, "a sample"
		} else {
			what = "every sample, the last"
		}
	case "any":
		c.Passed, c.Figure = ev.firstGood != nil, ev.latestValue
		if c.Passed {
			c.Figure, what = *ev.firstGood, "a sample"
		} else {
			what = "no sample; the last"
		}
	default: // last
		keys := sortedKeys(ev.last)
		sort.SliceStable(keys, func(i, j int) bool { return ev.last[keys[i]].t < ev.last[keys[j]].t })
		c.Passed, c.Figure = true, ev.last[keys[len(keys)-1]].v
		for _, k := range keys {
			if v := ev.last[k].v; !compare(v, s.Op, c.Threshold) {
				c.Passed, c.Figure = false, v
				if len(keys) > 1 {
					what = "last of " + k
				}
				break
			}
		}
	}
	kind := ""
	if ev.counter != nil {
		kind = " (increase within the phase, summed over instances)"
	}
	c.Message = fmt.Sprintf("%s of %s on %s %s was %s, %s %s%s", what, series, s.Component, describePhase(p.phase),
		num(c.Figure), verdictOp(s.Op, c.Passed), num(c.Threshold), kind)
	c.Detail = fmt.Sprintf("%d samples, min %s, max %s", ev.n, num(ev.min), num(ev.max))
	return []result.Check{c}
}
