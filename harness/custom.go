package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
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
	"github.com/faultline-dev/faultline/topology"
	"github.com/faultline-dev/faultline/undo"
)

// Kinds of the components of a custom topology, in result.json and processes.json.
const (
	KindCustom   = "custom"
	KindExternal = "external"
)

// readyPoll is how often a readiness check is retried.
const readyPoll = 100 * time.Millisecond

// runCustom runs sc against its own topology (see package topology) instead of the
// reference system: proxies first, then the components callees first, each waited for,
// then the same load, fault timeline, scraping and checks as a reference run.
func runCustom(ctx context.Context, sc *scenarios.Scenario, o options, res *result.Run, began time.Time) (*result.Run, error) {
	res.Design = "custom"
	if errs := sc.Validate(scenarios.SystemShape{}); len(errs) > 0 {
		res.Reason = fmt.Sprintf("the scenario has %d problem(s); the first: %v", len(errs), errs[0])
		res.Hint = "run faultline validate " + sc.File
		return res, &ValidationError{Errs: errs}
	}
	if err := runnableOn(sc.Topology, res.Runtime); err != nil {
		res.Reason = err.Error()
		res.Hint = "on the local runtime every component needs a command; on docker an image or a build (see examples/)"
		return res, fmt.Errorf("run scenario: %w", err)
	}
	if o.evaluator == nil {
		o.evaluator = DefaultEvaluator()
	}
	r := &runner{o: o, sc: sc, res: res, began: began, active: map[string]bool{}}
	err := r.runCustom(ctx)
	return res, err
}

func (r *runner) runCustom(ctx context.Context) (err error) {
	o := r.o
	done, err := r.prepare(ctx)
	defer done(&err)
	if err != nil {
		return err
	}
	cleanup := r.cleanupContext(ctx)
	dir := r.dir
	links := r.links

	var planOpts []topology.PlanOption
	if r.docker != nil {
		planOpts = append(planOpts, topology.InNetwork())
	}
	plan, err := topology.NewPlan(r.sc.Topology, dir, nil, planOpts...)
	if err != nil {
		return r.fail(ctx, err)
	}
	// Every proxy exists before any caller starts, so callers are configured with it.
	for _, px := range plan.Proxies() {
		listen, err := links.Add(ctx, faults.Link{From: px.From, To: px.To, ToService: px.ToComponent, Upstream: px.Upstream})
		if err != nil {
			return r.fail(ctx, fmt.Errorf("create proxy: %w", err))
		}
		if err := plan.SetListen(px.Name(), listen); err != nil {
			return r.fail(ctx, err)
		}
		if r.docker != nil {
			// The load generator and the checks dial it from the host.
			host, err := r.docker.dial(listen)
			if err != nil {
				return r.fail(ctx, fmt.Errorf("find proxy %s: %w", px.Name(), err))
			}
			if err := plan.SetHostListen(px.Name(), host); err != nil {
				return r.fail(ctx, err)
			}
		}
	}
	r.recordLinks()
	if err := r.journal.RecordLinks(links); err != nil {
		return r.fail(ctx, err)
	}
	rendered, err := RenderScenario(r.sc, plan)
	if err != nil {
		return r.fail(ctx, err)
	}
	r.sc = rendered

	cs := &customSystem{plan: plan, procs: map[string]runtime.Process{}, readyCap: o.readyTimeout}
	if r.docker != nil {
		// The runtime is removed with the rest of the run's docker side (prepare).
		cs.rt = undo.WrapRuntime(r.docker.rt, r.journal)
		if cs.images, err = r.componentImages(ctx); err != nil {
			return r.fail(ctx, err)
		}
	} else {
		rt := local.New(local.WithLogger(o.log))
		defer func() {
			cctx, cancel := cleanup()
			defer cancel()
			_ = rt.Close(cctx)
		}()
		cs.rt = undo.WrapRuntime(rt, r.journal)
	}
	defer func() {
		r.setPhase("stopping")
		cctx, cancel := cleanup()
		defer cancel()
		if serr := cs.Stop(cctx); serr != nil {
			o.log.Warn("stop components", "err", serr)
		}
	}()
	if err := cs.Start(ctx); err != nil {
		return r.fail(ctx, err)
	}
	r.recordCustomTopology(plan)
	if err := r.writeCustomProcesses(cs); err != nil {
		return r.fail(ctx, err)
	}
	env := faults.NewEnv(links, cs)
	defer func() {
		cctx, cancel := cleanup()
		defer cancel()
		r.healAll(cctx, env)
	}()

	stopScrape, err := r.startCustomScraper(ctx, cs)
	if err != nil {
		return r.fail(ctx, err)
	}
	defer stopScrape()

	spec, bases, err := r.customLoadSpec()
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
	live := r.startCustomLive(ctx, loadOff)
	sum, lerr := loadgen.RunTargets(ctx, spec, bases, r.sink, loadgen.WithEpoch(r.began))
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
	hctx, hcancel := cleanup()
	r.healAll(hctx, env)
	hcancel()
	r.rps.Store(0)
	stopScrape()
	if err := r.hist.Flush(); err != nil {
		return r.fail(ctx, fmt.Errorf("flush history: %w", err))
	}

	r.setPhase("evaluating")
	r.mu.Lock()
	ev := Evaluation{
		Scenario: r.sc, HistoryPath: filepath.Join(dir, HistoryFile), Phases: slices.Clone(r.res.Phases),
		Faults: slices.Clone(r.faults), Load: sum, LoadStart: loadOff, LoadEnd: loadEnd, LastHeal: r.lastHeal,
		Final: FinalState{Err: "a custom topology has no final state to read"}, Live: liveResults,
	}
	r.mu.Unlock()
	cks, err := r.o.evaluator.Evaluate(ctx, ev)
	if err != nil {
		return r.fail(ctx, fmt.Errorf("evaluate checks: %w", err))
	}
	r.res.Checks = cks
	r.res.Faults = ev.Faults
	decide(r.sc, r.res, sum)
	return nil
}

