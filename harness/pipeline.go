package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/checks"
	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/undo"
)

// run is the one pipeline every run goes through, whatever its system under test:
// prepare (run directory, undo record, history, proxies) → start the system → interpose
// and publish routes → scrape → load, fault timeline and live checks → heal → converge →
// evaluate → verdict. Faults are healed and the system stopped on every way out.
func (r *runner) run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done, err := r.prepare(ctx)
	defer done(&err)
	if err != nil {
		return err
	}
	// A runtime (or system) that loses its lease on the cluster ends the run.
	stopLease := r.watchLease(ctx, cancel)
	defer stopLease()
	cleanup := r.cleanupContext(ctx)

	if r.o.started == nil {
		// Stopping is registered before the start: a system that half started is stopped
		// too, and the runtime closes after it.
		defer func() {
			r.setPhase("stopping")
			cctx, cancel := cleanup()
			defer cancel()
			if serr := r.stopSystem(cctx); serr != nil {
				r.o.log.Warn("stop system", "err", serr)
			}
			if r.closeRuntime != nil {
				r.closeRuntime(cctx)
			}
		}()
		if err := r.start(ctx); err != nil {
			return r.fail(ctx, err)
		}
	}
	r.res.Topology = r.sys.Topology()
	if err := r.writeProcesses(); err != nil {
		return r.fail(ctx, err)
	}
	fenv := faults.NewEnv(r.links, controls(r.sys))
	if up := r.o.started; up != nil {
		fenv = up.Env
	}
	// Healing is registered before anything is injected and runs before the system stops.
	defer func() {
		cctx, cancel := cleanup()
		defer cancel()
		r.healAll(cctx, fenv)
	}()
	if err := r.interpose(); err != nil {
		return r.fail(ctx, err)
	}

	stopScrape, err := r.startScraper(ctx)
	if err != nil {
		return r.fail(ctx, err)
	}
	defer stopScrape()
	defer func() {
		if r.watch != nil {
			r.watch.stop()
		}
	}()
	sum, loadOff, loadEnd, live, ok, err := r.drive(ctx, fenv)
	if !ok {
		return err
	}

	// Heal now (the deferred heal is the safety net) so convergence starts from a whole system.
	hctx, hcancel := cleanup()
	r.healAll(hctx, fenv)
	hcancel()
	r.rps.Store(0)
	final := FinalState{Err: "the system under test has no final state to read"}
	if _, ok := r.sys.(sut.StateReader); ok {
		r.setPhase("converging")
		final = r.converge(ctx, r.watch)
	}
	stopScrape()
	if err := r.hist.Flush(); err != nil {
		return r.fail(ctx, fmt.Errorf("flush history: %w", err))
	}
	if ctx.Err() != nil {
		return r.fail(ctx, ctx.Err())
	}
	return r.evaluate(ctx, sum, final, loadOff, loadEnd, live)
}

// stopSystem ends the system at the run's end. A container run's runtime is removed
// right after (see prepare), taking every instance with it, so a system that can be
// discarded is (sut.Discarder): its graceful stop, tier by tier, took about 7 s of every
// run on Kubernetes (a run's stopping phase went from 12-15 s to about 6 s without it),
// for instances the removal ends anyway. Local processes have no runtime removal after
// them, so they are stopped.
func (r *runner) stopSystem(ctx context.Context) error {
	if d, ok := r.sys.(sut.Discarder); ok && r.docker != nil {
		return d.Discard(ctx)
	}
	return r.sys.Stop(ctx)
}

// start is the pipeline's start step: the runtime, then the system through the proxies
// (bringUp). What it made is undone by the run's deferred stop, which also closes the
// runtime, whether or not the start succeeded.
func (r *runner) start(ctx context.Context) error {
	rt, closeRuntime := r.runtime()
	r.closeRuntime = closeRuntime
	env := sut.Env{
		Dir: r.dir, Runtime: undo.WrapRuntime(rt, r.journal), Container: r.docker != nil,
		Links: r.links, ReadyTimeout: r.o.readyTimeout, Log: r.o.log,
	}
	if r.docker != nil {
		env.Dial = r.docker.dial
	}
	return bringUp(ctx, r.sys, env, r.journal)
}

