package system

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/faultline-dev/faultline/reference-services/config"
)

// Interposer puts something of the harness's own (a fault proxy) between a component and
// one of the shared components it dials: the registry, the broker or the balancer. It is
// asked once per (caller, target) while the system is planned, before anything starts,
// and returns the address the caller must dial instead of addr.
type Interposer interface {
	// Interpose returns the address caller dials to reach target (a component name:
	// registry-1, broker-1, balancer-1) whose real address is addr (host:port).
	Interpose(caller Component, target string, addr string) (string, error)
}

// WithInterposer hands every caller interposed registry, broker and balancer addresses
// and marks its config routed, so that it dials callee instances only through the routes
// the harness publishes. Without it components dial each other directly.
func WithInterposer(ip Interposer) Option {
	return func(o *options) { o.interposer = ip }
}

// interpose rewrites cfg's registry, broker and balancer addresses through the
// interposer, if there is one. Registry and broker components dial nothing and are left
// alone, as is the balancer's address in the balancer's own config.
func (sys *System) interpose(c *Component, cfg *config.Component) error {
	ip := sys.opts.interposer
	if ip == nil || c.Kind == config.KindRegistry || c.Kind == config.KindBroker {
		return nil
	}
	via := func(target, addr string) (string, error) {
		if addr == "" || target == c.Name {
			return addr, nil
		}
		got, err := ip.Interpose(*c, target, addr)
		if err != nil {
			return "", fmt.Errorf("interpose %s->%s: %w", c.Name, target, err)
		}
		return got, nil
	}
	var regs []string
	for _, r := range cfg.Registry {
		a, err := via("registry-1", r)
		if err != nil {
			return err
		}
		regs = append(regs, a)
	}
	cfg.Registry = regs
	if cfg.Broker != "" {
		const scheme = "nats://"
		host := cfg.Broker
		if len(host) > len(scheme) && host[:len(scheme)] == scheme {
			host = host[len(scheme):]
		}
		a, err := via("broker-1", host)
		if err != nil {
			return err
		}
		cfg.Broker = scheme + a
	}
	a, err := via("balancer-1", cfg.Balancer)
	if err != nil {
		return err
	}
	cfg.Balancer = a
	cfg.Routed = true
	return nil
}

// The methods below make a System the faults package's view of processes (faults.Processes
// and faults.PIDs), so process faults act on components by name.

// Running reports whether the named component's current process is alive.
func (sys *System) Running(name string) bool {
	c, err := sys.process(name)
	if err != nil {
		return false
	}
	return c.Process.Running()
}

// Instances lists the components of service in start order ("order-1", "order-2"); a
// component name or an unknown service gives none.
func (sys *System) Instances(service string) []string {
	var out []string
	for _, c := range sys.snapshot() {
		if c.Service == service {
			out = append(out, c.Name)
		}
	}
	return out
}

// PID is the operating-system pid of the named component's current process. Containers
// report none: a paused container is frozen by its cgroup, which /proc does not show as
// stopped, so a pause is observed through the health endpoint instead (Healthy).
func (sys *System) PID(name string) (int, bool) {
	if sys.containers {
		return 0, false
	}
	c, err := sys.process(name)
	if err != nil {
		return 0, false
	}
	pid := c.Process.PID()
	return pid, pid > 0
}

// healthTimeout bounds one health probe: a paused component accepts nothing, so its probe
// only ends by timing out.
const healthTimeout = 500 * time.Millisecond

// Healthy reports whether the named component answers GET /healthz with 200 within
// healthTimeout; it lets a pause be observed where no pid is visible (containers).
func (sys *System) Healthy(ctx context.Context, name string) bool {
	c, ok := sys.Component(name)
	if !ok || c.Admin == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.AdminURL()+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode == http.StatusOK
}

// healthClient opens a connection per probe: a kept-alive connection to a frozen
// container could answer from a buffer and hide the pause.
var healthClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