// RenderScenario returns a copy of sc whose load targets, http_probe URLs and command
// checks have their topology templates ({{.Addr "web" "http"}}) rendered for the load
// generator as a caller; sc itself is left unchanged, so it can be run again.
func RenderScenario(sc *scenarios.Scenario, plan *topology.Plan) (*scenarios.Scenario, error) {
	cp := *sc
	var errs []error
	render := func(what, s string) string {
		out, err := plan.RenderClient(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("render %s: %w", what, err))
			return s
		}
		return out
	}
	cp.Load.Targets = make([]scenarios.HTTPTarget, len(sc.Load.Targets))
	for i, t := range sc.Load.Targets {
		t.URL = render("load.targets["+t.Name+"].url", t.URL)
		t.Body = render("load.targets["+t.Name+"].body", t.Body)
		if t.Headers != nil {
			h := make(map[string]string, len(t.Headers))
			for k, v := range t.Headers {
				h[k] = render("load.targets["+t.Name+"].headers."+k, v)
			}
			t.Headers = h
		}
		cp.Load.Targets[i] = t
	}
	list := func(in []scenarios.Check) []scenarios.Check {
		if in == nil {
			return nil
		}
		out := make([]scenarios.Check, len(in))
		for i, c := range in {
			if t, ok := c.Spec.(scenarios.Templated); ok {
				c.Spec = t.RenderTemplates(func(field, v string) string { return render(c.Type+" "+field, v) })
			}
			out[i] = c
		}
		return out
	}
	cp.SteadyState = list(sc.SteadyState)
	cp.AbortWhen = list(sc.AbortWhen)
	cp.Expect.Before = list(sc.Expect.Before)
	cp.Expect.After = list(sc.Expect.After)
	cp.Expect.Overall = list(sc.Expect.Overall)
	if sc.Expect.During != nil {
		cp.Expect.During = make(map[string][]scenarios.Check, len(sc.Expect.During))
		for k, v := range sc.Expect.During {
			cp.Expect.During[k] = list(v)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("render scenario: %w", errors.Join(errs...))
	}
	return &cp, nil
}