// runtime is the runtime the system starts on and how to close it: the run's Docker
// runtime (closed with the rest of its Docker side, see prepare) or local processes.
func (r *runner) runtime() (runtime.Runtime, func(context.Context)) {
	if r.docker != nil {
		return r.docker.rt, func(context.Context) {}
	}
	rt := local.New(local.WithLogger(r.o.log))
	return rt, func(ctx context.Context) { _ = rt.Close(ctx) }
}

// interpose records the links the system was started with in the result, and renders
// the scenario's templates now that every address is known.
func (r *runner) interpose() error {
	r.recordLinks()
	if rd, ok := r.sys.(sut.Renderer); ok {
		sc, err := rd.Render(r.sc)
		if err != nil {
			return err
		}
		r.sc = sc
	}
	return nil
}

// drive sends the load while the fault timeline, the live checks, the stop conditions
// and the convergence watch run beside it, and closes the phases. ok is false when the run
// ends here (a failure, a stop condition, an interruption), already recorded through
// r.fail, whose error it returns.
func (r *runner) drive(ctx context.Context, env faults.Env) (sum loadgen.Summary, loadOff, loadEnd time.Duration, live []result.Check, ok bool, err error) {
	spec, bases, err := r.loadSpec()
	if err != nil {
		return sum, 0, 0, nil, false, r.fail(ctx, err)
	}
	r.readBase(ctx)
	r.loadStart = time.Now()
	if err := r.journal.RecordFaults(r.undoFaults()); err != nil {
		return sum, 0, 0, nil, false, r.fail(ctx, err)
	}
	ctx, stopAbort, releaseAbort := r.watchAbort(ctx)
	defer releaseAbort()
	stopProgress := r.startProgress()
	defer stopProgress()
	loadOff = r.loadStart.Sub(r.began)
	r.phaseEdge("before", history.PhaseStart)
	r.setPhase("before")
	sched := r.startTimeline(ctx, env)
	r.watch = r.watchConvergence(ctx)
	liveDone := r.startLive(ctx, loadOff)
	sum, lerr := loadgen.RunTargets(ctx, spec, bases, r.sink, loadgen.WithEpoch(r.began))
	stopAbort()
	loadEnd = r.since()
	sched.Wait()
	r.closePhases(loadOff, loadEnd)
	r.res.Load = loadOf(sum)
	live = liveDone()
	if lerr != nil {
		return sum, loadOff, loadEnd, live, false, r.fail(ctx, fmt.Errorf("run load: %w", lerr))
	}
	if ctx.Err() != nil {
		return sum, loadOff, loadEnd, live, false, r.fail(ctx, ctx.Err())
	}
	return sum, loadOff, loadEnd, live, true, nil
}

// evaluate turns the finished run into checks and the verdict.
func (r *runner) evaluate(ctx context.Context, sum loadgen.Summary, final FinalState, loadOff, loadEnd time.Duration, live []result.Check) error {
	r.setPhase("evaluating")
	r.mu.Lock()
	ev := Evaluation{
		Scenario: r.sc, HistoryPath: filepath.Join(r.dir, HistoryFile), Phases: slices.Clone(r.res.Phases),
		Faults: slices.Clone(r.faults), Load: sum, Final: final, LoadStart: loadOff, LoadEnd: loadEnd, LastHeal: r.lastHeal,
		Live: live,
	}
	r.mu.Unlock()
	if l, ok := r.sys.(sut.Leaser); ok {
		ev.LeaseTTL = l.LeaseTTL()
	}
	cks, err := r.o.evaluator.Evaluate(ctx, ev)
	if err != nil {
		return r.fail(ctx, fmt.Errorf("evaluate checks: %w", err))
	}
	r.res.Checks = cks
	r.res.Faults = ev.Faults
	decide(r.sc, r.res, sum)
	return nil
}

