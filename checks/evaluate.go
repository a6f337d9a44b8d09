package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// DefaultLeaseTTL is the registry lease TTL when neither Inputs nor the scenario set one.
const DefaultLeaseTTL = 2 * time.Second

// Inputs is what Evaluate needs besides the scenario and its history.
type Inputs struct {
	// Phases are the run's phases, from Phases.
	Phases []result.Phase
	// Faults are the faults as the harness ran them (actual inject and heal, effect).
	Faults []result.Fault
	// Final is the system's state after the run; nil skips the kinds that judge it
	// (FinalJudge).
	Final *Final
	// Load is what the load generator delivered (planned and achieved rates).
	Load result.Load
	// LeaseTTL is the registry lease TTL; 0 means the scenario's, else DefaultLeaseTTL.
	LeaseTTL time.Duration
	// HistoryFrom is the byte offset in the history of the first event to judge (0: all):
	// a console session's history holds everything since the session began, and a scenario
	// played in it is judged on its own events, as a run's would be, at a cost that does not
	// grow with the session.
	HistoryFrom int64
}

// Evaluate streams the history at historyPath once and evaluates every check of sc except
// the live ones (see LiveChecks), in plan order: steady state before, before, during per
// fault, after, overall, steady state after. A check with no data to judge is returned
// Skipped, never passed. A request belongs to the phase in which it started, except that
// one still in flight at a fault's injection belongs to that fault's during phase (and
// not to before or steady_state:before), for every per-phase aggregate: error rate,
// latency, fallbacks served, failover windows; throughput alone counts requests by start,
// since it compares them with what was planned to start in the phase. Metric samples
// belong to the phase in which they were taken. Lines of the history that cannot be
// read (a truncated last line after a crash) are skipped and counted in each check's
// Detail. It returns an error only when the history cannot be read at all or ctx ends.
func Evaluate(ctx context.Context, sc *scenarios.Scenario, historyPath string, in Inputs) ([]result.Check, error) {
	if sc == nil {
		return nil, errors.New("evaluate checks: scenario is nil")
	}
	if len(in.Phases) == 0 {
		return nil, errors.New("evaluate checks: no phases; compute them with Phases")
	}
	r, err := history.OpenAt(historyPath, in.HistoryFrom)
	if err != nil {
		return nil, fmt.Errorf("evaluate checks: %w", err)
	}
	defer r.Close()
	return evaluate(ctx, sc, r, in)
}

func evaluate(ctx context.Context, sc *scenarios.Scenario, r *history.Reader, in Inputs) ([]result.Check, error) {
	e := newEngine(sc, in)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("evaluate checks: %w", err)
			}
		}
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *history.LineError
		if errors.As(err, &le) {
			e.badLines++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("evaluate checks: %w", err)
		}
		switch ev.Kind {
		case history.KindRequest:
			e.request(ev.Request)
		case history.KindMetric:
			e.metric(ev.T, ev.Metric)
		}
	}
	return e.results(), nil
}

// evaluator turns what it gathered into results; one per planned check.
type evaluator interface {
	results() []result.Check
}

type requestSink interface{ onRequest(r *loadgen.Result) }

type metricSink interface {
	onMetric(t time.Duration, m *history.Metric)
}

type engine struct {
	sc        *scenarios.Scenario
	in        Inputs
	ws        map[string]window
	loadStart time.Duration
	loadEnd   time.Duration
	faults    []faultTimes
	leaseTTL  time.Duration

	accs     map[accKey]*reqAcc
	accList  []*reqAcc
	reqSinks []requestSink
	metrics  map[string][]metricSink
	// anyMetric take every sample: kinds registered from outside, which filter their own.
	anyMetric []metricSink
	evals     []evaluator
	badLines  int
}

