// Package system runs the reference system as a whole — registry, broker, merchant, product
// and order replicas, an optional balancer and the gateways — on any runtime.Runtime. It
// owns the run directory layout, port allocation, per-process configs, start order,
// readiness and the process controls that faults use by component name.
package system

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/reference-services/auth"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/design"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/ports"
	"github.com/faultline-dev/faultline/runtime/wait"
)

// Token claims every gateway of a system checks; Token issues with them.
const (
	Issuer   = "faultline"
	Audience = "faultline-gateway"
)

// serveConfigEnv mirrors serve.ConfigEnv (a test pins them together); importing serve here
// would make this package depend on every component's implementation.
const serveConfigEnv = "FAULTLINE_SERVE_CONFIG"

// Defaults used when a Spec leaves a field zero.
const (
	DefaultReplicas     = 2
	DefaultLeaseTTL     = 2 * time.Second
	DefaultReadyTimeout = 60 * time.Second
	DefaultStopTimeout  = 15 * time.Second
)

// Spec describes one reference system. The zero value of every field but Dir is usable.
type Spec struct {
	// Dir is the run directory: config/, logs/, data/<service>/, secrets/jwt.key. Data and
	// the secret survive a stop, so the next start is warm and old tokens stay valid.
	Dir string
	// Replicas per service (default 2 each). Gateways defaults to the design's count, or 1.
	Merchants, Orders, Products, Gateways int
	// DesignFile is a design YAML; empty means design.Default().
	DesignFile string
	// LeaseTTL is the registry lease (heartbeat) of every instance; default 2 s.
	LeaseTTL time.Duration
	// Catalog is the seed data; the zero value means config.DefaultCatalog().
	Catalog config.Catalog
	// Command and Args re-execute faultline; default os.Executable() and ["serve"]. Each
	// component gets "--config FILE" appended and FAULTLINE_SERVE_CONFIG=FILE in its
	// environment, so a test binary whose TestMain calls serve.FromEnv works as well.
	Command string
	Args    []string
	// Env is added to every component's environment.
	Env []string
}

// Validate reports every problem with s at once.
func (s Spec) Validate() []error {
	var errs []error
	if s.Dir == "" {
		errs = append(errs, errors.New("dir is empty"))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"merchants", s.Merchants}, {"orders", s.Orders}, {"products", s.Products}, {"gateways", s.Gateways}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s is %d, want >= 0 (0 means the default)", f.name, f.v))
		}
		if f.v > 32 {
			errs = append(errs, fmt.Errorf("%s is %d, want <= 32 on one machine", f.name, f.v))
		}
	}
	if s.LeaseTTL < 0 {
		errs = append(errs, fmt.Errorf("lease_ttl is %s, want >= 0", s.LeaseTTL))
	}
	if s.LeaseTTL > 0 && s.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("lease_ttl is %s; etcd leases have a granularity of 1s", s.LeaseTTL))
	}
	if s.Catalog.Merchants < 0 || s.Catalog.Products < 0 || s.Catalog.InitialStock < 0 {
		errs = append(errs, fmt.Errorf("catalog %+v has a negative field", s.Catalog))
	}
	if s.Catalog != (config.Catalog{}) && (s.Catalog.Merchants == 0 || s.Catalog.Products == 0) {
		errs = append(errs, errors.New("catalog needs at least one merchant and one product"))
	}
	if s.DesignFile != "" {
		if _, err := os.Stat(s.DesignFile); err != nil {
			errs = append(errs, fmt.Errorf("design file: %w", err))
		}
	}
	for i, e := range s.Env {
		if !containsEq(e) {
			errs = append(errs, fmt.Errorf("env[%d] %q is not KEY=VALUE", i, e))
		}
	}
	return errs
}

func containsEq(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] == '=' {
			return true
		}
	}
	return false
}

// Option tunes how a system is started.
type Option func(*options)

type options struct {
	log          *slog.Logger
	readyTimeout time.Duration
	interposer   Interposer // see interpose.go
	keepData     bool       // see docker.go
	// began and phases: see WithStartedAt. owned: see WithOwnedRuntime.
	began  time.Time
	phases []Phase
	owned  bool
}

