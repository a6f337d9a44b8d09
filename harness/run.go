package harness

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
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

// Run runs sc against the reference system (or its own topology) as local processes, or as
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
	if sc.HasTopology() {
		return runCustom(ctx, sc, o, res, began) // the user's own system: see custom.go
	}
	if errs := sc.Validate(scenarios.DefaultShape(sc.System)); len(errs) > 0 {
		res.Reason = fmt.Sprintf("the scenario has %d problem(s); the first: %v", len(errs), errs[0])
		res.Hint = "run faultline validate " + sc.File
		return res, &ValidationError{Errs: errs}
	}
	if res.Runtime != "local" && res.Runtime != "docker" {
		res.Reason = fmt.Sprintf("runtime %q is not supported", res.Runtime)
		res.Hint = "use system.runtime: local or docker"
		return res, fmt.Errorf("run scenario: %s", res.Reason)
	}
	if o.evaluator == nil {
		o.evaluator = DefaultEvaluator()
	}
	r := &runner{o: o, sc: sc, res: res, began: began, active: map[string]bool{}}
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
	sys    *system.System
	docker *dockerRun // nil on the local runtime

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
// aborted: an interrupted run is not the harness's fault.
func (r *runner) fail(ctx context.Context, err error) error {
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

func (r *runner) run(ctx context.Context) (err error) {
	o := r.o
	done, err := r.prepare(ctx)
	defer done(&err)
	if err != nil {
		return err
	}
	cleanup := r.cleanupContext(ctx)
	dir := r.dir
	links := r.links
	ip := NewInterposer(links, o.log)
	if r.docker != nil {
		ip.resolve = r.docker.dial
	}
	defer ip.Close()

	var rt runtime.Runtime
	if r.docker != nil {
		rt = r.docker.rt // removed with everything else of the run's docker side (prepare)
	} else {
		lrt := local.New(local.WithLogger(o.log))
		defer func() {
			cctx, cancel := cleanup()
			defer cancel()
			_ = lrt.Close(cctx)
		}()
		rt = lrt
	}

	spec, err := r.systemSpec()
	if err != nil {
		return r.fail(ctx, err)
	}
	sys, err := system.Start(ctx, undo.WrapRuntime(rt, r.journal), spec, system.WithLogger(o.log), system.WithInterposer(ip), system.WithReadyTimeout(o.readyTimeout))
	if err != nil {
		return r.fail(ctx, err)
	}
	r.sys = sys
	defer func() {
		r.setPhase("stopping")
		cctx, cancel := cleanup()
		defer cancel()
		if serr := sys.Stop(cctx); serr != nil {
			o.log.Warn("stop system", "err", serr)
		}
	}()
	r.recordTopology()
	if err := r.writeProcesses(); err != nil {
		return r.fail(ctx, err)
	}
	env := faults.NewEnv(links, sys)
	// Healing is registered before anything is injected and runs before the system stops.
	defer func() {
		cctx, cancel := cleanup()
		defer cancel()
		r.healAll(cctx, env)
	}()

	wctx, cancel := context.WithTimeout(ctx, o.readyTimeout)
	err = ip.WaitRoutes(wctx, sys)
	cancel()
	if err != nil {
		return r.fail(ctx, fmt.Errorf("publish routes: %w", err))
	}
	r.recordLinks()
	if err := r.journal.RecordLinks(links); err != nil {
		return r.fail(ctx, err)
	}

	stopScrape, err := r.startScraper(ctx)
	if err != nil {
		return r.fail(ctx, err)
	}
	defer stopScrape()

	spec2, err := r.loadSpec()
	if err != nil {
		return r.fail(ctx, err)
	}
	r.loadStart = time.Now()
	if err := r.journal.RecordFaults(r.undoFaults()); err != nil {
		return r.fail(ctx, err)
	}
	ctx, stopAbort, releaseAbort := r.watchAbort(ctx)
	defer releaseAbort()
	stopProgress := r.startProgress()
	defer stopProgress()
	loadOff := r.loadStart.Sub(r.began)
	r.phaseEdge("before", history.PhaseStart)
	r.setPhase("before")
	sched := r.startTimeline(ctx, env)
	watch := r.watchConvergence(ctx)
	defer watch.stop()
	live := r.startLive(ctx, loadOff)
	sum, lerr := loadgen.RunTargets(ctx, spec2, sys.GatewayURLs(), r.sink, loadgen.WithEpoch(r.began))
	stopAbort()
	loadEnd := r.since()
	sched.Wait()
	r.closePhases(loadOff, loadEnd)
	r.res.Load = loadOf(sum)
	liveResults := live()
	if lerr != nil {
		return r.fail(ctx, fmt.Errorf("run load: %w", lerr))
	}
	if ctx.Err() != nil {
		return r.fail(ctx, ctx.Err())
	}

	// Heal now (the deferred heal is the safety net) so convergence starts from a whole system.
	hctx, hcancel := cleanup()
	r.healAll(hctx, env)
	hcancel()

	r.rps.Store(0)
	r.setPhase("converging")
	final := r.converge(ctx, watch)
	stopScrape()
	if err := r.hist.Flush(); err != nil {
		return r.fail(ctx, fmt.Errorf("flush history: %w", err))
	}
	if ctx.Err() != nil {
		return r.fail(ctx, ctx.Err())
	}

	r.setPhase("evaluating")
	r.mu.Lock()
	ev := Evaluation{
		Scenario: r.sc, HistoryPath: filepath.Join(dir, HistoryFile), Phases: slices.Clone(r.res.Phases),
		Faults: slices.Clone(r.faults), Load: sum, Final: final, LoadStart: loadOff, LoadEnd: loadEnd, LastHeal: r.lastHeal,
		LeaseTTL: r.sys.Spec().LeaseTTL, Live: liveResults,
	}
	r.mu.Unlock()
	checks, err := r.o.evaluator.Evaluate(ctx, ev)
	if err != nil {
		return r.fail(ctx, fmt.Errorf("evaluate checks: %w", err))
	}
	r.res.Checks = checks
	r.res.Faults = ev.Faults
	decide(r.sc, r.res, sum)
	return nil
}

// systemSpec maps the scenario's system section onto a system spec.
func (r *runner) systemSpec() (system.Spec, error) {
	s := r.sc.System
	designFile, err := resolveDesign(r.sc, r.dir)
	if err != nil {
		return system.Spec{}, err
	}
	if designFile != "" {
		r.res.Design = strings.TrimSuffix(filepath.Base(designFile), filepath.Ext(designFile))
	} else {
		r.res.Design = "default"
	}
	spec := system.Spec{
		Dir:       filepath.Join(r.dir, "system"),
		Merchants: s.ReplicasOf("merchant"), Orders: s.ReplicasOf("order"), Products: s.ReplicasOf("product"),
		Gateways:   s.ReplicasOf("gateway"),
		DesignFile: designFile,
		LeaseTTL:   s.LeaseTTL.Std(),
	}
	if s.Stock > 0 {
		spec.Catalog = config.DefaultCatalog()
		spec.Catalog.InitialStock = s.Stock
	}
	if r.res.Runtime == "local" {
		// In a container the command is the image's binary (system.Start's default).
		spec.Command, spec.Args = r.o.command, r.o.args
	}
	if spec.LeaseTTL > 0 && spec.LeaseTTL < time.Second {
		// etcd leases have a granularity of one second.
		spec.LeaseTTL = time.Second
	}
	return spec, nil
}

// resolveDesign finds the design file a scenario names. A relative path is looked up next
// to the scenario file and in its parent directories, then in the working directory and
// its parents, so that "designs/resilient.yaml" works from anywhere in a checkout. An
// inline design is written into the run directory.
func resolveDesign(sc *scenarios.Scenario, dir string) (string, error) {
	d := sc.System.Design
	switch {
	case d.Inline != nil:
		b, err := yamlMarshal(d.Inline)
		if err != nil {
			return "", fmt.Errorf("encode inline design: %w", err)
		}
		p := filepath.Join(dir, "design.yaml")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", fmt.Errorf("write inline design: %w", err)
		}
		return p, nil
	case d.Path == "":
		return "", nil
	case filepath.IsAbs(d.Path):
		return d.Path, nil
	}
	var roots []string
	if sc.File != "" {
		if abs, err := filepath.Abs(filepath.Dir(sc.File)); err == nil {
			roots = append(roots, abs)
		}
	}
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	for _, root := range roots {
		for dir := root; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, d.Path)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", fmt.Errorf("find design %q: not found next to %s or the working directory, nor in their parents", d.Path, sc.File)
}

