package reference

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/system"
)

// System is the reference system as a system under test: the services of package system
// started from a scenario's system section, with a proxy on every edge (see Interposer)
// and its orders and stock read for the consistency checks.
type System struct {
	sc      *scenarios.Scenario
	command string
	args    []string

	fixed *system.Spec // set by FromSpec: the spec as given, no scenario behind it
	spec  system.Spec
	ip    *Interposer
	sys   *system.System // nil until Start succeeded
}

var (
	_ sut.System          = (*System)(nil)
	_ sut.Killer          = (*System)(nil)
	_ sut.Pauser          = (*System)(nil)
	_ sut.Restarter       = (*System)(nil)
	_ sut.Disconnecter    = (*System)(nil)
	_ sut.Deleter         = (*System)(nil)
	_ sut.RoutePublisher  = (*System)(nil)
	_ sut.Discarder       = (*System)(nil)
	_ sut.Tokener         = (*System)(nil)
	_ sut.Journeyer       = (*System)(nil)
	_ sut.StateReader     = (*System)(nil)
	_ sut.Leaser          = (*System)(nil)
	_ sut.FaultlineImage  = (*System)(nil)
	_ sut.Registrar       = (*System)(nil)
	_ sut.Gauger          = (*System)(nil)
	_ faults.Processes    = (*System)(nil)
	_ faults.PIDs         = (*System)(nil)
	_ faults.HealthProber = (*System)(nil)
)

// New returns the reference system sc's system section describes. command and args are
// the faultline executable (and arguments before "--config FILE") its processes are
// re-executed from on the local runtime; empty means this executable with "serve".
func New(sc *scenarios.Scenario, command string, args ...string) *System {
	return &System{sc: sc, command: command, args: args}
}

// FromSpec returns the reference system spec describes, for a caller with no scenario
// (a soak); an empty spec.Dir means the run directory's "system".
func FromSpec(spec system.Spec) *System {
	return &System{sc: &scenarios.Scenario{}, fixed: &spec}
}

// Command is the executable and arguments New was given.
func (s *System) Command() (string, []string) { return s.command, s.args }

// Validate checks sc against the reference system's components and routes.
func (s *System) Validate(sc *scenarios.Scenario) []error {
	return sc.Validate(scenarios.DefaultShape(sc.System))
}

// Runnable accepts the local, the Docker and the Kubernetes runtime.
func (s *System) Runnable(rt string) error {
	if rt != "local" && rt != "docker" && rt != "kubernetes" {
		return &sut.Unrunnable{Err: fmt.Errorf("runtime %q is not supported", rt), Hint: "use system.runtime: local or docker, or --runtime kubernetes"}
	}
	return nil
}

// Plan resolves the scenario's design and maps its system section onto a system spec.
func (s *System) Plan(dir string, container bool) (sut.Plan, error) {
	if s.fixed != nil {
		return s.planSpec(*s.fixed, dir, container)
	}
	sys := s.sc.System
	designFile, err := resolveDesign(s.sc, dir)
	if err != nil {
		return sut.Plan{}, err
	}
	p := sut.Plan{Design: "default"}
	if designFile != "" {
		p.Design = strings.TrimSuffix(filepath.Base(designFile), filepath.Ext(designFile))
	}
	spec := system.Spec{
		Dir:       filepath.Join(dir, "system"),
		Merchants: sys.ReplicasOf("merchant"), Orders: sys.ReplicasOf("order"), Products: sys.ReplicasOf("product"),
		Gateways:   sys.ReplicasOf("gateway"),
		DesignFile: designFile,
		LeaseTTL:   sys.LeaseTTL.Std(),
	}
	if sys.Stock > 0 {
		spec.Catalog = config.DefaultCatalog()
		spec.Catalog.InitialStock = sys.Stock
	}
	if !container {
		// In a container the command is the image's binary (system.Start's default).
		spec.Command, spec.Args = s.command, s.args
	}
	if spec.LeaseTTL > 0 && spec.LeaseTTL < time.Second {
		// etcd leases have a granularity of one second.
		spec.LeaseTTL = time.Second
	}
	s.spec = spec
	if container {
		if p.Proxies, err = proxyPorts(spec); err != nil {
			return p, err
		}
	}
	return p, nil
}