// WithStartedAt says the start began at began, before Start was called, with phases
// already done (an image lookup, a network or namespace created for the system): they
// count into the system's Startup and ready time.
func WithStartedAt(began time.Time, phases ...Phase) Option {
	return func(o *options) { o.began, o.phases = began, slices.Clone(phases) }
}

// WithOwnedRuntime hands Start's runtime to the system, made for it alone: once the system
// is up, Stop and Discard close it (removing whatever it holds) and LeaseLost watches it.
// A Start that fails leaves it to the caller.
func WithOwnedRuntime() Option {
	return func(o *options) { o.owned = true }
}

// WithLogger logs planning, starts and readiness.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// LoggerOf is the logger opts set with WithLogger (one that discards when none does), for
// whoever makes the runtime a system starts on and logs to the same place.
func LoggerOf(opts []Option) *slog.Logger {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	return o.log
}

// WithReadyTimeout bounds the wait for every component's /readyz (default 60 s, generous
// for a loaded CI machine; a healthy start takes about a second).
func WithReadyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.readyTimeout = d
		}
	}
}

// Component is one process of the system.
type Component struct {
	Name    string // "order-2"
	Kind    string // config.Kind*
	Service string // "order"
	// Listen is the main address (gRPC, gateway HTTP, etcd client, NATS); Admin serves
	// /healthz, /readyz and /metrics; Peer is etcd's peer address (registry only). On a
	// container runtime Listen and Admin are the ports published on the harness's
	// 127.0.0.1 (known once the container runs, asked again after a Restart) and Peer is
	// the address inside the container.
	Listen, Admin, Peer string
	// NetAddr is the main address other components dial: Listen on the local runtime,
	// "<name>:<port>" on a container network.
	NetAddr string
	// ConfigPath and LogPath are host files; DataDir is the host directory of the data,
	// empty when it lives in a container runtime's run volume.
	ConfigPath, LogPath, DataDir string
	Process                      runtime.Process

	ports containerPorts // container runtime only
}

// AdminURL is the base URL of the component's admin server.
func (c Component) AdminURL() string { return "http://" + c.Admin }

// System is a started reference system.
type System struct {
	spec   Spec
	rt     runtime.Runtime
	opts   options
	design design.Design
	secret []byte
	// containers is set when rt runs containers (docker.go): fixed in-container ports,
	// peers by alias, configs and secret copied in, data in run volumes.
	containers bool
	// bindFiles mounts a container's config, secret and design from the run directory
	// instead of copying them in, where the engine sees this host's files: a copy costs the
	// engine a mount of the container's file system and an extraction, 0.2–0.8 s of every
	// container's creation under load, on the start's critical path.
	bindFiles bool
	// owned is the runtime made for this system alone (WithOwnedRuntime); Stop closes it.
	owned runtime.Runtime

	mu    sync.Mutex
	comps []*Component // start order

	readyDur time.Duration
	startup  Startup
}

// Start plans and starts a system on rt and returns once every component is ready. Each
// component starts as soon as the components it dials while starting are ready (the
// registry and the broker first, see dependencies), so a slow component delays only its
// dependents; Startup says where the time went. On any error Start stops what it started.
func Start(ctx context.Context, rt runtime.Runtime, s Spec, opts ...Option) (*System, error) {
	o := options{log: slog.New(slog.DiscardHandler), readyTimeout: DefaultReadyTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	began := o.began
	if began.IsZero() {
		began = time.Now()
	}
	if rt == nil {
		return nil, errors.New("start system: runtime is nil")
	}
	if errs := s.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("validate system spec: %w", errors.Join(errs...))
	}
	containers := isContainerRuntime(rt)
	if containers {
		s = s.withContainerCommand()
	}
	s, d, err := s.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("start system: %w", err)
	}
	sys := &System{spec: s, rt: rt, opts: o, design: d, containers: containers, bindFiles: bindsHostFiles(rt)}
	sys.startup.Phases = slices.Clone(o.phases)
	planBegan := time.Now()
	if err := sys.prepare(); err != nil {
		return nil, fmt.Errorf("start system: %w", err)
	}
	sys.startup.Phases = append(sys.startup.Phases, Phase{Name: "plan", Took: time.Since(planBegan)})
	if err := sys.startGraph(ctx, began); err != nil {
		return nil, sys.abort(fmt.Errorf("start system: %w", err))
	}
	sys.readyDur = time.Since(began)
	sys.startup.Ready = sys.readyDur
	if o.owned {
		sys.owned = rt
	}
	o.log.Info("system ready", "components", len(sys.comps), "took", sys.readyDur, "gateway", sys.GatewayURL())
	return sys, nil
}

