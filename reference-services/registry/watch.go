package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// firstSyncWait is how long Watch waits for the first snapshot before returning a Watcher
// with an empty cache; a caller starting while the registry is down must not hang.
const firstSyncWait = 2 * time.Second

// watchStale is how long a watch may stay silent before the watcher reports itself unhealthy;
// the embedded registry sends a progress notification every second.
const watchStale = 3 * time.Second

// Watcher is a local cache of every instance and route, kept current by an etcd watch. It
// keeps serving the last known state while the registry is unreachable, because a registry
// outage must not take callers down with it, and resyncs when the registry returns.
type Watcher struct {
	c      *Client
	caller string
	routed bool
	gauge  *prometheus.GaugeVec

	mu        sync.Mutex
	instances map[string]map[string]Instance // service -> name -> instance
	routes    map[string]map[string]string   // callee -> name -> addr, for caller only
	visible   map[string][]Instance          // service -> what Instances returns
	subs      map[string]map[*subscriber]struct{}
	synced    bool
	syncedCh  chan struct{}
}

type subscriber struct{ ch chan struct{} }

// Watch starts the cache for a process whose service name is caller (routes are per caller).
// With routed, only instances that have a route for caller are visible, at the route's
// address; otherwise a route, when present, replaces the instance's address. It waits briefly
// for the first snapshot but never fails because the registry is down.
func (c *Client) Watch(ctx context.Context, caller string, routed bool, reg prometheus.Registerer) (*Watcher, error) {
	if caller == "" {
		return nil, errors.New("watch registry: caller is empty")
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "faultline_discovery_instances",
		Help: "Instances of a service in this process's discovery cache (after routing).",
	}, []string{"service"})
	g, err := registerOrReuse(reg, g)
	if err != nil {
		return nil, fmt.Errorf("register discovery metrics: %w", err)
	}
	w := &Watcher{
		c: c, caller: caller, routed: routed, gauge: g,
		instances: map[string]map[string]Instance{},
		routes:    map[string]map[string]string{},
		visible:   map[string][]Instance{},
		subs:      map[string]map[*subscriber]struct{}{},
		syncedCh:  make(chan struct{}),
	}
	c.setHealth(w, false)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		w.loop(c.ctx)
	}()
	t := time.NewTimer(firstSyncWait)
	defer t.Stop()
	select {
	case <-w.syncedCh:
	case <-t.C:
		c.log.Warn("registry unreachable, discovery cache starts empty", "caller", caller)
	case <-ctx.Done():
	}
	return w, nil
}

// Synced reports whether the cache has loaded at least one snapshot from the registry.
func (w *Watcher) Synced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

// loop alternates snapshot and watch; a broken watch (compaction, lost leader) leads to a
// fresh snapshot, and an unreachable registry leaves the cache as it is.
func (w *Watcher) loop(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := w.snapshot(ctx)
		if err != nil {
			w.c.setHealth(w, false)
			sleep(ctx, retryWait)
			continue
		}
		w.c.setHealth(w, true)
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := w.c.cli.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
		w.follow(wctx, wch)
		cancel()
		w.c.setHealth(w, false)
		sleep(ctx, retryWait)
	}
}

// follow applies watch events until the watch breaks. Health follows the age of the last
// event or progress notification, because a watch on a dead registry just retries quietly.
func (w *Watcher) follow(ctx context.Context, wch clientv3.WatchChan) {
	tick := time.NewTicker(watchStale / 4)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return
			}
			last = time.Now()
			w.c.setHealth(w, true)
			if len(wr.Events) > 0 {
				w.apply(wr.Events)
			}
		case <-tick.C:
			if time.Since(last) > watchStale {
				w.c.setHealth(w, false)
			}
		case <-ctx.Done():
			return
		}
	}
}

func (w *Watcher) snapshot(ctx context.Context) (int64, error) {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := w.c.cli.Get(octx, Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list registry: %w", err)
	}
	w.mu.Lock()
	w.instances = map[string]map[string]Instance{}
	w.routes = map[string]map[string]string{}
	for _, kv := range resp.Kvs {
		w.put(string(kv.Key), kv.Value)
	}
	first := !w.synced
	w.synced = true
	w.recompute()
	w.mu.Unlock()
	if first {
		close(w.syncedCh)
	}
	return resp.Header.Revision, nil
}

