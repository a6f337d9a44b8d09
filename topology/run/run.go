// Package run runs a user's topology (package topology) as a system under test (package
// sut): the supervisor that starts its components in order, waits for each one's own
// readiness check, and lends them to process faults.
package run

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/runtime/wait"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/topology"
)

// Kinds of the components of a topology, in result.json and processes.json; Design is
// the design such a run reports.
const (
	KindCustom   = "custom"
	KindExternal = "external"
	Design       = "custom"
)

// readyPoll is how often a readiness check is retried.
const readyPoll = 100 * time.Millisecond

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

// System is a user's topology as a system under test: it puts a proxy on every declared
// link before any caller starts, starts the instances in the plan's order, waits for
// each to be ready (its own readiness check), and lends them to process faults.
type System struct {
	sc       *scenarios.Scenario
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
	_ sut.System          = (*System)(nil)
	_ sut.Killer          = (*System)(nil)
	_ sut.Pauser          = (*System)(nil)
	_ sut.Restarter       = (*System)(nil)
	_ sut.Disconnecter    = (*System)(nil)
	_ sut.Discarder       = (*System)(nil)
	_ sut.Deleter         = (*System)(nil)
	_ sut.Prober          = (*System)(nil)
	_ sut.PIDs            = (*System)(nil)
	_ sut.Renderer        = (*System)(nil)
	_ faults.Processes    = (*System)(nil)
	_ faults.PIDs         = (*System)(nil)
	_ faults.HealthProber = (*System)(nil)
	_ faults.Networker    = (*System)(nil)
)

// New returns the system sc's topology describes.
func New(sc *scenarios.Scenario) *System {
	return &System{sc: sc, procs: map[string]runtime.Process{}}
}

// Validate checks sc against its own topology (which the scenario carries).
func (cs *System) Validate(sc *scenarios.Scenario) []error {
	return sc.Validate(scenarios.SystemShape{})
}

// Runnable reports what stops the topology from running on rt: on the local runtime every
// component it starts needs a command, on docker an image or a build as well.
func (cs *System) Runnable(rt string) error {
	if rt == "kubernetes" {
		return &sut.Unrunnable{
			Err:  errors.New("run topology on kubernetes: a custom topology runs on local or docker only, so far"),
			Hint: "the reference system runs on kubernetes; run a topology with --runtime docker",
		}
	}
	var missing []string
	for _, c := range cs.sc.Topology.Components {
		switch {
		case c.External() && rt == "docker":
			// Its loopback address is the container's own loopback there.
			missing = append(missing, c.Name+" is an external address, which containers cannot reach")
		case c.External():
		case rt == "docker" && !c.Containerised():
			missing = append(missing, c.Name+" has no image or build")
		}
	}
	if len(missing) > 0 {
		return &sut.Unrunnable{
			Err:  fmt.Errorf("run topology on %s: %s", rt, strings.Join(missing, "; ")),
			Hint: "on the local runtime every component needs a command; on docker an image or a build (see examples/)",
		}
	}
	return nil
}

// Plan places every instance and proxy in dir; the design is "custom" and a proxy is
// needed per callee instance of every link.
func (cs *System) Plan(dir string, container bool) (sut.Plan, error) {
	var opts []topology.PlanOption
	if container {
		opts = append(opts, topology.InNetwork())
	}
	plan, err := topology.NewPlan(cs.sc.Topology, dir, nil, opts...)
	if err != nil {
		return sut.Plan{Design: Design}, err
	}
	cs.plan = plan
	n := 0
	for _, l := range cs.sc.Topology.Links {
		if c, ok := cs.sc.Topology.Component(l.To); ok {
			n += len(c.Instances())
		}
	}
	return sut.Plan{Design: Design, Proxies: n}, nil
}

