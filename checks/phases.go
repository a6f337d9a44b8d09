// Package checks turns a run's history and the system's final state into check results and
// a verdict. It streams the history once, keeping counters, a latency sketch per (phase,
// filter) and, for a kind that judges the final state (FinalJudge), what it keeps per
// request it remembers (the reference system's consistency keeps one entry per
// idempotency key): never one per read-only request, so evaluating a long run needs the
// same memory as a short one.
package checks

import (
	"sort"
	"strings"
	"time"

	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
)

// Phase names. A during phase is DuringPrefix followed by the fault's name.
const (
	PhaseBefore       = "before"
	PhaseAfter        = "after"
	PhaseOverall      = "overall"
	PhaseSteadyBefore = "steady_state:before"
	PhaseSteadyAfter  = "steady_state:after"
	// PhaseAbort is the phase of a stop condition's result: the last window of the run.
	PhaseAbort   = scenarios.PlaceAbort
	DuringPrefix = "during:"
)

// SteadyStateWindow caps the steady-state windows. A steady-state window is the second
// half of the before phase (ending at the first injection) and the second half of the
// after phase (ending with the load), each at most this long: the first half of before is
// the system warming up, the first half of after is the recovery the after checks judge,
// and neither should count against the hypothesis that the system is healthy.
const SteadyStateWindow = 10 * time.Second

// During returns the name of the phase in which fault is active.
func During(fault string) string { return DuringPrefix + fault }

// faultTimes is when a fault really was active on the run's clock.
type faultTimes struct {
	name          string
	inject, heal  time.Duration
	healed        bool
	result        *result.Fault
	targets       []string
	plannedInject time.Duration
}

// timeline merges the scenario's planned faults with what the harness recorded. A fault
// the harness recorded wins; one it did not is assumed to have run as planned, and one
// never healed lasts until the end of the load.
func timeline(sc *scenarios.Scenario, faults []result.Fault, loadStart, loadEnd time.Duration) []faultTimes {
	byName := map[string]*result.Fault{}
	for i := range faults {
		byName[faults[i].Name] = &faults[i]
	}
	clamp := func(d time.Duration) time.Duration { return min(max(d, loadStart), loadEnd) }
	var out []faultTimes
	seen := map[string]bool{}
	add := func(name string, at, end time.Duration, rf *result.Fault) {
		ft := faultTimes{name: name, inject: loadStart + at, heal: loadStart + end, healed: true, result: rf, plannedInject: loadStart + at}
		if rf != nil {
			ft.targets = rf.Targets
			if rf.Injected > 0 {
				ft.inject = rf.Injected.Std()
				ft.heal, ft.healed = loadEnd, false
				if rf.Healed > 0 {
					ft.heal, ft.healed = rf.Healed.Std(), true
				}
			}
		}
		ft.inject, ft.heal = clamp(ft.inject), clamp(ft.heal)
		ft.heal = max(ft.heal, ft.inject)
		out = append(out, ft)
		seen[name] = true
	}
	if sc != nil {
		for _, f := range sc.Faults {
			add(f.Name, f.At.Std(), f.End().Std(), byName[f.Name])
		}
	}
	for i := range faults {
		if f := &faults[i]; !seen[f.Name] {
			add(f.Name, f.At.Std(), f.At.Std()+f.For.Std(), f)
		}
	}
	return out
}

// Phases computes the phases of a run from the scenario's fault timeline and the actual
// inject and heal times in faults, on the run's clock (the history's T):
//
//   - before: [loadStart, first injection)
//   - during:<fault>: [injection, heal) of that fault (until loadEnd if it was never healed)
//   - after: [last heal, loadEnd), only when the scenario has faults
//   - overall: [loadStart, loadEnd)
//   - steady_state:before and steady_state:after: see SteadyStateWindow; with no faults,
//     only steady_state:before, the second half of the load.
//
// The phases that end at loadEnd also take the requests the load generator sent during
// its grace period after loadEnd. A request belongs to the phase in which it started,
// except that one still in flight at a fault's injection belongs to that fault's during
// phase and not to before or steady_state:before (see docs/ARCHITECTURE.md).
func Phases(sc *scenarios.Scenario, faults []result.Fault, loadStart, loadEnd time.Duration) []result.Phase {
	loadEnd = max(loadEnd, loadStart)
	ph := func(name string, a, b time.Duration) result.Phase {
		return result.Phase{Name: name, Start: result.Duration(a), End: result.Duration(max(a, b))}
	}
	tl := timeline(sc, faults, loadStart, loadEnd)
	if len(tl) == 0 {
		half := min(SteadyStateWindow, (loadEnd-loadStart)/2)
		return []result.Phase{
			ph(PhaseSteadyBefore, loadEnd-half, loadEnd),
			ph(PhaseBefore, loadStart, loadEnd),
			ph(PhaseOverall, loadStart, loadEnd),
		}
	}
	first, last := loadEnd, loadStart
	for _, f := range tl {
		first, last = min(first, f.inject), max(last, f.heal)
	}
	before := min(SteadyStateWindow, (first-loadStart)/2)
	after := min(SteadyStateWindow, (loadEnd-last)/2)
	out := []result.Phase{
		ph(PhaseSteadyBefore, first-before, first),
		ph(PhaseBefore, loadStart, first),
	}
	for _, f := range tl {
		out = append(out, ph(During(f.name), f.inject, f.heal))
	}
	return append(out,
		ph(PhaseAfter, last, loadEnd),
		ph(PhaseOverall, loadStart, loadEnd),
		ph(PhaseSteadyAfter, loadEnd-after, loadEnd),
	)
}