// customLoadSpec maps the load section onto a load spec of the declared targets, and
// returns the base URLs the load generator needs (every target URL is absolute).
func (r *runner) customLoadSpec() (loadgen.Spec, []string, error) {
	l := r.sc.Load
	var journeys []loadgen.Journey
	var bases []string
	for _, t := range l.Targets {
		j, err := loadgen.NewHTTPJourney(loadgen.HTTPTarget{Name: t.Name, Method: t.Method, URL: t.URL, Headers: t.Headers, Body: t.Body})
		if err != nil {
			return loadgen.Spec{}, nil, fmt.Errorf("build load: %w", err)
		}
		journeys = append(journeys, j)
		if u, err := url.Parse(t.URL); err == nil && u.Host != "" && !strings.Contains(u.Host, "{{") {
			base := u.Scheme + "://" + u.Host
			if !slices.Contains(bases, base) {
				bases = append(bases, base)
			}
		}
	}
	if len(bases) == 0 {
		return loadgen.Spec{}, nil, errors.New("build load: no target has an absolute http URL")
	}
	clients := 10
	if l.Clients > 0 {
		clients = l.Clients
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
	// One base: the load generator only fails over between several gateways, and every
	// URL here is absolute anyway.
	return spec, bases[:1], nil
}

func (r *runner) recordCustomTopology(plan *topology.Plan) {
	for _, name := range plan.Order() {
		for _, inst := range plan.Instances(name) {
			kind := KindCustom
			if inst.External {
				kind = KindExternal
			}
			r.res.Topology = append(r.res.Topology, result.Component{Name: inst.Name, Kind: kind, Service: inst.Component})
		}
	}
}

func (r *runner) writeCustomProcesses(cs *customSystem) error {
	var recs []ProcessRecord
	for _, name := range cs.started {
		pid, _ := cs.PID(name)
		recs = append(recs, ProcessRecord{Name: name, Kind: KindCustom, PID: pid})
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

// startCustomScraper samples every declared metrics endpoint into the history; it keeps
// the metrics the scenario's checks name (all of them when none does).
func (r *runner) startCustomScraper(ctx context.Context, cs *customSystem) (func(), error) {
	var targets []observe.Target
	for _, name := range cs.plan.Order() {
		c, _ := cs.plan.Topology().Component(name)
		if c.Metrics == nil {
			continue
		}
		for _, inst := range cs.plan.Instances(name) {
			u, err := cs.plan.RenderHost(inst.Name, c.Metrics.URL)
			if err != nil {
				return nil, fmt.Errorf("start scraper: %w", err)
			}
			targets = append(targets, observe.Target{Component: inst.Name, URL: u})
		}
	}
	if len(targets) == 0 {
		return func() {}, nil
	}
	opts := []observe.Option{observe.WithStart(r.began)}
	if names := metricNames(r.sc); len(names) > 0 {
		opts = append(opts, observe.WithPrefixes(names...))
	}
	s, err := observe.NewScraper(func() []observe.Target { return targets }, opts...)
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

// metricNames lists the metrics the scenario's metric checks read.
func metricNames(sc *scenarios.Scenario) []string {
	var out []string
	add := func(list []scenarios.Check) {
		for _, c := range list {
			if m, ok := c.Spec.(scenarios.MetricReader); ok {
				for _, n := range m.MetricNames() {
					if !slices.Contains(out, n) {
						out = append(out, n)
					}
				}
			}
		}
	}
	add(sc.SteadyState)
	add(sc.AbortWhen)
	add(sc.Expect.Before)
	add(sc.Expect.After)
	add(sc.Expect.Overall)
	for _, l := range sc.Expect.During {
		add(l)
	}
	sort.Strings(out)
	return out
}

// startCustomLive runs the live checks (http_probe, command) at the planned end of their
// phases, against the URLs their templates rendered to.
func (r *runner) startCustomLive(ctx context.Context, loadStart time.Duration) func() []result.Check {
	planned := checks.Phases(r.sc, nil, loadStart, loadStart+r.sc.Load.Duration.Std())
	lcs := checks.LiveChecks(r.sc, planned)
	if len(lcs) == 0 {
		return func() []result.Check { return nil }
	}
	env := checks.LiveEnv{}
	if r.sc.File != "" {
		env.Dir = filepath.Dir(r.sc.File)
	}
	return r.runLive(ctx, lcs, env)
}

// customSystem is a started topology: it starts instances in the plan's order, waits
// for each to be ready, and lends them to process faults as faults.Processes.
type customSystem struct {
	rt       runtime.Runtime
	plan     *topology.Plan
	readyCap time.Duration
	// images maps each component to its image on the Docker runtime; nil on the local one.
	images map[string]string

	mu      sync.Mutex
	procs   map[string]runtime.Process
	started []string // instance names in start order
}

var (
	_ faults.Processes    = (*customSystem)(nil)
	_ faults.PIDs         = (*customSystem)(nil)
	_ faults.HealthProber = (*customSystem)(nil)
	_ faults.Networker    = (*customSystem)(nil)
)

// Start starts every component, callees first, and returns once each instance is ready.
func (cs *customSystem) Start(ctx context.Context) error {
	topo := cs.plan.Topology()
	for _, name := range cs.plan.Order() {
		c, _ := topo.Component(name)
		if c.External() {
			continue
		}
		for _, inst := range cs.plan.Instances(name) {
			spec, err := cs.spec(c, inst)
			if err != nil {
				return err
			}
			p, err := cs.rt.Start(ctx, spec)
			if p != nil {
				cs.mu.Lock()
				cs.procs[inst.Name] = p
				cs.started = append(cs.started, inst.Name)
				cs.mu.Unlock()
			}
			if err != nil {
				return err // a runtime's Start error names the component ("start lb: ...")
			}
		}
		for _, inst := range cs.plan.Instances(name) {
			if err := cs.waitReady(ctx, c, inst.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// spec renders an instance's command, arguments, environment and files.
func (cs *customSystem) spec(c topology.Component, inst *topology.Instance) (runtime.Spec, error) {
	var errs []error
	render := func(what, text string) string {
		out, err := cs.plan.Render(inst.Name, text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		return out
	}
	if err := os.MkdirAll(inst.Dir, 0o755); err != nil {
		return runtime.Spec{}, fmt.Errorf("start %s: create run dir: %w", inst.Name, err)
	}
	for _, f := range c.Files {
		text := f.Content
		if f.Template != "" {
			p := f.Template
			if !filepath.IsAbs(p) && c.Name != "" {
				p = filepath.Join(cs.plan.Topology().Base, p)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("read template: %w", err))
				continue
			}
			text = string(b)
		}
		out := render("file "+f.Path, text)
		dst := filepath.Join(inst.Dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", f.Path, err))
			continue
		}
		if err := os.WriteFile(dst, []byte(out), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", f.Path, err))
		}
	}
	spec := runtime.Spec{
		Name:    inst.Name,
		Command: render("command", c.Command),
		Dir:     inst.Dir,
		LogFile: filepath.Join(cs.plan.RunDir(), "logs", inst.Name+".log"),
		Labels:  map[string]string{"kind": KindCustom, "component": c.Name},
	}
	if c.Dir != "" {
		spec.Dir = render("dir", c.Dir)
	}
	for i, a := range c.Args {
		spec.Args = append(spec.Args, render(fmt.Sprintf("args[%d]", i), a))
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec.Env = append(spec.Env, k+"="+render("env "+k, c.Env[k]))
	}
	if cs.images != nil {
		spec.Container = cs.containerSpec(c, inst)
	}
	if len(errs) > 0 {
		return spec, fmt.Errorf("start %s: %w", inst.Name, errors.Join(errs...))
	}
	return spec, nil
}

// containerSpec runs an instance in its component's image: every port published on the
// same port of 127.0.0.1 (so the plan's host view holds, and survives a restart), and the
// instance's run directory bind-mounted at the same path, so {{.Dir}} means one place.
func (cs *customSystem) containerSpec(c topology.Component, inst *topology.Instance) *runtime.ContainerSpec {
	ctr := &runtime.ContainerSpec{
		Image:     cs.images[c.Name],
		HostPorts: map[int]int{},
		Mounts:    []runtime.Mount{{HostPath: inst.Dir, Target: inst.Dir}},
	}
	for _, name := range c.Ports {
		port := inst.Ports[name]
		ctr.Ports = append(ctr.Ports, port)
		ctr.HostPorts[port] = port
	}
	return ctr
}

// waitReady polls the component's readiness check until it passes, the process exits,
// or the timeout passes. A component without one is ready once it is running.
func (cs *customSystem) waitReady(ctx context.Context, c topology.Component, name string) error {
	p := cs.proc(name)
	if p == nil {
		return fmt.Errorf("wait for %s: not started", name)
	}
	timeout := topology.DefaultReadyTimeout
	if c.Ready != nil && c.Ready.Timeout > 0 {
		timeout = c.Ready.Timeout
	}
	if cs.readyCap > 0 {
		timeout = min(timeout, cs.readyCap)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	check, err := cs.readyCheck(c, name)
	if err != nil {
		return err
	}
	var last error
	for {
		if !p.Running() {
			return fmt.Errorf("wait for %s: it exited (%v) before it was ready; see logs/%s.log", name, p.ExitErr(), name)
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("wait for %s: not ready after %s: %v; see logs/%s.log", name, timeout, last, name)
			}
			return fmt.Errorf("wait for %s: %w", name, ctx.Err())
		case <-p.Wait():
		case <-time.After(readyPoll):
		}
	}
}

// readyCheck builds one attempt of the component's readiness check.
func (cs *customSystem) readyCheck(c topology.Component, name string) (func(context.Context) error, error) {
	r := c.Ready
	if r == nil {
		return func(context.Context) error { return nil }, nil
	}
	render := func(s string) (string, error) {
		out, err := cs.plan.RenderHost(name, s)
		if err != nil {
			return "", fmt.Errorf("wait for %s: %w", name, err)
		}
		return out, nil
	}
	switch {
	case r.HTTP != "":
		u, err := render(r.HTTP)
		if err != nil {
			return nil, err
		}
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			ok := resp.StatusCode >= 200 && resp.StatusCode < 300
			if r.Status != 0 {
				ok = resp.StatusCode == r.Status
			}
			if !ok {
				return fmt.Errorf("GET %s answered %d", u, resp.StatusCode)
			}
			return nil
		}, nil
	case r.TCP != "":
		addr, err := render(r.TCP)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			d := net.Dialer{Timeout: time.Second}
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return conn.Close()
		}, nil
	default:
		argv := make([]string, len(r.Command))
		for i, a := range r.Command {
			s, err := render(a)
			if err != nil {
				return nil, err
			}
			argv[i] = s
		}
		return func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
			}
			return nil
		}, nil
	}
}

func (cs *customSystem) proc(name string) runtime.Process {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.procs[name]
}

func (cs *customSystem) must(name string) (runtime.Process, error) {
	p := cs.proc(name)
	if p == nil {
		return nil, fmt.Errorf("find %s: no such process (started: %s)", name, strings.Join(cs.started, ", "))
	}
	return p, nil
}

// Kill sends SIGKILL to the instance.
func (cs *customSystem) Kill(name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	return p.Kill()
}

// Pause sends SIGSTOP to the instance.
func (cs *customSystem) Pause(name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	return p.Pause()
}

// Resume sends SIGCONT to the instance.
func (cs *customSystem) Resume(name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	return p.Resume()
}

// Restart starts the instance again from the same spec (same ports, same directory) and
// waits for its readiness check, so that a healed crash means a serving component.
func (cs *customSystem) Restart(ctx context.Context, name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	if err := p.Restart(ctx); err != nil {
		return err
	}
	c, ok := cs.plan.Topology().ComponentOf(name)
	if !ok {
		return nil
	}
	return cs.waitReady(ctx, c, name)
}

// Running reports whether the instance's process is alive.
func (cs *customSystem) Running(name string) bool {
	p := cs.proc(name)
	return p != nil && p.Running()
}

// Instances lists a replicated component's instances; nil for anything else, which
// faults then treat as one instance.
func (cs *customSystem) Instances(service string) []string {
	c, ok := cs.plan.Topology().Component(service)
	if !ok || c.External() {
		return nil
	}
	return c.Instances()
}

// PID is the instance's current operating-system process id. A container offers none:
// its freezer does not show as a stopped process, so a pause is observed with Healthy.
func (cs *customSystem) PID(name string) (int, bool) {
	p := cs.proc(name)
	if p == nil || !p.Running() || cs.images != nil {
		return 0, false
	}
	return p.PID(), p.PID() > 0
}

// healthTimeout bounds one health check of a component: a paused one never answers.
const healthTimeout = time.Second

// Healthy runs one attempt of the instance's HTTP or command readiness check. Without
// one (no check, or a TCP port, which a frozen process's kernel and a container's port
// forwarder both accept) a container is healthy while the engine has it running, not
// paused and on the run's network, and a process while it runs.
func (cs *customSystem) Healthy(ctx context.Context, name string) bool {
	c, ok := cs.plan.Topology().ComponentOf(name)
	if !ok || !cs.Running(name) {
		return false
	}
	if c.Ready == nil || c.Ready.TCP != "" {
		st, ok := runtime.As[runtime.Inspector](cs.proc(name))
		if !ok {
			return true
		}
		s, err := st.State(ctx)
		return err == nil && s.Running && !s.Paused && s.Attached
	}
	check, err := cs.readyCheck(c, name)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return check(ctx) == nil
}

// Disconnect takes the instance's container off the run's network.
func (cs *customSystem) Disconnect(ctx context.Context, name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	nw, ok := runtime.As[runtime.Partitioner](p)
	if !ok {
		return fmt.Errorf("disconnect %s: the runtime does not control its network", name)
	}
	return nw.Disconnect(ctx)
}

// Reconnect puts the instance's container back on the run's network.
func (cs *customSystem) Reconnect(ctx context.Context, name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	nw, ok := runtime.As[runtime.Partitioner](p)
	if !ok {
		return fmt.Errorf("reconnect %s: the runtime does not control its network", name)
	}
	return nw.Reconnect(ctx)
}

// CanDisconnect reports whether the instance runs where its network can be cut (a
// container).
func (cs *customSystem) CanDisconnect(name string) bool {
	p := cs.proc(name)
	if p == nil {
		return false
	}
	_, ok := runtime.As[runtime.Partitioner](p)
	return ok
}

// Stop stops every instance, callers first, so a callee never disappears under a
// caller that is still shutting down cleanly.
func (cs *customSystem) Stop(ctx context.Context) error {
	cs.mu.Lock()
	names := slices.Clone(cs.started)
	cs.mu.Unlock()
	var errs []error
	for i := len(names) - 1; i >= 0; i-- {
		p := cs.proc(names[i])
		if p == nil {
			continue
		}
		_ = p.Resume() // a paused process cannot act on SIGTERM
		if err := p.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", names[i], err))
		}
	}
	return errors.Join(errs...)
}
