package reference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/reference-services/registry"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
)

// HarnessCaller is the caller name the route publisher watches the registry as. No route
// is ever published for it, so it sees every instance at its real address.
const HarnessCaller = "harness"

// Interposer is the reference system's system.Interposer: it puts a Toxiproxy proxy on every edge
// of a started system. Edges to the registry, the broker and the balancer get one proxy
// per caller instance, created while the system is planned; edges between services get
// one proxy per (caller service, callee instance), created by a route publisher that
// watches the registry and publishes each proxy's address as the caller's route.
type Interposer struct {
	links *faults.Links
	log   *slog.Logger
	// resolve maps the registry's address on the system's network to one the harness
	// can dial (containers); nil dials it as it is.
	resolve func(addr string) (string, error)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	callers   map[string]bool   // caller services seen while planning
	published map[string]string // "<caller>-><instance>" -> proxy address, once published
	started   bool
	lastErr   error
	changed   chan struct{}     // closed and replaced whenever published grows
	watcher   *registry.Watcher // the publisher's unrouted view of the registry, once connected
}

var _ system.Interposer = (*Interposer)(nil)

// NewInterposer returns an interposer that adds its proxies to links. Close stops its
// route publisher; the proxies themselves belong to links.
func NewInterposer(links *faults.Links, log *slog.Logger) *Interposer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Interposer{
		links: links, log: log, ctx: ctx, cancel: cancel,
		callers: map[string]bool{}, published: map[string]string{}, changed: make(chan struct{}),
	}
}

// Interpose creates the proxy caller->target and returns its address. The first time it
// sees the registry's address it starts the route publisher, because callers with routed
// configs only become ready once their dependencies' routes exist.
func (ip *Interposer) Interpose(caller system.Component, target, addr string) (string, error) {
	if ip.links == nil {
		return "", errors.New("interpose: no links")
	}
	l := faults.Link{From: caller.Name, FromService: caller.Service, To: target, ToService: scenarios.ServiceOf(target), Upstream: addr}
	listen, err := ip.links.Add(ip.ctx, l)
	if err != nil {
		return "", fmt.Errorf("interpose %s: %w", l.Name(), err)
	}
	ip.mu.Lock()
	ip.callers[caller.Service] = true
	start := target == "registry-1" && !ip.started
	if start {
		ip.started = true
	}
	ip.mu.Unlock()
	if start {
		ip.wg.Go(func() { ip.publish(addr) })
	}
	return listen, nil
}