// planSpec plans a system from a spec given as it is.
func (s *System) planSpec(spec system.Spec, dir string, container bool) (sut.Plan, error) {
	spec.Dir = cmp.Or(spec.Dir, filepath.Join(dir, "system"))
	if container {
		spec.Command, spec.Args = "", nil
	}
	s.spec = spec
	p := sut.Plan{Design: "default"}
	if spec.DesignFile != "" {
		p.Design = strings.TrimSuffix(filepath.Base(spec.DesignFile), filepath.Ext(spec.DesignFile))
	}
	if container {
		n, err := proxyPorts(spec)
		if err != nil {
			return p, err
		}
		p.Proxies = n
	}
	return p, nil
}

// Start starts the services with the interposer's proxies on every edge.
func (s *System) Start(ctx context.Context, env sut.Env) error {
	s.ip = NewInterposer(env.Links, env.Log)
	s.ip.resolve = env.Dial
	sys, err := system.Start(ctx, env.Runtime, s.spec, system.WithLogger(env.Log), system.WithInterposer(s.ip), system.WithReadyTimeout(env.ReadyTimeout))
	if err != nil {
		return err
	}
	s.sys = sys
	return nil
}

// PublishRoutes waits until every caller reaches every callee instance through its proxy.
func (s *System) PublishRoutes(ctx context.Context) error { return s.ip.WaitRoutes(ctx, s.sys) }

// Gauges are the asynchronous path's two buffers (docs/ARCHITECTURE.md's metric list):
// the order service's unpublished outbox rows and the inventory consumer's pending
// messages, which grow while the broker or the consumer is cut off and drain after.
func (s *System) Gauges() []sut.Gauge {
	return []sut.Gauge{
		{Metric: "faultline_outbox_backlog", Title: "outbox backlog (unpublished rows)"},
		{Metric: "faultline_consumer_lag", Title: "consumer lag (pending messages)"},
	}
}

// Registered lists the instances in the registry now (see Interposer.Registered).
func (s *System) Registered() (map[string]bool, bool) {
	if s.ip == nil {
		return nil, false
	}
	return s.ip.Registered()
}

// Stop stops the services and the route publisher.
func (s *System) Stop(ctx context.Context) error { return s.end(ctx, (*system.System).Stop) }

// Discard ends the system for a run whose runtime removes every service right after
// (sut.Discarder): no graceful stop, only the route publisher closed.
func (s *System) Discard(ctx context.Context) error { return s.end(ctx, (*system.System).Discard) }

// end ends the services the way given, then closes the route publisher.
func (s *System) end(ctx context.Context, how func(*system.System, context.Context) error) error {
	var err error
	if s.sys != nil {
		err = how(s.sys, ctx)
	}
	if s.ip != nil {
		_ = s.ip.Close()
	}
	return err
}

// Started is the running system, nil before Start succeeded.
func (s *System) Started() *system.System { return s.sys }

// Topology lists every component.
func (s *System) Topology() []result.Component {
	var out []result.Component
	for _, c := range s.sys.Components() {
		out = append(out, result.Component{Name: c.Name, Kind: c.Kind, Service: c.Service})
	}
	return out
}

// Processes lists every component with its process id and admin address.
func (s *System) Processes() []sut.Process {
	var out []sut.Process
	for _, c := range s.sys.Components() {
		pid, _ := s.sys.PID(c.Name)
		out = append(out, sut.Process{Name: c.Name, Kind: c.Kind, PID: pid, Admin: c.Admin})
	}
	return out
}

// LoadTargets are the gateways.
func (s *System) LoadTargets() []string { return s.sys.GatewayURLs() }

// Scrape reads every component's admin /metrics.
func (s *System) Scrape() (sut.Scrape, error) {
	return sut.Scrape{Targets: func() []observe.Target {
		var out []observe.Target
		for _, c := range s.sys.Components() {
			out = append(out, observe.Target{Component: c.Name, URL: c.AdminURL() + "/metrics"})
		}
		return out
	}}, nil
}

// Token issues a client token signed with the system's key.
func (s *System) Token(subject string, ttl time.Duration) (string, error) {
	return s.sys.Token(subject, ttl)
}

// Journeys are the reference journeys over the system's catalog.
func (s *System) Journeys(token func(client int) string) []loadgen.Journey {
	return Journeys(token, WithCatalog(s.sys.Spec().Catalog))
}