func (w *Watcher) apply(evs []*clientv3.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		if ev.Type == clientv3.EventTypeDelete {
			w.del(string(ev.Kv.Key))
		} else {
			w.put(string(ev.Kv.Key), ev.Kv.Value)
		}
	}
	w.recompute()
}

// put and del interpret one key; malformed values are ignored rather than trusted.
func (w *Watcher) put(key string, val []byte) {
	switch {
	case strings.HasPrefix(key, InstancePrefix):
		svc, name, ok := split2(strings.TrimPrefix(key, InstancePrefix))
		var inst Instance
		if !ok || json.Unmarshal(val, &inst) != nil || inst.Addr == "" {
			return
		}
		inst.Service, inst.Name = svc, name
		if w.instances[svc] == nil {
			w.instances[svc] = map[string]Instance{}
		}
		w.instances[svc][name] = inst
	case strings.HasPrefix(key, RoutePrefix):
		callee, name, ok := w.routeKey(key)
		var r Route
		if !ok || json.Unmarshal(val, &r) != nil || r.Addr == "" {
			return
		}
		if w.routes[callee] == nil {
			w.routes[callee] = map[string]string{}
		}
		w.routes[callee][name] = r.Addr
	}
}

func (w *Watcher) del(key string) {
	switch {
	case strings.HasPrefix(key, InstancePrefix):
		if svc, name, ok := split2(strings.TrimPrefix(key, InstancePrefix)); ok {
			delete(w.instances[svc], name)
		}
	case strings.HasPrefix(key, RoutePrefix):
		if callee, name, ok := w.routeKey(key); ok {
			delete(w.routes[callee], name)
		}
	}
}

// routeKey returns callee and name of a route key that belongs to this watcher's caller.
func (w *Watcher) routeKey(key string) (string, string, bool) {
	rest, ok := strings.CutPrefix(key, RoutePrefix+w.caller+"/")
	if !ok {
		return "", "", false
	}
	return split2(rest)
}

func split2(s string) (string, string, bool) {
	a, b, ok := strings.Cut(s, "/")
	if !ok || a == "" || b == "" || strings.Contains(b, "/") {
		return "", "", false
	}
	return a, b, true
}

// recompute derives the visible view and notifies subscribers of services that changed.
// Callers hold w.mu.
func (w *Watcher) recompute() {
	services := map[string]bool{}
	for s := range w.instances {
		services[s] = true
	}
	for s := range w.visible {
		services[s] = true
	}
	for s := range services {
		var vis []Instance
		for name, inst := range w.instances[s] {
			addr, routed := w.routes[s][name]
			switch {
			case routed:
				inst.Addr = addr
			case w.routed:
				continue
			}
			vis = append(vis, inst)
		}
		slices.SortFunc(vis, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
		if slices.Equal(vis, w.visible[s]) {
			continue
		}
		if len(vis) == 0 {
			delete(w.visible, s)
		} else {
			w.visible[s] = vis
		}
		w.gauge.WithLabelValues(s).Set(float64(len(vis)))
		for sub := range w.subs[s] {
			select {
			case sub.ch <- struct{}{}:
			default:
			}
		}
	}
}

// Instances returns the visible instances of service, sorted by Name.
func (w *Watcher) Instances(service string) []Instance {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.visible[service])
}

// Services lists every service with at least one visible instance, sorted.
func (w *Watcher) Services() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.visible))
	for s := range w.visible {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// WaitFor blocks until at least n instances of service are visible or ctx ends.
func (w *Watcher) WaitFor(ctx context.Context, service string, n int) error {
	ch, cancel := w.Subscribe(service)
	defer cancel()
	for {
		if got := len(w.Instances(service)); got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d %s instances (have %d): %w", n, service, len(w.Instances(service)), ctx.Err())
		}
	}
}

// Subscribe returns a channel that receives a (coalesced) signal whenever the visible
// instances of service change, and a function that ends the subscription.
func (w *Watcher) Subscribe(service string) (<-chan struct{}, func()) {
	sub := &subscriber{ch: make(chan struct{}, 1)}
	w.mu.Lock()
	if w.subs[service] == nil {
		w.subs[service] = map[*subscriber]struct{}{}
	}
	w.subs[service][sub] = struct{}{}
	w.mu.Unlock()
	return sub.ch, sync.OnceFunc(func() {
		w.mu.Lock()
		delete(w.subs[service], sub)
		w.mu.Unlock()
	})
}
