package checks

import (
	"context"
	"fmt"
	"time"

	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// A check kind is registered once, by name, with scenarios.RegisterCheck: its spec is
// decoded and validated by the scenarios package (which must not import this one, so a
// scenario can be checked without anything able to run it), and its spec carries the
// capabilities the scenarios package asks about (scenarios.Placed, AutoNamed, Templated,
// MetricReader). What judges a run lives here, as optional capabilities of the same spec,
// the way faults carry theirs (faults.Measurer, WindowMeasurer):
//
//   - Evaluable: judged from the run's history, phase by phase (expect, steady_state);
//   - Abortable: also judged over the last window of a running system (abort_when);
//   - Live: run against the live system when its phase ends (like http_probe);
//   - FinalJudge: judged from the system's own state after the run (sut.State), with the
//     run's requests beside it (the reference system's consistency kind).
//
// The built-in specs live in scenarios and cannot implement these interfaces (scenarios is
// imported here), so their evaluators are registered by kind in builtins below. A kind
// registered from outside implements the interfaces on its own spec and needs no second
// registration.

// Phase is one placement of a check in a run: the phase's name, its window on the run's
// clock, and the fault of a during phase. For a stop condition (abort_when) Name is
// PhaseAbort and the window is the last DefaultAbortWindow of the running system.
type Phase struct {
	Name       string
	Fault      string
	Start, End time.Duration
}

// Evaluator judges one placement of a check. It is fed the placement's requests (by the
// same rule as the built-in kinds: the phase a request started in, or the fault's during
// phase for one in flight at an injection) and its metric samples, in history order, then
// asked for its result; a placement with nothing to judge returns a Skipped result. Name,
// Kind and Phase of the result are set by the caller.
type Evaluator interface {
	Request(r *loadgen.Result)
	Metric(t time.Duration, m *history.Metric)
	Result() result.Check
}

// Evaluable is the capability of a kind judged from the run's history.
type Evaluable interface {
	Evaluator(ph Phase) Evaluator
}

// Abortable is the capability of a kind that may stop a run (abort_when): a fresh
// evaluator from AbortEvaluator judges the last window of the running system every
// AbortTick, and a failed result stops the run. A kind that judges a window as it judges a
// phase returns its Evaluator. To receive metric samples there, the spec names the
// metrics it reads (scenarios.MetricReader).
type Abortable interface {
	AbortEvaluator(ph Phase) Evaluator
}

// Live is the capability of a kind run against the live system when its phase ends
// rather than judged from the history.
type Live interface {
	RunLive(ctx context.Context, env LiveEnv) result.Check
}

// Final is the system under test's state after the run, as the harness read it, for the
// kinds that judge it (FinalJudge).
type Final struct {
	// State is the last state the system's sut.StateReader returned, of the system's own
	// type, which only the kinds written for that system know.
	State any
	// ConvergedAfter is how long after the last heal (after the load's end when there was
	// no fault) the state converged, as the harness observed it by polling the live system
	// from the heal on, during the load too (docs/CHECKS.md); negative when it never did.
	ConvergedAfter time.Duration
}

// FinalJudge is the capability of a kind judged from the system's state after the run.
// Its evaluator is fed every request of the run in history order, whatever its phase (the
// final state holds them all), then asked for its results.
type FinalJudge interface {
	FinalEvaluator(ph Phase) FinalEvaluator
}

// FinalEvaluator judges one placement of a FinalJudge kind. Results gets the final state,
// nil when it could not be read (the kind then returns Skipped results, never failed
// ones), and may return several results, one per property it judges: each is named after
// the check, a slash and its own Name ("shop/exactly_once"), or after the check alone
// when its Name is empty. Kind and Phase are set by the caller.
type FinalEvaluator interface {
	Request(r *loadgen.Result)
	Results(final *Final) []result.Check
}

// kind is what this package knows of how to judge one check kind.
type kind struct {
	// build makes the evaluator of one planned check in its window; nil for a live kind.
	build func(e *engine, p planned, w window) evaluator
	// live runs a live kind's check now.
	live func(ctx context.Context, spec scenarios.CheckSpec, env LiveEnv) result.Check
	// abortable: build also judges the last window of a running system (abort_when).
	abortable bool
}

// builtins are the evaluators of the built-in kinds, by kind; a kind's name and spec
// type are registered together in scenarios.
var builtins = map[string]kind{
	scenarios.CheckErrorRate: {abortable: true, build: typed(func(e *engine, p planned, w window, s *scenarios.ErrorRateCheck) evaluator {
		return &errorRateEval{p: p, spec: s, acc: e.acc(w, s.Journey, s.Route, false)}
	})},
	scenarios.CheckLatency: {abortable: true, build: typed(func(e *engine, p planned, w window, s *scenarios.LatencyCheck) evaluator {
		return &latencyEval{p: p, spec: s, acc: e.acc(w, s.Journey, s.Route, false)}
	})},
	scenarios.CheckMetric:         {abortable: true, build: typed((*engine).buildMetric)},
	scenarios.CheckFallbackServed: {build: typed((*engine).buildFallback)},
	scenarios.CheckThroughput: {build: typed(func(e *engine, p planned, w window, s *scenarios.ThroughputCheck) evaluator {
		return &throughputEval{p: p, spec: s, acc: e.acc(w, "", "", true), w: w, e: e}
	})},
	scenarios.CheckFaultLanded: {build: typed(func(e *engine, p planned, _ window, s *scenarios.FaultLandedCheck) evaluator {
		return fixed{e.faultLanded(p, s)}
	})},
	scenarios.CheckBreakerOpened: {build: typed(func(e *engine, p planned, _ window, s *scenarios.BreakerOpenedCheck) evaluator {
		return e.buildBreakerOpened(p, s)
	})},
	scenarios.CheckBreakerClosed: {build: typed(func(e *engine, p planned, _ window, s *scenarios.BreakerClosedCheck) evaluator {
		return e.buildBreakerClosed(p, s)
	})},
	scenarios.CheckFailover: {build: typed((*engine).buildFailover)},
	scenarios.CheckHTTPProbe: {live: liveTyped(func(ctx context.Context, s *scenarios.HTTPProbeCheck, env LiveEnv) result.Check {
		return Probe(ctx, s, env.BaseURL, env.Token)
	})},
	scenarios.CheckCommand: {live: liveTyped(func(ctx context.Context, s *scenarios.CommandCheck, env LiveEnv) result.Check {
		return RunCommand(ctx, s, env.Dir)
	})},
}

// typed adapts the evaluator of one spec type to the table; a spec of another type under
// the kind's name (only a hand-built Check can hold one) is skipped, not a panic.
func typed[S scenarios.CheckSpec](build func(e *engine, p planned, w window, s S) evaluator) func(e *engine, p planned, w window) evaluator {
	return func(e *engine, p planned, w window) evaluator {
		s, ok := p.check.Spec.(S)
		if !ok {
			return fixed{skip(p, fmt.Sprintf("check kind %q holds a spec of type %T", p.check.Type, p.check.Spec))}
		}
		return build(e, p, w, s)
	}
}

// liveTyped is typed for a live kind.
func liveTyped[S scenarios.CheckSpec](run func(ctx context.Context, s S, env LiveEnv) result.Check) func(context.Context, scenarios.CheckSpec, LiveEnv) result.Check {
	return func(ctx context.Context, spec scenarios.CheckSpec, env LiveEnv) result.Check {
		s, ok := spec.(S)
		if !ok {
			return result.Check{Skipped: true, Message: fmt.Sprintf("a live check holds a spec of type %T", spec)}
		}
		return run(ctx, s, env)
	}
}

// kindOf finds how to judge c: by the capabilities of its own spec (a kind registered from
// outside), else by its built-in kind. ok is false for a kind nothing here can judge.
func kindOf(c scenarios.Check) (k kind, ok bool) {
	if c.Spec == nil {
		return kind{}, false
	}
	if l, isLive := c.Spec.(Live); isLive {
		k.live = func(ctx context.Context, _ scenarios.CheckSpec, env LiveEnv) result.Check { return l.RunLive(ctx, env) }
	}
	if ev, isEval := c.Spec.(Evaluable); isEval {
		k.build = func(e *engine, p planned, w window) evaluator { return e.external(p, w, ev.Evaluator) }
	}
	if fj, isFinal := c.Spec.(FinalJudge); isFinal && k.build == nil {
		k.build = func(e *engine, p planned, w window) evaluator { return e.finalJudge(p, w, fj) }
	}
	if _, isAb := c.Spec.(Abortable); isAb {
		k.abortable = true
	}
	if k.live != nil || k.build != nil || k.abortable {
		return k, true
	}
	k, ok = builtins[c.Type]
	return k, ok
}

// abortBuild is how a stop condition's window is judged, when its kind can be.
func abortBuild(c scenarios.Check) (func(e *engine, p planned, w window) evaluator, bool) {
	if ab, isAb := c.Spec.(Abortable); isAb {
		return func(e *engine, p planned, w window) evaluator { return e.external(p, w, ab.AbortEvaluator) }, true
	}
	k, ok := kindOf(c)
	if !ok || !k.abortable || k.build == nil {
		return nil, false
	}
	return k.build, true
}

// isLive reports a kind run against the live system at the end of its phase rather than
// judged from the history.
func isLive(c scenarios.Check) bool {
	k, ok := kindOf(c)
	return ok && k.live != nil && k.build == nil
}

// externalEval adapts the Evaluator of a kind registered from outside: it hands it the
// requests and samples of its window, and names its result.
type externalEval struct {
	p  planned
	w  window
	ev Evaluator
}

func (e *engine) external(p planned, w window, newEval func(Phase) Evaluator) evaluator {
	ev, err := safeNew(newEval, Phase{Name: p.phase, Fault: p.fault, Start: w.start, End: w.end})
	if err != nil {
		return fixed{skip(p, err.Error())}
	}
	x := &externalEval{p: p, w: w, ev: ev}
	e.reqSinks = append(e.reqSinks, x)
	e.anyMetric = append(e.anyMetric, x)
	return x
}

func safeNew[E any](newEval func(Phase) E, ph Phase) (ev E, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("new evaluator: %v", r)
		}
	}()
	if ev = newEval(ph); any(ev) == nil {
		var none E
		return none, fmt.Errorf("new evaluator: the kind returned none")
	}
	return ev, nil
}