// writeProcesses writes processes.json.
func (r *runner) writeProcesses() error {
	b, err := json.MarshalIndent(r.sys.Processes(), "", "  ")
	if err != nil {
		return fmt.Errorf("encode processes: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, ProcessesFile), b, 0o644); err != nil {
		return fmt.Errorf("write processes: %w", err)
	}
	return nil
}

// loadSpec maps the scenario's load section onto a load spec: the system's own journeys
// (if it has any) and the scenario's targets, each client with a token of its own when the
// system issues them. It returns the base URLs the load goes to.
func (r *runner) loadSpec() (loadgen.Spec, []string, error) {
	l := r.sc.Load
	clients := 10
	if l.Clients > 0 {
		clients = l.Clients
	}
	var token func(client int) string
	var httpOpts []loadgen.HTTPOption
	if tk, ok := r.sys.(sut.Tokener); ok {
		ttl := l.Duration.Std() + 24*time.Hour
		tokens := make([]string, clients)
		for i := range tokens {
			tok, err := tk.Token(fmt.Sprintf("client-%d", i+1), ttl)
			if err != nil {
				return loadgen.Spec{}, nil, fmt.Errorf("issue tokens: %w", err)
			}
			tokens[i] = tok
		}
		token = func(client int) string {
			if client < 0 || client >= len(tokens) {
				return tokens[0]
			}
			return tokens[client]
		}
		httpOpts = append(httpOpts, loadgen.WithToken(token))
	}
	var journeys []loadgen.Journey
	if j, ok := r.sys.(sut.Journeyer); ok {
		journeys = j.Journeys(token)
	}
	for _, t := range l.Targets {
		j, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{
			Name: t.Name, Method: t.Method, URL: t.URL, Headers: t.Headers, Body: t.Body,
		}, httpOpts...)
		if err != nil {
			return loadgen.Spec{}, nil, fmt.Errorf("build load: %w", err)
		}
		journeys = append(journeys, j)
	}
	bases := r.sys.LoadTargets()
	if bases == nil {
		var err error
		if bases, err = targetBases(r.sc.Load.Targets); err != nil {
			return loadgen.Spec{}, nil, err
		}
	}
	spec := loadgen.Spec{
		Rate:       loadgen.Rate{Freq: l.Rate.Freq, Per: l.Rate.Per},
		Duration:   l.Duration.Std(),
		MaxWorkers: max(l.MaxWorkers, 0),
		Timeout:    l.Timeout.Std(),
		Mix:        mixWeights(l.Mix),
		Seed:       r.res.Seed,
		Clients:    clients,
		Journeys:   journeys,
	}
	if spec.MaxWorkers == 0 {
		spec.MaxWorkers = 64
	}
	if spec.Timeout == 0 {
		spec.Timeout = 2 * time.Second
	}
	spec.Ramp = rampOf(l)
	if errs := spec.Validate(); len(errs) > 0 {
		return spec, nil, fmt.Errorf("build load: %w", errors.Join(errs...))
	}
	return spec, bases, nil
}

// targetBases is the base URL of the first load target with an absolute http URL: the
// load generator only fails over between several bases, and every URL is absolute anyway.
func targetBases(targets []scenarios.HTTPTarget) ([]string, error) {
	for _, t := range targets {
		if u, err := url.Parse(t.URL); err == nil && u.Host != "" && !strings.Contains(u.Host, "{{") {
			return []string{u.Scheme + "://" + u.Host}, nil
		}
	}
	return nil, errors.New("build load: no target has an absolute http URL")
}