func newEngine(sc *scenarios.Scenario, in Inputs) *engine {
	e := &engine{sc: sc, in: in, ws: windows(in.Phases), accs: map[accKey]*reqAcc{}, metrics: map[string][]metricSink{}}
	if o, ok := e.ws[PhaseOverall]; ok {
		e.loadStart, e.loadEnd = o.start, o.end
	} else {
		first := true
		for _, w := range e.ws {
			if first || w.start < e.loadStart {
				e.loadStart = w.start
			}
			e.loadEnd = max(e.loadEnd, w.end)
			first = false
		}
	}
	e.faults = timeline(sc, in.Faults, e.loadStart, e.loadEnd)
	e.leaseTTL = in.LeaseTTL
	if e.leaseTTL <= 0 {
		e.leaseTTL = sc.System.LeaseTTL.Std()
	}
	if e.leaseTTL <= 0 {
		e.leaseTTL = DefaultLeaseTTL
	}
	for _, p := range plan(sc, in.Phases) {
		if isLive(p.check) {
			continue
		}
		e.evals = append(e.evals, e.build(p))
	}
	return e
}

func (e *engine) request(r *loadgen.Result) {
	for _, a := range e.accList {
		a.add(r)
	}
	for _, s := range e.reqSinks {
		s.onRequest(r)
	}
}

func (e *engine) metric(t time.Duration, m *history.Metric) {
	for _, s := range e.metrics[m.Name] {
		s.onMetric(t, m)
	}
	for _, s := range e.anyMetric {
		s.onMetric(t, m)
	}
}

func (e *engine) onMetric(name string, s metricSink) { e.metrics[name] = append(e.metrics[name], s) }

func (e *engine) results() []result.Check {
	var out []result.Check
	for _, ev := range e.evals {
		for _, c := range ev.results() {
			if e.badLines > 0 {
				note := fmt.Sprintf("%d unreadable history lines were skipped", e.badLines)
				c.Detail = strings.TrimSpace(c.Detail + "\n" + note)
			}
			out = append(out, c)
		}
	}
	return out
}

func (e *engine) fault(name string) (faultTimes, bool) {
	for _, f := range e.faults {
		if f.name == name {
			return f, true
		}
	}
	return faultTimes{}, false
}

// build makes the evaluator of one planned check.
func (e *engine) build(p planned) evaluator {
	w, ok := e.ws[p.phase]
	if !ok {
		return fixed{skip(p, fmt.Sprintf("phase %s was not part of this run", p.phase))}
	}
	if k, ok := kindOf(p.check); ok && k.build != nil {
		return k.build(e, p, w)
	}
	return fixed{skip(p, fmt.Sprintf("no evaluator for check kind %q", p.check.Type))}
}

// fixed is an evaluator whose results need nothing from the history.
type fixed []result.Check

func (f fixed) results() []result.Check { return f }

func newCheck(p planned) result.Check {
	return result.Check{Name: p.name, Kind: p.check.Type, Phase: p.phase}
}

func skip(p planned, msg string) result.Check {
	c := newCheck(p)
	c.Skipped, c.Message = true, msg
	return c
}

// verdictOp returns the comparison a message shows: op when it held, its negation when not.
func verdictOp(op string, held bool) string {
	if held {
		return op
	}
	switch op {
	case "<=":
		return ">"
	case ">=":
		return "<"
	case "<":
		return ">="
	case ">":
		return "<="
	case "==":
		return "!="
	case "!=":
		return "=="
	}
	return "not " + op
}