func (s Spec) withDefaults() (Spec, design.Design, error) {
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return s, design.Design{}, fmt.Errorf("resolve dir: %w", err)
	}
	s.Dir = dir
	if s.DesignFile != "" {
		if s.DesignFile, err = filepath.Abs(s.DesignFile); err != nil {
			return s, design.Design{}, fmt.Errorf("resolve design file: %w", err)
		}
	}
	d, err := design.Load(s.DesignFile)
	if err != nil {
		return s, design.Design{}, fmt.Errorf("load design: %w", err)
	}
	s.Merchants = cmp.Or(s.Merchants, DefaultReplicas)
	s.Orders = cmp.Or(s.Orders, DefaultReplicas)
	s.Products = cmp.Or(s.Products, DefaultReplicas)
	s.Gateways = cmp.Or(s.Gateways, d.Gateways, 1)
	s.LeaseTTL = cmp.Or(s.LeaseTTL, DefaultLeaseTTL)
	if s.Catalog == (config.Catalog{}) {
		s.Catalog = config.DefaultCatalog()
	}
	if s.Command == "" {
		exe, err := os.Executable()
		if err != nil {
			return s, design.Design{}, fmt.Errorf("find own executable: %w", err)
		}
		s.Command = exe
		if s.Args == nil {
			s.Args = []string{"serve"}
		}
	}
	return s, d, nil
}

// prepare creates the run directory, the JWT secret, the ports and every config file.
func (sys *System) prepare() error {
	s := sys.spec
	for _, sub := range []string{"config", "logs", "data", "secrets"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, sub), 0o755); err != nil {
			return fmt.Errorf("create run dir: %w", err)
		}
	}
	secretPath := filepath.Join(s.Dir, "secrets", "jwt.key")
	secret, err := auth.LoadOrCreateSecret(secretPath)
	if err != nil {
		return fmt.Errorf("load jwt secret: %w", err)
	}
	sys.secret = secret

	var plan []planned
	add := func(kind string, n int) {
		for i := 1; i <= n; i++ {
			plan = append(plan, planned{name: kind + "-" + strconv.Itoa(i), kind: kind, service: kind})
		}
	}
	add(config.KindRegistry, 1)
	add(config.KindBroker, 1)
	add(config.KindMerchant, s.Merchants)
	add(config.KindProduct, s.Products)
	add(config.KindOrder, s.Orders)
	serverSide := sys.design.Discovery == design.DiscoveryServer
	if serverSide {
		add(config.KindBalancer, 1)
	}
	add(config.KindGateway, s.Gateways)

	// Host ports are allocated for containers too: their published ports are pinned to
	// them, so an address survives a restart.
	hostAddrs, err := localAddrs(s.Dir, plan)
	if err != nil {
		return err
	}
	addrs := hostAddrs
	if sys.containers {
		addrs = containerAddrs(plan)
	}

	registryEndpoints := []string{addrs["registry-1/net"]}
	brokerURL := "nats://" + addrs["broker-1/net"]
	var balancerAddr string
	if serverSide {
		balancerAddr = addrs["balancer-1/net"]
	}
	for _, p := range plan {
		c := &Component{
			Name: p.name, Kind: p.kind, Service: p.service,
			Listen:     addrs[p.name+"/listen"],
			Admin:      addrs[p.name+"/admin"],
			Peer:       addrs[p.name+"/peer"],
			NetAddr:    addrs[p.name+"/net"],
			ConfigPath: filepath.Join(s.Dir, "config", p.name+".json"),
			LogPath:    filepath.Join(s.Dir, "logs", p.name+".log"),
			DataDir:    filepath.Join(s.Dir, "data", p.service),
		}
		cfg := config.Component{
			Kind: c.Kind, Name: c.Name, Service: c.Service,
			Listen: c.Listen, Admin: c.Admin, Peer: c.Peer,
			DataDir:  c.DataDir,
			LeaseTTL: config.Duration(s.LeaseTTL),
			Design:   s.DesignFile,
			JWT:      config.JWT{SecretFile: secretPath, Issuer: Issuer, Audience: Audience},
			Catalog:  s.Catalog,
		}
		if sys.containers {
			if err := sys.containerize(c, &cfg, hostAddrs[p.name+"/listen"], hostAddrs[p.name+"/admin"]); err != nil {
				return err
			}
		}
		if c.DataDir != "" {
			if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
				return fmt.Errorf("create data dir: %w", err)
			}
		}
		if c.Kind != config.KindRegistry && c.Kind != config.KindBroker {
			cfg.Registry = registryEndpoints
			cfg.Broker = brokerURL
			cfg.Balancer = balancerAddr
			if err := sys.interpose(c, &cfg); err != nil {
				return fmt.Errorf("plan %s: %w", c.Name, err)
			}
		}
		if errs := cfg.Validate(); len(errs) > 0 {
			return fmt.Errorf("plan %s: %w", c.Name, errors.Join(errs...))
		}
		if err := cfg.Save(c.ConfigPath); err != nil {
			return fmt.Errorf("plan %s: %w", c.Name, err)
		}
		sys.comps = append(sys.comps, c)
	}
	sys.opts.log.Info("system planned", "dir", s.Dir, "components", len(sys.comps), "discovery", sys.design.Discovery)
	return nil
}