// publish keeps routes in step with the registry until Close: every instance of a callee
// gets a proxy per calling service and a route pointing at it. A missed step (the registry
// still starting) is retried on the next tick.
func (ip *Interposer) publish(endpoint string) {
	for ip.resolve != nil {
		// The registry's container may not exist yet: the system is still being planned.
		addr, err := ip.resolve(endpoint)
		if err == nil {
			endpoint = addr
			break
		}
		ip.fail(err)
		select {
		case <-ip.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	cli, err := registry.Connect(ip.ctx, []string{endpoint}, nil, ip.log)
	if err != nil {
		ip.fail(fmt.Errorf("connect registry: %w", err))
		return
	}
	defer cli.Close()
	w, err := cli.Watch(ip.ctx, HarnessCaller, false, nil)
	if err != nil {
		ip.fail(fmt.Errorf("watch registry: %w", err))
		return
	}
	ip.mu.Lock()
	ip.watcher = w
	ip.mu.Unlock()
	defer func() {
		ip.mu.Lock()
		ip.watcher = nil
		ip.mu.Unlock()
	}()
	notify := make(chan struct{}, 1)
	for _, svc := range Routed() {
		ch, cancel := w.Subscribe(svc)
		defer cancel()
		go func() {
			for {
				select {
				case <-ch:
					select {
					case notify <- struct{}{}:
					default:
					}
				case <-ip.ctx.Done():
					return
				}
			}
		}()
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	upstream := map[string]string{} // link name -> upstream it was created with
	for {
		ip.sync(w, cli, upstream)
		select {
		case <-ip.ctx.Done():
			return
		case <-tick.C:
		case <-notify:
		}
	}
}

func (ip *Interposer) sync(w *registry.Watcher, cli *registry.Client, upstream map[string]string) {
	ip.mu.Lock()
	callers := make(map[string]bool, len(ip.callers))
	for k, v := range ip.callers {
		callers[k] = v
	}
	ip.mu.Unlock()
	for _, svc := range Routed() {
		for _, inst := range w.Instances(svc) {
			for _, caller := range routes[svc] {
				if !callers[caller] {
					continue
				}
				if err := ip.ensure(cli, caller, svc, inst, upstream); err != nil {
					ip.fail(err)
				}
			}
		}
	}
}

// ensure makes sure caller reaches inst through its own proxy and that the route says so.
func (ip *Interposer) ensure(cli *registry.Client, caller, svc string, inst registry.Instance, upstream map[string]string) error {
	name := caller + "->" + inst.Name
	var listen string
	switch prev, ok := upstream[name]; {
	case !ok:
		addr, err := ip.links.Add(ip.ctx, faults.Link{From: caller, To: inst.Name, ToService: svc, Upstream: inst.Addr})
		if err != nil {
			return fmt.Errorf("add route proxy: %w", err)
		}
		upstream[name], listen = inst.Addr, addr
	case prev != inst.Addr:
		// A restarted instance normally keeps its port; if it did not, follow it.
		if err := ip.links.SetUpstream(ip.ctx, name, inst.Addr); err != nil {
			return fmt.Errorf("move route proxy: %w", err)
		}
		upstream[name] = inst.Addr
		fallthrough
	default:
		addr, err := ip.links.ListenAddr(name)
		if err != nil {
			return fmt.Errorf("find route proxy: %w", err)
		}
		listen = addr
	}
	ip.mu.Lock()
	done := ip.published[name] == listen
	ip.mu.Unlock()
	if done {
		return nil
	}
	if err := cli.PublishRoute(ip.ctx, caller, svc, inst.Name, listen); err != nil {
		return err
	}
	ip.mu.Lock()
	ip.published[name] = listen
	close(ip.changed)
	ip.changed = make(chan struct{})
	ip.mu.Unlock()
	ip.log.Debug("route published", "link", name, "addr", listen)
	return nil
}

func (ip *Interposer) fail(err error) {
	if ip.ctx.Err() != nil {
		return
	}
	ip.mu.Lock()
	ip.lastErr = err
	ip.mu.Unlock()
	ip.log.Debug("route publisher", "err", err)
}

// Registered returns every instance the registry lists now, by name, as the route
// publisher's watch sees it (unrouted: every instance of every service); false before the
// watch has read the registry once. While the registry is unreachable it is the last view.
func (ip *Interposer) Registered() (map[string]bool, bool) {
	ip.mu.Lock()
	w := ip.watcher
	ip.mu.Unlock()
	if w == nil || !w.Synced() {
		return nil, false
	}
	out := map[string]bool{}
	for _, svc := range w.Services() {
		for _, inst := range w.Instances(svc) {
			out[inst.Name] = true
		}
	}
	return out, true
}

// Routes returns the published routes, "<caller service>-><instance>" to proxy address.
func (ip *Interposer) Routes() map[string]string {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	out := make(map[string]string, len(ip.published))
	for k, v := range ip.published {
		out[k] = v
	}
	return out
}

// WaitRoutes blocks until every instance of every callee in sys has a published route for
// every calling service of sys, or ctx ends (the error then names the last publish failure).
func (ip *Interposer) WaitRoutes(ctx context.Context, sys *system.System) error {
	services := map[string]bool{}
	for _, c := range sys.Components() {
		services[c.Service] = true
	}
	var want []string
	for _, c := range sys.Components() {
		for _, caller := range routes[c.Service] {
			if services[caller] {
				want = append(want, caller+"->"+c.Name)
			}
		}
	}
	for {
		ip.mu.Lock()
		missing := ""
		for _, k := range want {
			if _, ok := ip.published[k]; !ok {
				missing = k
				break
			}
		}
		ch, lastErr := ip.changed, ip.lastErr
		ip.mu.Unlock()
		if missing == "" {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("wait for route %s: %w", missing, errors.Join(ctx.Err(), lastErr))
		}
	}
}

// Close stops the route publisher. It leaves the proxies to the Links' owner.
func (ip *Interposer) Close() error {
	ip.cancel()
	ip.wg.Wait()
	return nil
}
