package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Timings of the registry client. Keepalive pings every second let a client notice a dead
// or black-holed registry within ~2 s instead of the TCP default of minutes.
const (
	dialTimeout      = 2 * time.Second
	keepAliveTime    = time.Second
	keepAliveTimeout = time.Second
	opTimeout        = 2 * time.Second
	retryWait        = 200 * time.Millisecond
	// DefaultTTL is the lease TTL used when Register is given zero.
	DefaultTTL = 2 * time.Second
)

// Instance is one registered replica of a service, stored as JSON under
// /faultline/instances/<service>/<name>.
type Instance struct {
	Service string `json:"service"`
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	Admin   string `json:"admin"`
}

// Key is the instance's registry key.
func (i Instance) Key() string { return InstancePrefix + i.Service + "/" + i.Name }

// Validate reports every problem that would make the instance unusable by callers.
func (i Instance) Validate() []error {
	var errs []error
	if i.Service == "" {
		errs = append(errs, errors.New("service is empty"))
	}
	if i.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if i.Addr == "" {
		errs = append(errs, errors.New("addr is empty"))
	}
	for _, s := range []string{i.Service, i.Name} {
		for _, r := range s {
			if r == '/' {
				errs = append(errs, fmt.Errorf("%q contains '/'", s))
				break
			}
		}
	}
	return errs
}

// Client is a registry connection that tolerates the registry being away: every component
// must be able to start, keep serving and recover on its own while etcd restarts.
type Client struct {
	cli *clientv3.Client
	log *slog.Logger

	ctx    context.Context // ends on Close: stops heartbeats and watches
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	parts   map[any]bool // registration or watcher -> healthy
	session prometheus.Gauge
}

// Connect builds a client for endpoints (host:port). It does not dial synchronously, so it
// succeeds while the registry is down; reg (optional) receives faultline_registry_session_up.
func Connect(ctx context.Context, endpoints []string, reg prometheus.Registerer, log *slog.Logger) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("connect registry: no endpoints")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		PermitWithoutStream:  true,
		Logger:               zap.NewNop(),
		Context:              cctx,
		// gRPC's own first reconnect backoff is a second: a component started just
		// before the registry listens (every container system's start) or one that lost
		// it would wait that long to dial again.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(connectParams)},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("connect registry: %w", err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "faultline_registry_session_up",
		Help: "1 while every lease keepalive and watch of this process is healthy.",
	})
	g, err = registerOrReuse(reg, g)
	if err != nil {
		cancel()
		_ = cli.Close()
		return nil, fmt.Errorf("register registry metrics: %w", err)
	}
	return &Client{cli: cli, log: log.With("registry", endpoints), ctx: cctx, cancel: cancel, parts: map[any]bool{}, session: g}, nil
}

// Etcd exposes the underlying etcd client for callers that need more than this API.
func (c *Client) Etcd() *clientv3.Client { return c.cli }

// AwaitKey blocks until key exists in the registry (polling, so it rides out an outage)
// or ctx ends. Readiness uses it: an instance is "registered" only once callers can see it.
func (c *Client) AwaitKey(ctx context.Context, key string) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := c.cli.Get(gctx, key)
		cancel()
		if err == nil && resp.Count > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("await registry key %s: %w", key, ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops every heartbeat and watch without revoking leases: to the registry this looks
// like a crash, so the instances disappear when their leases expire.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.wg.Wait()
		c.session.Set(0)
		if err := c.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			c.closeErr = fmt.Errorf("close registry client: %w", err)
		}
	})
	return c.closeErr
}

// setHealth records one part's health; the session gauge is up only when every part is.
func (c *Client) setHealth(part any, healthy bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if part != nil {
		c.parts[part] = healthy
	}
	up := len(c.parts) > 0
	for _, h := range c.parts {
		up = up && h
	}
	if up {
		c.session.Set(1)
	} else {
		c.session.Set(0)
	}
}

func (c *Client) dropHealth(part any) {
	c.mu.Lock()
	delete(c.parts, part)
	c.mu.Unlock()
	c.setHealth(nil, false)
}

// Registration keeps one instance registered until Close (or Client.Close).
type Registration struct {
	c      *Client
	inst   Instance
	ttl    time.Duration
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	lease clientv3.LeaseID
}

