package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/undo"
)

// cleanupTimeout bounds healing and stopping on the way out, whatever ended the run.
const cleanupTimeout = 30 * time.Second

// ValidationError is returned when a scenario is refused before anything starts; Errs are
// the scenario's problems, each file:line:col with a hint.
type ValidationError struct{ Errs []error }

// Error lists every problem, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errs))
	for i, err := range e.Errs {
		lines[i] = err.Error()
	}
	return "validate scenario:\n" + strings.Join(lines, "\n")
}

// Run runs sc against the system under test WithSystem gives, or WithSystemFor makes for
// sc (systems.For: the reference system or sc's own topology), as local processes, or as
// containers with system.runtime docker or WithRuntime("docker"), and returns the result it
// also wrote to the run directory. The result is never nil: a scenario that could not be
// run has verdict error (with the error also returned), a run cut short by ctx has verdict
// aborted. A run that completed returns a nil error whatever its verdict.
func Run(ctx context.Context, sc *scenarios.Scenario, opts ...Option) (*result.Run, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	began := time.Now()
	res := &result.Run{Version: result.Version, StartedAt: began.UTC(), Runtime: "local", Verdict: result.Error}
	if sc == nil {
		res.Scenario, res.Reason = "unknown", "no scenario"
		return res, errors.New("run scenario: no scenario")
	}
	res.Scenario, res.File, res.Description, res.Seed = sc.Name, sc.File, sc.Description, sc.Seed
	if o.seed != nil {
		res.Seed = *o.seed
	}
	res.Runtime = cmp.Or(o.runtime, sc.System.Runtime, "local")
	sys := o.system
	if o.started != nil {
		sys, res.Runtime = o.started.System, "local"
	}
	if sys == nil && o.systemFor != nil {
		sys = o.systemFor(sc, o.command, o.args...)
	}
	if sys == nil {
		res.Reason = "no system under test"
		res.Hint = "pass harness.WithSystemFor(systems.For), or WithSystem"
		return res, errors.New("run scenario: no system under test")
	}
	if errs := sys.Validate(sc); len(errs) > 0 {
		res.Reason = fmt.Sprintf("the scenario has %d problem(s); the first: %v", len(errs), errs[0])
		res.Hint = "run faultline validate " + sc.File
		return res, &ValidationError{Errs: errs}
	}
	if err := sys.Runnable(res.Runtime); err != nil {
		res.Reason = err.Error()
		var u *sut.Unrunnable
		if errors.As(err, &u) {
			res.Hint = u.Hint
		}
		return res, fmt.Errorf("run scenario: %w", err)
	}
	if errs := RuntimeProblems(sc, res.Runtime); len(errs) > 0 {
		res.Reason = fmt.Sprintf("the scenario has %d fault(s) the %s runtime refuses; the first: %v", len(errs), res.Runtime, errs[0])
		return res, &ValidationError{Errs: errs}
	}
	if o.evaluator == nil {
		o.evaluator = DefaultEvaluator()
	}
	r := &runner{o: o, sc: sc, res: res, began: began, active: map[string]bool{}, sys: sys}
	err := r.run(ctx)
	return res, err
}

// runner is one run in progress.
type runner struct {
	o     options
	sc    *scenarios.Scenario
	res   *result.Run
	began time.Time
	dir   string

	hist   *history.Writer
	links  *faults.Links
	sys    sut.System
	docker *containerRun // nil on the local runtime
	// closeRuntime closes the runtime start made; nil before it, and on a started system.
	closeRuntime func(context.Context)

	watch     *convergeWatch               // nil until the load starts
	base      sut.State                    // the state at load start, on a started system (WithStarted)
	loadStart time.Time                    // zero until the load starts
	journal   *undo.Journal                // the run's undo record
	abort     atomic.Pointer[abortMonitor] // set while stop conditions are watched
	requests  atomic.Uint64
	errs      atomic.Uint64
	rps       atomic.Uint64 // math.Float64bits of the last completion rate

	mu       sync.Mutex
	phase    string
	active   map[string]bool
	faults   []result.Fault
	lastHeal time.Duration
	progMu   sync.Mutex
}

func (r *runner) since() time.Duration { return time.Since(r.began) }