// loadSpec maps the scenario's load section onto a load spec with one token per client.
func (r *runner) loadSpec() (loadgen.Spec, error) {
	l := r.sc.Load
	seed := r.res.Seed
	clients := max(l.Clients, 10)
	if l.Clients > 0 {
		clients = l.Clients
	}
	ttl := l.Duration.Std() + 24*time.Hour
	tokens := make([]string, clients)
	for i := range tokens {
		tok, err := r.sys.Token(fmt.Sprintf("client-%d", i+1), ttl)
		if err != nil {
			return loadgen.Spec{}, fmt.Errorf("issue tokens: %w", err)
		}
		tokens[i] = tok
	}
	token := func(client int) string {
		if client < 0 || client >= len(tokens) {
			return tokens[0]
		}
		return tokens[client]
	}
	journeys := reference.Journeys(token, reference.WithCatalog(r.sys.Spec().Catalog))
	for _, t := range l.Targets {
		j, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{
			Name: t.Name, Method: t.Method, URL: t.URL, Headers: t.Headers, Body: t.Body,
		}, loadgen.WithToken(token))
		if err != nil {
			return loadgen.Spec{}, fmt.Errorf("build load: %w", err)
		}
		journeys = append(journeys, j)
	}
	spec := loadgen.Spec{
		Rate:       loadgen.Rate{Freq: l.Rate.Freq, Per: l.Rate.Per},
		Duration:   l.Duration.Std(),
		MaxWorkers: max(l.MaxWorkers, 0),
		Timeout:    l.Timeout.Std(),
		Mix:        mixWeights(l.Mix),
		Seed:       seed,
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
		return spec, fmt.Errorf("build load: %w", errors.Join(errs...))
	}
	return spec, nil
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

