package harness

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/undo"
)

// Timeline is a scenario's fault timeline playing on a system StartSystem started. It is
// the pipeline's own timeline (startTimeline, runFault), so that a caller driving the
// system itself (the console playing a catalog scenario) injects, measures and heals each
// fault exactly as a run does, and writes the same inject, heal and phase events.
type Timeline struct {
	r     *runner
	env   faults.Env
	wg    *sync.WaitGroup
	watch *convergeWatch
}

// NewTimeline prepares sc's fault timeline on u's system: each fault injected at loadStart
// + at, measured, healed at + for; its events go to hist, on hist's clock. onChange, when
// not nil, is called at each inject and heal with the progress a run reports. The caller
// records UndoFaults in the undo record (Up.RecordFaults) before Start, as a run does, so
// that a caller killed mid-fault is healed by the next faultline command.
func (u *Up) NewTimeline(sc *scenarios.Scenario, loadStart time.Time, hist *history.Writer, onChange func(Progress)) *Timeline {
	o := defaultOptions()
	if u.Log != nil {
		o.log = u.Log
	}
	o.progress = onChange
	r := &runner{
		o: o, sc: sc, res: &result.Run{}, began: hist.Start(), hist: hist, links: u.Links,
		sys: u.System, journal: u.journal, active: map[string]bool{}, loadStart: loadStart,
	}
	return &Timeline{r: r, env: u.Env}
}

// Start starts the timeline and, as a run does, the watch of the system's state from the
// last heal on. A cancelled ctx skips the faults not yet injected and heals the injected
// ones at once.
func (t *Timeline) Start(ctx context.Context) {
	t.wg = t.r.startTimeline(ctx, t.env)
	t.watch = t.r.watchConvergence(ctx)
}

// Converge is what a run does once its load ends: it stops the watch, reads the system's
// state until it converged or the convergence bound passed, and notes the outcome in the
// history. Call it after Wait and the load's end; a system without state gives a
// FinalState whose Err says so, as in a run.
func (t *Timeline) Converge(ctx context.Context) FinalState {
	if _, ok := t.r.sys.(sut.StateReader); !ok {
		return FinalState{Err: "the system under test has no final state to read"}
	}
	w := t.watch
	if w == nil {
		w = &convergeWatch{stop: func() {}}
	}
	return t.r.converge(ctx, w)
}

// Wait waits until every fault of the timeline is healed (or skipped); Start first.
func (t *Timeline) Wait() { t.wg.Wait() }

// Faults is the timeline now: each fault's planned window and, on the history's clock,
// when it was injected and healed, with its measured effect.
func (t *Timeline) Faults() []result.Fault {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	return slices.Clone(t.r.faults)
}

// LastHeal is when the last heal returned, on the history's clock (0 before any).
func (t *Timeline) LastHeal() time.Duration {
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	return t.r.lastHeal
}

// UndoFaults is the timeline as the undo record holds it: each fault with the absolute
// time by which it is healed.
func (t *Timeline) UndoFaults() []undo.Fault { return t.r.undoFaults() }

// LoadSpec maps sc's load section onto a load spec for u's system exactly as a run does
// (the system's journeys, a token per client, sc's targets, rate or ramp, mix and seed),
// and returns the base URLs the load goes to.
func (u *Up) LoadSpec(sc *scenarios.Scenario, seed int64) (loadgen.Spec, []string, error) {
	r := &runner{o: defaultOptions(), sc: sc, res: &result.Run{Seed: seed}, sys: u.System}
	return r.loadSpec()
}