// Register puts /faultline/instances/<service>/<name> under a lease of ttl and keeps the lease
// alive. When the lease is lost (registry restart without the lease, partition longer than
// ttl) it grants a new one and puts the key again, so an instance heals without a restart.
// ctx bounds only the wait for the first put: if the registry is down, Register still returns
// the Registration, which keeps trying in the background.
func (c *Client) Register(ctx context.Context, inst Instance, ttl time.Duration) (*Registration, error) {
	if errs := inst.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("register instance: %w", errors.Join(errs...))
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	val, err := json.Marshal(inst)
	if err != nil {
		return nil, fmt.Errorf("encode instance: %w", err)
	}
	rctx, cancel := context.WithCancel(c.ctx)
	r := &Registration{c: c, inst: inst, ttl: ttl, cancel: cancel, done: make(chan struct{})}
	first := make(chan struct{})
	c.setHealth(r, false)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(r.done)
		r.loop(rctx, string(val), first)
	}()
	wait := time.NewTimer(max(ttl, time.Second))
	defer wait.Stop()
	select {
	case <-first:
	case <-wait.C:
		c.log.Warn("registry unreachable, registration continues in the background", "key", inst.Key())
	case <-ctx.Done():
	}
	return r, nil
}

// loop is the heartbeat: grant, put, keep alive; on loss start over.
func (r *Registration) loop(ctx context.Context, val string, first chan struct{}) {
	c := r.c
	once := sync.OnceFunc(func() { close(first) })
	ttlSec := int64((r.ttl + time.Second - 1) / time.Second)
	for ctx.Err() == nil {
		id, err := r.grantAndPut(ctx, ttlSec, val)
		if err != nil {
			c.setHealth(r, false)
			if ctx.Err() == nil {
				c.log.Debug("register instance", "key", r.inst.Key(), "err", err)
			}
			sleep(ctx, retryWait)
			continue
		}
		// Healthy before Register returns: the registry has just acknowledged the lease, and
		// a caller reading session_up right after Register must not see 0.
		c.setHealth(r, true)
		once()
		if err := r.keepAlive(ctx, id); err != nil && ctx.Err() == nil {
			c.log.Warn("lease lost, registering again", "key", r.inst.Key(), "err", err)
		}
		c.setHealth(r, false)
	}
}

func (r *Registration) grantAndPut(ctx context.Context, ttlSec int64, val string) (clientv3.LeaseID, error) {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	g, err := r.c.cli.Grant(octx, ttlSec)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	if _, err := r.c.cli.Put(octx, r.inst.Key(), val, clientv3.WithLease(g.ID)); err != nil {
		return 0, fmt.Errorf("put instance: %w", err)
	}
	r.mu.Lock()
	r.lease = g.ID
	r.mu.Unlock()
	return g.ID, nil
}

// keepAlive runs until the lease is lost or ctx ends. Health follows the age of the last
// acknowledged heartbeat, so session_up drops while the registry is unreachable even though
// the lease may still be alive on the server.
func (r *Registration) keepAlive(ctx context.Context, id clientv3.LeaseID) error {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := r.c.cli.KeepAlive(kctx, id)
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}
	r.c.setHealth(r, true)
	last := time.Now()
	stale := r.ttl*2/3 + 250*time.Millisecond
	tick := time.NewTicker(stale / 4)
	defer tick.Stop()
	for {
		select {
		case resp, ok := <-ch:
			if !ok || resp == nil {
				return errors.New("keep lease alive: lease expired or revoked")
			}
			last = time.Now()
			r.c.setHealth(r, true)
		case <-tick.C:
			if time.Since(last) > stale {
				r.c.setHealth(r, false)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close deregisters cleanly: the heartbeat stops and the lease is revoked, so watchers see the
// instance go at once instead of after the TTL.
func (r *Registration) Close(ctx context.Context) error {
	r.cancel()
	<-r.done
	r.c.dropHealth(r)
	r.mu.Lock()
	id := r.lease
	r.mu.Unlock()
	if id == 0 {
		return nil
	}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := r.c.cli.Revoke(octx, id); err != nil {
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}

// Route is the value of a route key: the address a caller dials for one instance.
type Route struct {
	Addr string `json:"addr"`
}

// RouteKey is /faultline/routes/<caller>/<callee>/<name>.
func RouteKey(caller, callee, name string) string {
	return RoutePrefix + caller + "/" + callee + "/" + name
}

// PublishRoute makes caller dial addr (a harness proxy) for instance name of callee.
func (c *Client) PublishRoute(ctx context.Context, caller, callee, name, addr string) error {
	if caller == "" || callee == "" || name == "" || addr == "" {
		return errors.New("publish route: caller, callee, name and addr are required")
	}
	val, err := json.Marshal(Route{Addr: addr})
	if err != nil {
		return fmt.Errorf("encode route: %w", err)
	}
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := c.cli.Put(octx, RouteKey(caller, callee, name), string(val)); err != nil {
		return fmt.Errorf("publish route: %w", err)
	}
	return nil
}

// DeleteRoute removes a route; unrouted callers fall back to the instance's own address.
func (c *Client) DeleteRoute(ctx context.Context, caller, callee, name string) error {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if _, err := c.cli.Delete(octx, RouteKey(caller, callee, name)); err != nil {
		return fmt.Errorf("delete route: %w", err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// registerOrReuse registers c on reg, or returns the collector already registered under the
// same name, so that several clients or watchers can share one process registry.
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