func (r *runner) recordTopology() {
	for _, c := range r.sys.Components() {
		r.res.Topology = append(r.res.Topology, result.Component{Name: c.Name, Kind: c.Kind, Service: c.Service})
	}
}

func (r *runner) recordLinks() {
	for _, l := range r.links.All() {
		r.res.Links = append(r.res.Links, result.Link{From: l.From, To: l.To})
	}
}

// ProcessRecord is one line of processes.json: what a run started, so that anyone can
// check afterwards that nothing of it is left running.
type ProcessRecord struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	PID   int    `json:"pid"`
	Admin string `json:"admin"`
}

func (r *runner) writeProcesses() error {
	var recs []ProcessRecord
	for _, c := range r.sys.Components() {
		pid, _ := r.sys.PID(c.Name)
		recs = append(recs, ProcessRecord{Name: c.Name, Kind: c.Kind, PID: pid, Admin: c.Admin})
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode processes: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, ProcessesFile), b, 0o644); err != nil {
		return fmt.Errorf("write processes: %w", err)
	}
	return nil
}

// startScraper samples every component's metrics into the history until the returned
// function is called (which is safe to call twice).
func (r *runner) startScraper(ctx context.Context) (func(), error) {
	targets := func() []observe.Target {
		var out []observe.Target
		for _, c := range r.sys.Components() {
			out = append(out, observe.Target{Component: c.Name, URL: c.AdminURL() + "/metrics"})
		}
		return out
	}
	s, err := observe.NewScraper(targets, observe.WithStart(r.began))
	if err != nil {
		return nil, fmt.Errorf("start scraper: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = s.Run(sctx, func(x observe.Sample) {
			ev := history.MetricEvent(history.Metric{Component: x.Component, Name: x.Name, Labels: x.Labels, Value: x.Value})
			ev.T = max(x.T, 1)
			_ = r.hist.Write(ev)
			if m := r.abort.Load(); m != nil {
				m.onMetric(ev.T, history.Metric{Component: x.Component, Name: x.Name, Labels: x.Labels, Value: x.Value})
			}
		})
	})
	return sync.OnceFunc(func() { cancel(); wg.Wait() }), nil
}

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

// DesignPath is the file sc's design names, looked up the way a run looks it up, so that a
// caller can refuse a misspelt path before starting anything; "" when sc names no design
// file.
func DesignPath(sc *scenarios.Scenario) (string, error) {
	if sc.System.Design.Path == "" {
		return "", nil
	}
	return resolveDesign(sc, "")
}