// ReadState reads orders, stock and applied events (see the package function).
func (s *System) ReadState(ctx context.Context) (sut.State, error) {
	st, err := ReadState(ctx, s.sys)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// LeaseTTL is the registry leases' time to live.
func (s *System) LeaseTTL() time.Duration { return s.sys.Spec().LeaseTTL }

// RunsFaultlineImage: every service is the faultline binary.
func (s *System) RunsFaultlineImage() bool { return true }

// Kill kills a component.
func (s *System) Kill(name string) error { return s.sys.Kill(name) }

// Pause freezes a component.
func (s *System) Pause(name string) error { return s.sys.Pause(name) }

// Resume thaws a component.
func (s *System) Resume(name string) error { return s.sys.Resume(name) }

// Restart starts a component again and waits for it.
func (s *System) Restart(ctx context.Context, name string) error { return s.sys.Restart(ctx, name) }

// Running reports whether a component runs.
func (s *System) Running(name string) bool { return s.sys.Running(name) }

// Instances lists a service's components.
func (s *System) Instances(service string) []string { return s.sys.Instances(service) }

// Process is a component's current process (sut.Inspectable).
func (s *System) Process(name string) (runtime.Process, bool) {
	if s.sys == nil {
		return nil, false
	}
	return s.sys.Process(name)
}

// PID is a local component's process id.
func (s *System) PID(name string) (int, bool) { return s.sys.PID(name) }

// Healthy asks a component's health endpoint.
func (s *System) Healthy(ctx context.Context, name string) bool { return s.sys.Healthy(ctx, name) }

// Disconnect takes a component's container off the run's network.
func (s *System) Disconnect(ctx context.Context, name string) error {
	return s.sys.Disconnect(ctx, name)
}

// Reconnect puts a component's container back.
func (s *System) Reconnect(ctx context.Context, name string) error {
	return s.sys.Reconnect(ctx, name)
}

// CanDisconnect reports whether a component runs in a container.
func (s *System) CanDisconnect(name string) bool { return s.sys.CanDisconnect(name) }

// Delete deletes a component's instance and waits for its controller's replacement.
func (s *System) Delete(ctx context.Context, name string) error { return s.sys.Delete(ctx, name) }

// CanDelete reports whether a component's runtime replaces a deleted instance (kubernetes).
func (s *System) CanDelete(name string) bool { return s.sys.CanDelete(name) }

// InstanceID names a component's current instance (a pod's UID).
func (s *System) InstanceID(name string) string { return s.sys.InstanceID(name) }

// DesignPath is the file sc's design names, looked up the way a run looks it up, so that a
// caller can refuse a misspelt path before starting anything; "" when sc names no design
// file.
func DesignPath(sc *scenarios.Scenario) (string, error) {
	if sc.System.Design.Path == "" {
		return "", nil
	}
	return resolveDesign(sc, "")
}

// resolveDesign finds the design file a scenario names. A relative path is looked up next
// to the scenario file and in its parent directories, then in the working directory and
// its parents, so that "designs/resilient.yaml" works from anywhere in a checkout. An
// inline design is written into the run directory.
func resolveDesign(sc *scenarios.Scenario, dir string) (string, error) {
	d := sc.System.Design
	switch {
	case d.Inline != nil:
		b, err := yaml.Marshal(d.Inline)
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

// proxyPorts is how many proxies the reference system of spec can need: one per caller
// instance to the registry, the broker and the balancer, and one per (calling service,
// callee instance) route. Publishing a port costs the engine a helper process, so the
// count is worked out rather than guessed large.
func proxyPorts(spec system.Spec) (int, error) {
	d, err := design.Load(spec.DesignFile)
	if err != nil {
		return 0, fmt.Errorf("load design: %w", err)
	}
	m := cmp.Or(spec.Merchants, system.DefaultReplicas)
	p := cmp.Or(spec.Products, system.DefaultReplicas)
	o := cmp.Or(spec.Orders, system.DefaultReplicas)
	g := cmp.Or(spec.Gateways, d.Gateways, 1)
	callers := m + p + o + g
	shared := 2 // registry and broker
	routed := 2
	if d.Discovery == design.DiscoveryServer {
		callers++ // the balancer dials the registry and the broker too
		shared++
		routed++
	}
	routes := (m+p)*routed + o*(routed-1)
	return callers*shared + routes, nil
}