// window is a phase as the evaluator uses it.
type window struct {
	name       string
	start, end time.Duration
	open       bool // ends with the load: takes requests of the grace period too
	// during: a fault's phase, which also takes the requests in flight at its injection
	// (start).
	during bool
	// yields are the injections whose in-flight requests leave this phase for the
	// fault's; set on every phase that is neither a during phase nor overall.
	yields []time.Duration
	// byEnd: a stop condition's window, which takes the requests that completed in it,
	// since it judges what clients saw last, whenever they asked.
	byEnd bool
}

// contains reports whether an instant (a metric sample, a request's start) falls in the
// window.
func (w window) contains(t time.Duration) bool {
	return t >= w.start && (w.open || t < w.end)
}

// holds reports whether a request that started at start and completed at end belongs to
// the phase. A request belongs to the phase in which it started, except that one still in
// flight at a fault's injection belongs to that fault's during phase: what the fault did
// to work already under way is the fault's effect, not a failure of the steady state
// before it (a request started 130 µs before a partition and failed by it must not make
// the before phase fail). A during phase therefore takes the requests in flight at its
// injection as well as those started in it; before and steady_state:before give them
// up; overall keeps every request that started in the load. A request that starts during
// a fault and ends after its heal stays in the fault's phase.
func (w window) holds(start, end time.Duration) bool {
	if w.byEnd {
		return w.contains(end)
	}
	if w.during && inFlight(start, end, w.start) {
		return true
	}
	if !w.contains(start) {
		return false
	}
	for _, at := range w.yields {
		if inFlight(start, end, at) {
			return false
		}
	}
	return true
}

// inFlight reports whether a request that started at start and completed at end was
// under way at the instant at: begun strictly before it and not yet complete.
func inFlight(start, end, at time.Duration) bool { return start < at && end > at }

func windows(phases []result.Phase) map[string]window {
	var loadEnd time.Duration
	var injections []time.Duration
	for _, p := range phases {
		loadEnd = max(loadEnd, p.End.Std())
		if strings.HasPrefix(p.Name, DuringPrefix) {
			injections = append(injections, p.Start.Std())
		}
	}
	out := make(map[string]window, len(phases))
	for _, p := range phases {
		w := window{name: p.Name, start: p.Start.Std(), end: p.End.Std(), open: p.End.Std() >= loadEnd}
		switch {
		case strings.HasPrefix(p.Name, DuringPrefix):
			w.during = true
		case p.Name != PhaseOverall:
			w.yields = injections
		}
		out[p.Name] = w
	}
	return out
}

// describePhase turns a phase name into words for a message.
func describePhase(name string) string {
	switch {
	case name == PhaseBefore:
		return "before the first fault"
	case name == PhaseAfter:
		return "after the last heal"
	case name == PhaseOverall:
		return "over the whole run"
	case name == PhaseSteadyBefore:
		return "in the steady state before the first fault"
	case name == PhaseSteadyAfter:
		return "in the steady state after the last heal"
	case strings.HasPrefix(name, DuringPrefix):
		return "during " + strings.TrimPrefix(name, DuringPrefix)
	case name == PhaseAbort:
		return "over the stop window"
	}
	return "in " + name
}

// plannedRequests integrates the scenario's planned rate over [a, b), offsets from the
// start of the load, so that a phase's throughput can be compared with its own plan.
func plannedRequests(load scenarios.LoadSpec, a, b time.Duration) float64 {
	if b <= a {
		return 0
	}
	if len(load.Ramp) == 0 {
		return load.Rate.PerSecond() * (b - a).Seconds()
	}
	var total, prev float64
	var t time.Duration
	for i, step := range load.Ramp {
		stepEnd := t + step.For.Std()
		end := stepEnd
		if i == len(load.Ramp)-1 {
			end = max(end, b)
		}
		r := step.Rate.PerSecond()
		// rateAt is the planned rate at offset x: a linear step slopes from the previous
		// step's rate (0 before the first) to its own, and holds it past its end.
		rateAt := func(x time.Duration) float64 {
			if step.Shape != "linear" || x >= stepEnd || step.For <= 0 {
				return r
			}
			return prev + (r-prev)*(x-t).Seconds()/step.For.Std().Seconds()
		}
		lo, hi := max(a, t), min(b, end)
		if hi > lo {
			// The rate is linear on [lo, min(hi, stepEnd)] and flat after it.
			mid := max(lo, min(hi, stepEnd))
			total += (rateAt(lo) + rateAt(mid)) / 2 * (mid - lo).Seconds()
			total += r * (hi - mid).Seconds()
		}
		prev, t = r, end
	}
	return total
}

// componentMatches reports whether a sampled instance is, or belongs to, want.
func componentMatches(component, want string) bool {
	return want == "" || component == want || scenarios.ServiceOf(component) == want
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