func pct(f float64) string {
	s := fmt.Sprintf("%.2f", 100*f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(v float64) string {
	if v >= 10 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

func fmtS(v float64) string { return fmt.Sprintf("%.2f s", v) }

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.4g", v)
}

// --- request accumulators: error_rate, latency, fallback header, throughput ---

type accKey struct {
	phase, journey, route string
	byStart               bool
}

// reqAcc counts the requests of one phase (see window.holds; by start time alone when
// byStart) that pass one filter.
type reqAcc struct {
	w         window
	byStart   bool
	journey   string
	route     route
	n, errs   uint64
	fallbacks uint64
	failed    map[int]uint64 // failed requests by status (0: no answer)
	lat       sketch         // every request, a failed one with its time to failure
	okLat     sketch         // successful requests only
}

func (e *engine) acc(w window, journey, rt string, byStart bool) *reqAcc {
	k := accKey{w.name, journey, rt, byStart}
	if a, ok := e.accs[k]; ok {
		return a
	}
	a := &reqAcc{w: w, byStart: byStart, journey: journey, route: parseRoute(rt), failed: map[int]uint64{}}
	e.accs[k] = a
	e.accList = append(e.accList, a)
	return a
}

func (a *reqAcc) add(r *loadgen.Result) {
	if a.byStart && !a.w.contains(r.Start) || !a.byStart && !a.w.holds(r.Start, r.End()) {
		return
	}
	if a.journey != "" && r.Journey != a.journey {
		return
	}
	if !a.route.matches(r.Method, r.Path) {
		return
	}
	if r.Cut { // the load's stop aborted it: it says nothing of the system's errors or speed
		return
	}
	a.n++
	if r.Fallback != "" {
		a.fallbacks++
	}
	a.lat.add(r.Latency)
	if r.Failed() {
		a.errs++
		a.failed[r.Status]++
		return
	}
	a.okLat.add(r.Latency)
}

func (a *reqAcc) filterWords() string {
	switch {
	case a.journey != "":
		return a.journey + " "
	case a.route.raw != "":
		return a.route.raw + " "
	}
	return ""
}

// route matches a gateway route such as "GET /items/{id}": the method (optional) and
// the path segment by segment, a {name} segment matching any one segment.
type route struct {
	raw    string
	method string
	segs   []string
}

func parseRoute(s string) route {
	s = strings.TrimSpace(s)
	if s == "" {
		return route{}
	}
	rt := route{raw: s}
	path := s
	if m, p, ok := strings.Cut(s, " "); ok {
		rt.method, path = strings.ToUpper(m), strings.TrimSpace(p)
	}
	rt.segs = strings.Split(strings.Trim(path, "/"), "/")
	return rt
}

func (rt route) matches(method, path string) bool {
	if rt.raw == "" {
		return true
	}
	if rt.method != "" && !strings.EqualFold(rt.method, method) {
		return false
	}
	if u, err := url.Parse(path); err == nil {
		path = u.Path
	}
	path = strings.Trim(path, "/")
	for i, seg := range rt.segs {
		var cur string
		cur, path, _ = strings.Cut(path, "/")
		if cur == "" && (i > 0 || seg != "") {
			return false
		}
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			continue
		}
		if cur != seg {
			return false
		}
	}
	return path == ""
}

type errorRateEval struct {
	p    planned
	spec *scenarios.ErrorRateCheck
	acc  *reqAcc
}

func (ev *errorRateEval) results() []result.Check {
	a, p := ev.acc, ev.p
	if a.n == 0 {
		return []result.Check{skip(p, fmt.Sprintf("no %srequests started %s", a.filterWords(), describePhase(p.phase)))}
	}
	c := newCheck(p)
	c.Figure = float64(a.errs) / float64(a.n)
	c.Op, c.Threshold, c.Unit = "<=", float64(ev.spec.Max), "ratio"
	c.Passed = c.Figure <= c.Threshold
	c.Message = fmt.Sprintf("%serror rate %s %s %s %s (%d of %d requests failed)",
		a.filterWords(), pct(c.Figure), verdictOp("<=", c.Passed), pct(c.Threshold), describePhase(p.phase), a.errs, a.n)
	if len(a.failed) > 0 {
		statuses := make([]int, 0, len(a.failed))
		for s := range a.failed {
			statuses = append(statuses, s)
		}
		sort.Ints(statuses)
		parts := make([]string, 0, len(statuses))
		for _, s := range statuses {
			label := fmt.Sprint(s)
			if s == 0 {
				label = "no answer"
			}
			parts = append(parts, fmt.Sprintf("%s: %d", label, a.failed[s]))
		}
		c.Detail = "failed requests by status: " + strings.Join(parts, ", ")
	}
	return []result.Check{c}
}

type latencyEval struct {
	p    planned
	spec *scenarios.LatencyCheck
	acc  *reqAcc
}

func (ev *latencyEval) results() []result.Check {
	a, p := ev.acc, ev.p
	q, ok := percentileQ(ev.spec.Percentile)
	if !ok {
		return []result.Check{skip(p, fmt.Sprintf("percentile %q is not one of p50, p90, p95, p99", ev.spec.Percentile))}
	}
	lat, what := &a.lat, "requests"
	if ev.spec.SuccessfulOnly {
		lat, what = &a.okLat, "successful requests"
	}
	if lat.n == 0 {
		if ev.spec.SuccessfulOnly {
			return []result.Check{skip(p, fmt.Sprintf("no successful %srequests started %s (%d failed)", a.filterWords(), describePhase(p.phase), a.errs))}
		}
		return []result.Check{skip(p, fmt.Sprintf("no %srequests started %s", a.filterWords(), describePhase(p.phase)))}
	}
	c := newCheck(p)
	c.Figure = ms(lat.quantile(q))
	c.Op, c.Threshold, c.Unit = "<=", ms(ev.spec.Max.Std()), "ms"
	c.Passed = c.Figure <= c.Threshold
	c.Message = fmt.Sprintf("%s%s latency %s %s %s %s", a.filterWords(), ev.spec.Percentile, fmtMS(c.Figure),
		verdictOp("<=", c.Passed), fmtMS(c.Threshold), describePhase(p.phase))
	if ev.spec.SuccessfulOnly {
		c.Message += fmt.Sprintf(" (successful requests only; %d failed ones not timed)", a.errs)
		c.Detail = fmt.Sprintf("%d %s; p50 %s, p99 %s", lat.n, what, fmtMS(ms(lat.quantile(0.5))), fmtMS(ms(lat.quantile(0.99))))
		if a.errs > 0 {
			c.Detail += fmt.Sprintf("; with the %d failed ones at their time to failure: %s %s", a.errs, ev.spec.Percentile, fmtMS(ms(a.lat.quantile(q))))
		}
		return []result.Check{c}
	}
	if a.errs > 0 {
		c.Message += fmt.Sprintf(" (%d of %d requests failed and count with their time to failure)", a.errs, a.n)
	}
	c.Detail = fmt.Sprintf("%d %s, %d failed timed to their failure; p50 %s, p99 %s", lat.n, what, a.errs,
		fmtMS(ms(lat.quantile(0.5))), fmtMS(ms(lat.quantile(0.99))))
	if a.errs > 0 && a.okLat.n > 0 {
		c.Detail += fmt.Sprintf("; successful requests alone: %s %s", ev.spec.Percentile, fmtMS(ms(a.okLat.quantile(q))))
	}
	return []result.Check{c}
}

// throughputEval compares the requests that started in a phase with those planned to
// start in it; a request in flight at an injection still counts where it started, because
// the plan it is compared with is a plan of starts.
type throughputEval struct {
	p    planned
	spec *scenarios.ThroughputCheck
	acc  *reqAcc
	w    window
	e    *engine
}

func (ev *throughputEval) results() []result.Check {
	p := ev.p
	c := newCheck(p)
	c.Op, c.Threshold, c.Unit = ">=", float64(ev.spec.Min), "ratio"
	var planned, achieved float64
	var what string
	if ld := ev.e.in.Load; p.phase == PhaseOverall && ld.PlannedRate > 0 {
		planned, achieved = ld.PlannedRate, ld.AchievedRate
		what = fmt.Sprintf("achieved %.1f req/s of %.1f planned", achieved, planned)
	} else {
		a, b := ev.w.start-ev.e.loadStart, ev.w.end-ev.e.loadStart
		planned, achieved = plannedRequests(ev.e.sc.Load, a, b), float64(ev.acc.n)
		what = fmt.Sprintf("%d requests started of %.0f planned", ev.acc.n, planned)
	}
	if planned <= 0 {
		return []result.Check{skip(p, "nothing was planned "+describePhase(p.phase))}
	}
	c.Figure = achieved / planned
	c.Passed = c.Figure >= c.Threshold
	c.Message = fmt.Sprintf("throughput %s of plan %s %s %s (%s)", pct(c.Figure), verdictOp(">=", c.Passed), pct(c.Threshold), describePhase(p.phase), what)
	return []result.Check{c}
}

// --- fault_landed ---

// faultLanded compares the recorded effect of the named fault (or of the phase's fault, or
// of every fault) with its configuration. The figure is the relative deviation of the
// measured effect (absolute when the configured value is 0), the worst one for several
// faults. A fault passes when the harness found it landed, which holds it to the fault's
// own tolerance (recorded with the effect, shown in the fault table and here: one number
// from one place); a tolerance on the check can only tighten that. A fault with no
// recorded effect fails: nothing shows it did anything.
func (e *engine) faultLanded(p planned, s *scenarios.FaultLandedCheck) result.Check {
	tol := float64(s.Tolerance) // 0: the fault's own
	var names []string
	switch {
	case s.Fault != "":
		names = []string{s.Fault}
	case p.fault != "":
		names = []string{p.fault}
	default:
		for _, f := range e.faults {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return skip(p, "the run has no fault to have landed")
	}
	c := newCheck(p)
	c.Op, c.Threshold, c.Unit = "<=", tol, "ratio"
	c.Passed = true
	var msgs, details []string
	for _, name := range names {
		f, ok := e.fault(name)
		switch {
		case !ok:
			c.Passed = false
			msgs = append(msgs, fmt.Sprintf("fault %s is not in the timeline", name))
			continue
		case f.result == nil || f.result.Effect == nil:
			c.Passed = false
			msgs = append(msgs, fmt.Sprintf("fault %s has no measured effect, so nothing shows it landed", name))
			continue
		}
		eff := f.result.Effect
		dev := relative(eff.Measured-eff.Configured, eff.Configured)
		c.Figure = max(c.Figure, dev)
		unit := ""
		if eff.Unit != "" {
			unit = " " + eff.Unit
		}
		ok = eff.Landed
		bound := "must match"
		switch {
		case tol > 0:
			ok = ok && dev <= tol
			bound = fmt.Sprintf("tolerance %s set by the check", pct(tol))
		case eff.Tolerance > 0:
			c.Threshold = max(c.Threshold, relative(eff.Tolerance, eff.Configured))
			bound = fmt.Sprintf("tolerance ± %s%s", num(eff.Tolerance), unit)
		}
		c.Passed = c.Passed && ok
		off := pct(dev)
		if eff.Configured == 0 {
			// The deviation is absolute then (a delete configures no time to replace): a
			// percentage of nothing would read as nonsense.
			off = num(dev) + unit
		}
		m := fmt.Sprintf("fault %s measured %s%s against %s%s configured (%s off, %s)",
			name, num(eff.Measured), unit, num(eff.Configured), unit, off, bound)
		switch {
		case !eff.Landed:
			m = fmt.Sprintf("fault %s did not land: ", name) + strings.TrimPrefix(m, "fault "+name+" ")
		case !ok:
			m = fmt.Sprintf("fault %s landed too far from its configuration: ", name) + strings.TrimPrefix(m, "fault "+name+" ")
		}
		msgs = append(msgs, m)
		if eff.Detail != "" {
			details = append(details, name+": "+eff.Detail)
		}
	}
	c.Message = strings.Join(msgs, "; ")
	c.Detail = strings.Join(details, "\n")
	return c
}

// relative is |d| relative to |of|, or |d| itself when of is 0.
func relative(d, of float64) float64 {
	if of == 0 {
		return math.Abs(d)
	}
	return math.Abs(d) / math.Abs(of)
}

var (
	_ evaluator   = fixed(nil)
	_ evaluator   = (*errorRateEval)(nil)
	_ evaluator   = (*latencyEval)(nil)
	_ evaluator   = (*throughputEval)(nil)
	_ evaluator   = (*breakerOpenedEval)(nil)
	_ evaluator   = (*breakerClosedEval)(nil)
	_ evaluator   = (*fallbackEval)(nil)
	_ evaluator   = (*failoverEval)(nil)
	_ evaluator   = (*metricEval)(nil)
	_ metricSink  = (*breakerOpenedEval)(nil)
	_ metricSink  = (*breakerClosedEval)(nil)
	_ metricSink  = (*fallbackEval)(nil)
	_ metricSink  = (*failoverEval)(nil)
	_ metricSink  = (*metricEval)(nil)
	_ requestSink = (*failoverEval)(nil)
)