// startScraper samples the system's metrics into the history (and the stop conditions)
// until the returned function is called (which is safe to call twice).
func (r *runner) startScraper(ctx context.Context) (func(), error) {
	sc, err := r.sys.Scrape()
	if err != nil {
		return nil, err
	}
	if sc.Targets == nil || len(sc.Targets()) == 0 {
		return func() {}, nil
	}
	opts := []observe.Option{observe.WithStart(r.began)}
	if names := r.sc.MetricNames(); sc.Checked && len(names) > 0 {
		opts = append(opts, observe.WithPrefixes(names...))
	}
	s, err := observe.NewScraper(sc.Targets, opts...)
	if err != nil {
		return nil, fmt.Errorf("start scraper: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = s.Run(sctx, func(x observe.Sample) {
			m := history.Metric{Component: x.Component, Name: x.Name, Labels: x.Labels, Value: x.Value}
			ev := history.MetricEvent(m)
			ev.T = max(x.T, 1)
			_ = r.hist.Write(ev)
			if am := r.abort.Load(); am != nil {
				am.onMetric(ev.T, m)
			}
		})
	})
	return sync.OnceFunc(func() { cancel(); wg.Wait() }), nil
}

// startLive runs the live checks (http_probe, command) against the running system at the
// planned end of their phases; the returned function waits for them and returns their
// results. Checks whose time has not come when ctx ends are skipped.
func (r *runner) startLive(ctx context.Context, loadStart time.Duration) func() []result.Check {
	planned := checks.Phases(r.sc, nil, loadStart, loadStart+r.sc.Load.Duration.Std())
	lcs := checks.LiveChecks(r.sc, planned)
	if len(lcs) == 0 {
		return func() []result.Check { return nil }
	}
	env := checks.LiveEnv{}
	if bases := r.sys.LoadTargets(); len(bases) > 0 {
		env.BaseURL = bases[0]
	}
	if tk, ok := r.sys.(sut.Tokener); ok {
		if tok, err := tk.Token("probe", 24*time.Hour); err == nil {
			env.Token = tok
		}
	}
	if r.sc.File != "" {
		env.Dir = filepath.Dir(r.sc.File)
	}
	return r.runLive(ctx, lcs, env)
}

// controls is the system as process faults see it: the system itself when it offers
// every control, otherwise an adapter whose missing controls fail with an error that
// names them.
func controls(sys sut.System) faults.Processes {
	if p, ok := sys.(faults.Processes); ok {
		return p
	}
	return partialControls{sys}
}

// partialControls lends a system that lacks some controls to process faults.
type partialControls struct{ sut.System }

var _ faults.Deleter = partialControls{}

// Kill kills through sut.Killer.
func (p partialControls) Kill(name string) error {
	if k, ok := p.System.(sut.Killer); ok {
		return k.Kill(name)
	}
	return fmt.Errorf("kill %s: the system under test cannot kill its instances", name)
}

// Pause freezes through sut.Pauser.
func (p partialControls) Pause(name string) error {
	if k, ok := p.System.(sut.Pauser); ok {
		return k.Pause(name)
	}
	return fmt.Errorf("pause %s: the system under test cannot pause its instances", name)
}

// Resume thaws through sut.Pauser.
func (p partialControls) Resume(name string) error {
	if k, ok := p.System.(sut.Pauser); ok {
		return k.Resume(name)
	}
	return fmt.Errorf("resume %s: the system under test cannot pause its instances", name)
}

// Restart restarts through sut.Restarter.
func (p partialControls) Restart(ctx context.Context, name string) error {
	if k, ok := p.System.(sut.Restarter); ok {
		return k.Restart(ctx, name)
	}
	return fmt.Errorf("restart %s: the system under test cannot restart its instances", name)
}

// Delete deletes through sut.Deleter.
func (p partialControls) Delete(ctx context.Context, name string) error {
	if k, ok := p.System.(sut.Deleter); ok {
		return k.Delete(ctx, name)
	}
	return fmt.Errorf("delete %s: the system under test cannot delete its instances", name)
}

// CanDelete asks sut.Deleter; false without one, so the delete fault says what is missing.
func (p partialControls) CanDelete(name string) bool {
	k, ok := p.System.(sut.Deleter)
	return ok && k.CanDelete(name)
}

// InstanceID asks sut.Deleter; "" without one.
func (p partialControls) InstanceID(name string) string {
	if k, ok := p.System.(sut.Deleter); ok {
		return k.InstanceID(name)
	}
	return ""
}