// fail records a harness error as the verdict unless ctx ended first, which makes the run
// aborted (an interrupted run is not the harness's fault), or an error when the run's
// lease was lost (see watchLease).
func (r *runner) fail(ctx context.Context, err error) error {
	if lerr := r.leaseLost(ctx); lerr != nil {
		return lerr
	}
	if ae, ok := abortedBy(ctx); ok {
		r.res.Verdict, r.res.Reason = result.Aborted, ae.Error()
		r.res.Hint = "a stop condition (abort_when) fired; every fault was healed at once and every process stopped"
		r.res.Checks = append(r.res.Checks, ae.Check)
		return nil
	}
	if ctx.Err() != nil {
		r.res.Verdict, r.res.Reason = result.Aborted, "interrupted: "+context.Cause(ctx).Error()
		r.res.Hint = "every fault was healed and every process stopped"
		return nil
	}
	r.res.Verdict, r.res.Reason = result.Error, err.Error()
	return err
}

// mixWeights turns the scenario's relative weights into whole numbers, exactly when they
// already are and with three decimals' precision otherwise.
func mixWeights(mix map[string]float64) map[string]int {
	whole := true
	for _, w := range mix {
		if w != math.Trunc(w) {
			whole = false
		}
	}
	scale := 1.0
	if !whole {
		scale = 1000
	}
	out := make(map[string]int, len(mix))
	for k, w := range mix {
		out[k] = int(math.Round(w * scale))
	}
	return out
}

func (r *runner) sink(res loadgen.Result) {
	r.requests.Add(1)
	if res.Failed() {
		r.errs.Add(1)
	}
	if m := r.abort.Load(); m != nil {
		m.onRequest(res)
	}
	_ = r.hist.Write(history.RequestEvent(res))
}

func (r *runner) recordLinks() {
	for _, l := range r.links.All() {
		r.res.Links = append(r.res.Links, result.Link{From: l.From, To: l.To})
	}
}

// ProcessRecord is one line of processes.json: what a run started, so that anyone can
// check afterwards that nothing of it is left running.
type ProcessRecord = sut.Process

func (r *runner) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
	r.report()
}

func (r *runner) phaseEdge(name string, edge history.PhaseEdge) {
	if r.hist != nil {
		_ = r.hist.Write(history.PhaseEvent(name, edge))
	}
}

// snapshot is the run's progress now, without a rate.
func (r *runner) snapshot() Progress {
	r.mu.Lock()
	p := Progress{Phase: r.phase, Requests: r.requests.Load(), Errors: r.errs.Load(), RPS: math.Float64frombits(r.rps.Load())}
	for name := range r.active {
		p.ActiveFaults = append(p.ActiveFaults, name)
	}
	r.mu.Unlock()
	slices.Sort(p.ActiveFaults)
	if len(p.ActiveFaults) > 0 && (p.Phase == "before" || p.Phase == "after") {
		parts := make([]string, len(p.ActiveFaults))
		for i, f := range p.ActiveFaults {
			parts[i] = "during:" + f
		}
		p.Phase = strings.Join(parts, ",")
	}
	if !r.loadStart.IsZero() {
		p.Elapsed = time.Since(r.loadStart)
	}
	return p
}

func (r *runner) emit(p Progress) {
	if r.o.progress == nil {
		return
	}
	r.progMu.Lock()
	defer r.progMu.Unlock()
	r.o.progress(p)
}

// report sends one progress snapshot (at a phase change).
func (r *runner) report() { r.emit(r.snapshot()) }

// startProgress reports twice a second with the completion rate over the last second.
func (r *runner) startProgress() func() {
	if r.o.progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		type mark struct {
			at time.Time
			n  uint64
		}
		var marks []mark
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				p := r.snapshot()
				marks = append(marks, mark{now, p.Requests})
				if len(marks) > 3 {
					marks = marks[1:]
				}
				if first := marks[0]; len(marks) > 1 {
					p.RPS = float64(p.Requests-first.n) / now.Sub(first.at).Seconds()
					r.rps.Store(math.Float64bits(p.RPS))
				}
				r.emit(p)
			}
		}
	})
	return sync.OnceFunc(func() { close(done); wg.Wait() })
}