func (x *externalEval) onRequest(r *loadgen.Result) {
	if x.w.holds(r.Start, r.End()) {
		x.ev.Request(r)
	}
}

func (x *externalEval) onMetric(t time.Duration, m *history.Metric) {
	if x.w.contains(t) {
		x.ev.Metric(t, m)
	}
}

func (x *externalEval) results() (out []result.Check) {
	defer func() {
		if r := recover(); r != nil {
			out = []result.Check{skip(x.p, fmt.Sprintf("evaluate %s: %v", x.p.check.Type, r))}
		}
	}()
	c := x.ev.Result()
	c.Name, c.Kind, c.Phase = x.p.name, x.p.check.Type, x.p.phase
	return []result.Check{c}
}

// finalEval adapts the FinalEvaluator of a FinalJudge kind: it hands it every request,
// then the final state, and names its results.
type finalEval struct {
	p     planned
	ev    FinalEvaluator
	final *Final
}

func (e *engine) finalJudge(p planned, w window, fj FinalJudge) evaluator {
	ev, err := safeNew(fj.FinalEvaluator, Phase{Name: p.phase, Fault: p.fault, Start: w.start, End: w.end})
	if err != nil {
		return fixed{skip(p, err.Error())}
	}
	x := &finalEval{p: p, ev: ev, final: e.in.Final}
	e.reqSinks = append(e.reqSinks, x)
	return x
}

func (x *finalEval) onRequest(r *loadgen.Result) { x.ev.Request(r) }

func (x *finalEval) results() (out []result.Check) {
	defer func() {
		if r := recover(); r != nil {
			out = []result.Check{skip(x.p, fmt.Sprintf("evaluate %s: %v", x.p.check.Type, r))}
		}
	}()
	for _, c := range x.ev.Results(x.final) {
		if c.Name == "" {
			c.Name = x.p.name
		} else {
			c.Name = x.p.name + "/" + c.Name
		}
		c.Kind, c.Phase = x.p.check.Type, x.p.phase
		out = append(out, c)
	}
	return out
}

var (
	_ evaluator   = (*finalEval)(nil)
	_ requestSink = (*finalEval)(nil)
	_ evaluator   = (*externalEval)(nil)
	_ requestSink = (*externalEval)(nil)
	_ metricSink  = (*externalEval)(nil)
)