// planned is one component before it has addresses.
type planned struct {
	name, kind, service string
}

// localAddrs allocates 127.0.0.1 ports for every component ("<name>/listen", "/admin",
// "/peer"; "/net" is the listen address, which peers dial directly).
func localAddrs(dir string, plan []planned) (map[string]string, error) {
	var err error
	alloc := ports.New(filepath.Join(dir, "ports.json"))
	defer alloc.Release()
	addrs := map[string]string{}
	for _, p := range plan {
		if p.kind == config.KindGateway {
			continue
		}
		if addrs[p.name+"/listen"], err = alloc.Take(p.name + "/listen"); err != nil {
			return nil, err
		}
	}
	var gwKeys []string
	for _, p := range plan {
		if p.kind == config.KindGateway {
			gwKeys = append(gwKeys, p.name+"/listen")
		}
	}
	gw, err := alloc.TakeRange(gwKeys)
	if err != nil {
		return nil, err
	}
	for i, k := range gwKeys {
		addrs[k] = gw[i]
	}
	for _, p := range plan {
		if addrs[p.name+"/admin"], err = alloc.Take(p.name + "/admin"); err != nil {
			return nil, err
		}
	}
	if addrs["registry-1/peer"], err = alloc.Take("registry-1/peer"); err != nil {
		return nil, err
	}
	if err := alloc.Save(); err != nil {
		return nil, err
	}

	for _, p := range plan {
		addrs[p.name+"/net"] = addrs[p.name+"/listen"]
	}
	return addrs, nil
}