// Start creates every link's proxy first, so that callers are configured with it, then
// starts every component, callees first, and returns once each instance is ready.
func (cs *System) Start(ctx context.Context, env sut.Env) error {
	cs.rt, cs.readyCap = env.Runtime, env.ReadyTimeout
	for _, px := range cs.plan.Proxies() {
		listen, err := env.Links.Add(ctx, faults.Link{From: px.From, To: px.To, ToService: px.ToComponent, Upstream: px.Upstream})
		if err != nil {
			return fmt.Errorf("create proxy: %w", err)
		}
		if err := cs.plan.SetListen(px.Name(), listen); err != nil {
			return err
		}
		if env.Dial != nil {
			// The load generator and the checks dial it from the host.
			host, err := env.Dial(listen)
			if err != nil {
				return fmt.Errorf("find proxy %s: %w", px.Name(), err)
			}
			if err := cs.plan.SetHostListen(px.Name(), host); err != nil {
				return err
			}
		}
	}
	// A template that does not render is refused before anything starts.
	if _, err := cs.Render(cs.sc); err != nil {
		return err
	}
	if env.Container {
		images, err := componentImages(ctx, cs.sc.Topology)
		if err != nil {
			return err
		}
		cs.images = images
	}
	return cs.start(ctx)
}

// Render renders sc's templates for the load generator as a caller (see RenderScenario).
func (cs *System) Render(sc *scenarios.Scenario) (*scenarios.Scenario, error) {
	return RenderScenario(sc, cs.plan)
}

// Topology lists every instance, external ones included.
func (cs *System) Topology() []result.Component {
	var out []result.Component
	for _, name := range cs.plan.Order() {
		for _, inst := range cs.plan.Instances(name) {
			kind := KindCustom
			if inst.External {
				kind = KindExternal
			}
			out = append(out, result.Component{Name: inst.Name, Kind: kind, Service: inst.Component})
		}
	}
	return out
}

// Processes lists the instances started, in start order.
func (cs *System) Processes() []sut.Process {
	cs.mu.Lock()
	names := slices.Clone(cs.started)
	cs.mu.Unlock()
	var out []sut.Process
	for _, name := range names {
		pid, _ := cs.PID(name)
		out = append(out, sut.Process{Name: name, Kind: KindCustom, PID: pid})
	}
	return out
}

// LoadTargets is nil: a topology's load targets carry absolute URLs.
func (cs *System) LoadTargets() []string { return nil }

// Scrape reads every declared metrics endpoint, keeping the metrics the checks name.
func (cs *System) Scrape() (sut.Scrape, error) {
	var targets []observe.Target
	for _, name := range cs.plan.Order() {
		c, _ := cs.plan.Topology().Component(name)
		if c.Metrics == nil {
			continue
		}
		for _, inst := range cs.plan.Instances(name) {
			u, err := cs.plan.RenderHost(inst.Name, c.Metrics.URL)
			if err != nil {
				return sut.Scrape{}, fmt.Errorf("start scraper: %w", err)
			}
			targets = append(targets, observe.Target{Component: inst.Name, URL: u})
		}
	}
	return sut.Scrape{Targets: func() []observe.Target { return targets }, Checked: true}, nil
}

// componentImages finds or builds every component's image before anything starts: a
// build takes seconds, a missing image is an error before the run, not in the middle.
func componentImages(ctx context.Context, topo *topology.Topology) (map[string]string, error) {
	out := map[string]string{}
	for _, c := range topo.Components {
		switch {
		case c.External():
		case c.Image != "":
			if err := docker.ImageExists(ctx, c.Image); err != nil {
				return nil, fmt.Errorf("component %s: %w", c.Name, err)
			}
			out[c.Name] = c.Image
		case c.Build != nil:
			tag, err := docker.BuildHostImage(ctx, docker.HostImage{Binaries: c.Build.Binaries, Files: c.Build.Files, Dirs: c.Build.Dirs})
			if err != nil {
				return nil, fmt.Errorf("build image of %s: %w", c.Name, err)
			}
			out[c.Name] = tag
		}
	}
	return out, nil
}