// startGraph starts every component once its dependencies are ready and waits for all of
// them, within the ready timeout.
func (sys *System) startGraph(ctx context.Context, began time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, sys.opts.readyTimeout)
	defer cancel()
	byName := map[string]*Component{}
	var steps []step
	for _, c := range sys.comps {
		byName[c.Name] = c
		steps = append(steps, sys.step(c))
	}
	prepared := sys.prepareAll(ctx, steps)
	var (
		preparedMu sync.Mutex
		preparedAt = map[string]time.Duration{}
	)
	timings, err := runGraph(ctx, steps, stepFuncs{
		start: func(ctx context.Context, name string) error {
			if ch, ok := prepared[name]; ok {
				select {
				case res := <-ch:
					if res.err != nil {
						return fmt.Errorf("start %s: %w", name, res.err)
					}
					preparedMu.Lock()
					preparedAt[name] = res.at.Sub(began)
					preparedMu.Unlock()
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return sys.startOne(ctx, byName[name])
		},
		ready: func(ctx context.Context, name string) error {
			if err := sys.readiness(byName[name]).Wait(ctx); err != nil {
				return fmt.Errorf("wait for readiness (logs in %s): %w", filepath.Join(sys.spec.Dir, "logs"), err)
			}
			return nil
		},
		up: sys.up,
	}, began)
	for i := range timings {
		timings[i].Prepared = preparedAt[timings[i].Name]
	}
	sys.startup.Components = timings
	return err
}

// prepareResult is how a container's creation ahead of its start ended, and when.
type prepareResult struct {
	err error
	at  time.Time
}

// prepareAll begins, on a runtime that offers it (containers), the part of every start
// that needs no peer — creating the container — for every component that waits for
// another, all at once, so that such a component is only started once its dependencies
// are. A creation is cheap for the engine (no file system is mounted: the files are bound
// in, see System.bindFiles), so it hardly delays the components without dependencies,
// which start at once. Each channel of prepared yields its component's result.
func (sys *System) prepareAll(ctx context.Context, steps []step) (prepared map[string]chan prepareResult) {
	pr, ok := preparer(sys.rt)
	if !ok {
		return nil
	}
	prepared = map[string]chan prepareResult{}
	for i, c := range sys.comps {
		if steps[i].root() {
			continue
		}
		ch := make(chan prepareResult, 1)
		prepared[c.Name] = ch
		go func() {
			spec, err := sys.processSpec(c)
			if err == nil {
				err = pr.Prepare(ctx, spec)
			}
			ch <- prepareResult{err: err, at: time.Now()}
		}()
	}
	return prepared
}

func (sys *System) startOne(ctx context.Context, c *Component) error {
	spec, err := sys.processSpec(c)
	if err != nil {
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	p, err := sys.rt.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("start %s: %w", c.Name, err)
	}
	sys.mu.Lock()
	c.Process = p
	sys.mu.Unlock()
	return nil
}

// processSpec is the runtime spec of c: a process re-executing faultline with its config,
// or on a container runtime its container (containerSpec).
func (sys *System) processSpec(c *Component) (runtime.Spec, error) {
	if sys.containers {
		return sys.containerSpec(c)
	}
	s := sys.spec
	return runtime.Spec{
		Name: c.Name, Command: s.Command,
		Args: append(slices.Clone(s.Args), "--config", c.ConfigPath),
		// The faultline binary links testcontainers, whose package init lists every
		// process of the host through /proc (gopsutil): 5 to 50 ms of every component's
		// start, more the busier the host. A component never talks to Docker, so that
		// library gets an empty process table; nothing else in a component reads HOST_PROC.
		Env:     append([]string{"HOST_PROC=" + emptyProc}, append(slices.Clone(s.Env), serveConfigEnv+"="+c.ConfigPath)...),
		LogFile: c.LogPath,
		Labels:  map[string]string{"faultline.kind": c.Kind, "faultline.service": c.Service, "faultline.dir": s.Dir},
	}, nil
}

// emptyProc is a /proc with no processes in it.
const emptyProc = "/nonexistent/proc"

// readyHold is how long one readiness request may be held by the component (below the
// probe client's 1 s timeout); readyPoll paces attempts that were answered at once.
const (
	readyHold = 500 * time.Millisecond
	readyPoll = 5 * time.Millisecond
)

func (sys *System) readiness(c *Component) wait.Strategy {
	// The component holds the answer back until it is ready (?wait), so readiness is seen
	// when it happens, and its dependents start then; the short interval only paces the
	// attempts while the admin port is not listening yet (a refused connection is cheap).
	ready := wait.WhileRunning(c.Process, wait.HTTP(c.AdminURL()+"/readyz?wait="+readyHold.String(), 200).WithInterval(readyPoll))
	return wait.Func(func(ctx context.Context) (bool, error) {
		began := time.Now()
		if err := ready.Wait(ctx); err != nil {
			return false, wait.Permanent(err)
		}
		// Which component is last is what to look at when startup gets slow.
		sys.opts.log.Info("component ready", "name", c.Name, "after", time.Since(began))
		return true, nil
	})
}

func (sys *System) waitReady(ctx context.Context, cs ...*Component) error {
	var ss []wait.Strategy
	for _, c := range cs {
		ss = append(ss, sys.readiness(c))
	}
	if err := wait.WithTimeout(wait.All(ss...), sys.opts.readyTimeout).Wait(ctx); err != nil {
		return fmt.Errorf("wait for readiness (logs in %s): %w", filepath.Join(sys.spec.Dir, "logs"), err)
	}
	return nil
}

// abort stops whatever started and returns err (with any stop failure joined).
func (sys *System) abort(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStopTimeout)
	defer cancel()
	if serr := sys.Stop(ctx); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// stopTiers is the stop order: entry points first so nothing calls a stopped dependency,
// the registry last so every instance can revoke its lease.
var stopTiers = [][]string{
	{config.KindGateway},
	{config.KindBalancer},
	{config.KindOrder},
	{config.KindMerchant, config.KindProduct},
	{config.KindBroker},
	{config.KindRegistry},
}

// Stop stops every component tier by tier (each gets SIGTERM and a grace period), keeping
// the data directories for the next start. A system that owns its runtime
// (WithOwnedRuntime) also closes it: every container, the network and the run volumes are
// removed.
func (sys *System) Stop(ctx context.Context) error {
	var errs []error
	for _, tier := range stopTiers {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, c := range sys.snapshot() {
			if c.Process == nil || !slices.Contains(tier, c.Kind) {
				continue
			}
			wg.Go(func() {
				if err := c.Process.Stop(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if sys.owned != nil {
		// A runtime made for this system: removing it removes the containers, the
		// network and the run volumes, which nobody else would.
		if err := sys.owned.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop system: %w", err)
	}
	return nil
}

// Discard ends the system without its tier-by-tier stop (sut.Discarder), for a run
// whose runtime removes every component right after: it only closes a runtime the
// system owns (WithOwnedRuntime), which removes them all at once.
func (sys *System) Discard(ctx context.Context) error {
	if sys.owned == nil {
		return nil
	}
	if err := sys.owned.Close(ctx); err != nil {
		return fmt.Errorf("discard system: %w", err)
	}
	return nil
}

func (sys *System) snapshot() []Component {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	out := make([]Component, 0, len(sys.comps))
	for _, c := range sys.comps {
		out = append(out, *c)
	}
	return out
}

// Components lists every component in start order.
func (sys *System) Components() []Component { return sys.snapshot() }

// Component returns the component called name.
func (sys *System) Component(name string) (Component, bool) {
	for _, c := range sys.snapshot() {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// Spec is the spec the system was started from, defaults filled in.
func (sys *System) Spec() Spec { return sys.spec }

// LeaseLost is closed when the runtime the system owns loses the run's Lease
// (kubernetes.Runtime.LeaseLost, from containers.StartKubernetes): its reaper may then be
// deleting the system's namespace, so whatever keeps the system up should stop it. Nil,
// never closed, on a runtime that holds no lease.
func (sys *System) LeaseLost() <-chan struct{} {
	if l, ok := sys.owned.(interface{ LeaseLost() <-chan struct{} }); ok {
		return l.LeaseLost()
	}
	return nil
}

// Design is the design every component runs.
func (sys *System) Design() design.Design { return sys.design }

// GatewayURL is the base URL of the first gateway.
func (sys *System) GatewayURL() string {
	if u := sys.GatewayURLs(); len(u) > 0 {
		return u[0]
	}
	return ""
}

// GatewayURLs are the base URLs of every gateway (on consecutive ports on the local
// runtime; on the host ports the engine published for containers).
func (sys *System) GatewayURLs() []string {
	var out []string
	for _, c := range sys.snapshot() {
		if c.Kind == config.KindGateway {
			out = append(out, "http://"+c.Listen)
		}
	}
	return out
}

// RegistryEndpoints are the etcd client endpoints (host:port).
func (sys *System) RegistryEndpoints() []string {
	c, _ := sys.Component("registry-1")
	return []string{c.Listen}
}

// BrokerURL is the NATS URL of the broker.
func (sys *System) BrokerURL() string {
	c, _ := sys.Component("broker-1")
	return "nats://" + c.Listen
}

// Startup is where the time of the start went, per phase and per component.
func (sys *System) Startup() Startup {
	st := sys.startup
	st.Phases = slices.Clone(st.Phases)
	st.Components = slices.Clone(st.Components)
	return st
}

// ReadyDuration is how long Start took from its call until every component was ready.
func (sys *System) ReadyDuration() time.Duration { return sys.readyDur }

// Token issues a bearer token every gateway of this system accepts.
func (sys *System) Token(subject string, ttl time.Duration) (string, error) {
	return IssueToken(sys.spec.Dir, subject, ttl)
}

// IssueToken issues a token for the system whose run directory is dir, without starting
// it: the secret lives in dir/secrets/jwt.key and survives restarts.
func IssueToken(dir, subject string, ttl time.Duration) (string, error) {
	if subject == "" {
		return "", errors.New("issue token: subject is empty")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("issue token: ttl %s is not positive", ttl)
	}
	secret, err := auth.LoadOrCreateSecret(filepath.Join(dir, "secrets", "jwt.key"))
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	tok, err := auth.Issue(secret, Issuer, Audience, subject, ttl)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	return tok, nil
}

// Process is the named component's current process, for what its runtime can tell of it
// (runtime.Inspector); false for a component never started.
func (sys *System) Process(name string) (runtime.Process, bool) {
	c, err := sys.process(name)
	if err != nil {
		return nil, false
	}
	return c.Process, true
}

func (sys *System) process(name string) (*Component, error) {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	for _, c := range sys.comps {
		if c.Name == name {
			if c.Process == nil {
				return nil, fmt.Errorf("component %s was never started", name)
			}
			return c, nil
		}
	}
	return nil, fmt.Errorf("component %s: no such component", name)
}

// Restart stops the component (SIGTERM, grace, SIGKILL), starts it again with the same
// config and data directory, and returns once it is ready again.
func (sys *System) Restart(ctx context.Context, name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("restart component: %w", err)
	}
	if err := c.Process.Restart(ctx); err != nil {
		return fmt.Errorf("restart component: %w", err)
	}
	return sys.WaitReady(ctx, name)
}

// WaitReady blocks until the named component answers /readyz with 200.
func (sys *System) WaitReady(ctx context.Context, name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("wait for component: %w", err)
	}
	return sys.waitReady(ctx, c)
}

// Kill crashes the component with SIGKILL: no deregistration, no drain.
func (sys *System) Kill(name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("kill component: %w", err)
	}
	return c.Process.Kill()
}

// Pause freezes the component (SIGSTOP): its sockets stay open but it answers nothing.
func (sys *System) Pause(name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("pause component: %w", err)
	}
	return c.Process.Pause()
}

// Resume thaws a paused component (SIGCONT).
func (sys *System) Resume(name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("resume component: %w", err)
	}
	return c.Process.Resume()
}

// Delete deletes the component's instance and returns once the replacement its runtime's
// controller made (a Kubernetes Deployment's new pod) answers /readyz. It is only offered
// where such a controller exists (runtime.Replacer).
func (sys *System) Delete(ctx context.Context, name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("delete component: %w", err)
	}
	r, ok := runtime.As[runtime.Replacer](c.Process)
	if !ok {
		return fmt.Errorf("delete %s: %w", name, ErrNoController)
	}
	if err := r.Delete(ctx); err != nil {
		return fmt.Errorf("delete component: %w", err)
	}
	return sys.waitReady(ctx, c)
}

// CanDelete reports whether Delete works on the named component.
func (sys *System) CanDelete(name string) bool {
	c, err := sys.process(name)
	if err != nil {
		return false
	}
	_, ok := runtime.As[runtime.Replacer](c.Process)
	return ok
}

// InstanceID names the component's current instance (a pod's UID); "" where the runtime
// has no controller to replace it, or no instance runs.
func (sys *System) InstanceID(name string) string {
	c, err := sys.process(name)
	if err != nil {
		return ""
	}
	r, ok := runtime.As[runtime.Replacer](c.Process)
	if !ok {
		return ""
	}
	return r.InstanceID()
}

// ErrNoController is returned by Delete on a runtime with no controller that replaces a
// deleted instance (local processes and Docker containers are only restarted).
var ErrNoController = errors.New("the runtime has no controller that replaces a deleted instance")