// start starts every component, callees first, and returns once each instance is ready.
func (cs *System) start(ctx context.Context) error {
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
func (cs *System) spec(c topology.Component, inst *topology.Instance) (runtime.Spec, error) {
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
func (cs *System) containerSpec(c topology.Component, inst *topology.Instance) *runtime.ContainerSpec {
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
func (cs *System) waitReady(ctx context.Context, c topology.Component, name string) error {
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
	if !p.Running() {
		return fmt.Errorf("wait for %s: it exited (%v) before it was ready; see logs/%s.log", name, p.ExitErr(), name)
	}
	err = wait.WhileRunning(p, wait.Func(func(ctx context.Context) (bool, error) {
		err := check(ctx)
		return err == nil, err
	}).Every(readyPoll)).Wait(ctx)
	switch {
	case err == nil:
		return nil
	case !p.Running():
		return fmt.Errorf("wait for %s: it exited (%v) before it was ready; see logs/%s.log", name, p.ExitErr(), name)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return fmt.Errorf("wait for %s: not ready after %s: %w; see logs/%s.log", name, timeout, err, name)
	default:
		return fmt.Errorf("wait for %s: %w", name, err)
	}
}

// readyCheck builds one attempt of the component's readiness check.
func (cs *System) readyCheck(c topology.Component, name string) (func(context.Context) error, error) {
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
		return func(ctx context.Context) error { return wait.CheckHTTP(ctx, client, u, r.Status) }, nil
	case r.TCP != "":
		addr, err := render(r.TCP)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			return wait.CheckTCP(ctx, addr)
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

// Process is an instance's current process (sut.Inspectable).
func (cs *System) Process(name string) (runtime.Process, bool) {
	p := cs.proc(name)
	return p, p != nil
}

func (cs *System) proc(name string) runtime.Process {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.procs[name]
}

func (cs *System) must(name string) (runtime.Process, error) {
	p := cs.proc(name)
	if p == nil {
		return nil, fmt.Errorf("find %s: no such process (started: %s)", name, strings.Join(cs.started, ", "))
	}
	return p, nil
}

// Kill sends SIGKILL to the instance.
func (cs *System) Kill(name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	return p.Kill()
}

// Pause sends SIGSTOP to the instance.
func (cs *System) Pause(name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	return p.Pause()
}

// Resume sends SIGCONT to the instance.
func (cs *System) Resume(name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	return p.Resume()
}

// Restart starts the instance again from the same spec (same ports, same directory) and
// waits for its readiness check, so that a healed crash means a serving component.
func (cs *System) Restart(ctx context.Context, name string) error {
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
func (cs *System) Running(name string) bool {
	p := cs.proc(name)
	return p != nil && p.Running()
}

// Instances lists a replicated component's instances; nil for anything else, which
// faults then treat as one instance.
func (cs *System) Instances(service string) []string {
	c, ok := cs.plan.Topology().Component(service)
	if !ok || c.External() {
		return nil
	}
	return c.Instances()
}

// PID is the instance's current operating-system process id. A container offers none:
// its freezer does not show as a stopped process, so a pause is observed with Healthy.
func (cs *System) PID(name string) (int, bool) {
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
func (cs *System) Healthy(ctx context.Context, name string) bool {
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
func (cs *System) Disconnect(ctx context.Context, name string) error {
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
func (cs *System) Reconnect(ctx context.Context, name string) error {
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
func (cs *System) CanDisconnect(name string) bool {
	p := cs.proc(name)
	if p == nil {
		return false
	}
	_, ok := runtime.As[runtime.Partitioner](p)
	return ok
}

// Delete deletes the instance and waits until the replacement its runtime's controller
// made (a Kubernetes Deployment's new pod) passes the instance's readiness check.
func (cs *System) Delete(ctx context.Context, name string) error {
	p, err := cs.must(name)
	if err != nil {
		return err
	}
	r, ok := runtime.As[runtime.Replacer](p)
	if !ok {
		return fmt.Errorf("delete %s: the runtime has no controller that replaces a deleted instance", name)
	}
	if err := r.Delete(ctx); err != nil {
		return err
	}
	c, ok := cs.plan.Topology().ComponentOf(name)
	if !ok {
		return nil
	}
	return cs.waitReady(ctx, c, name)
}

// CanDelete reports whether the instance's runtime replaces it when deleted (kubernetes).
func (cs *System) CanDelete(name string) bool {
	p := cs.proc(name)
	if p == nil {
		return false
	}
	_, ok := runtime.As[runtime.Replacer](p)
	return ok
}

// InstanceID names the instance's current incarnation (a pod's UID); "" where the runtime
// replaces nothing.
func (cs *System) InstanceID(name string) string {
	p := cs.proc(name)
	if p == nil {
		return ""
	}
	r, ok := runtime.As[runtime.Replacer](p)
	if !ok {
		return ""
	}
	return r.InstanceID()
}

// Discard ends the system for a run whose runtime removes every instance right after
// (sut.Discarder): every instance is the runtime's, so there is nothing else to release.
func (cs *System) Discard(context.Context) error { return nil }

// Stop stops every instance, callers first, so a callee never disappears under a
// caller that is still shutting down cleanly.
func (cs *System) Stop(ctx context.Context) error {
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
