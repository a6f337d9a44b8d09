package system

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/design"
)

// Startup is where the time of one Start went: the steps before any component (planning,
// the image lookup and the run's network on Docker) and, per component, when it was
// started and found ready. Every offset counts from the call of Start, or from the
// earlier start WithStartedAt gives.
type Startup struct {
	Phases     []Phase
	Components []ComponentStartup
	// Ready is when the last component was found ready.
	Ready time.Duration
}

// Phase is one step of a start that precedes the components.
type Phase struct {
	Name string
	Took time.Duration
}

// ComponentStartup is one component's part of a start.
type ComponentStartup struct {
	Name string
	// Deps are the components whose readiness this one's start waited for.
	Deps []string
	// Up are the components this one's start waited for only until their process was
	// up, ready or not (see System.step).
	Up []string
	// Start is when the runtime was asked to start it (every dependency was ready by
	// then), Running when the runtime returned (a fork; a container created and
	// started), Ready when its /readyz first answered 200.
	Start, Running, Ready time.Duration
	// IsUp is when its process was found up (0: nothing waited for that).
	IsUp time.Duration
	// Prepared is when its container had been created ahead of its start (0: it was not;
	// see runtime.Preparer). A Prepared after Start means the start waited for it.
	Prepared time.Duration
}

// dependencies are the components c dials while it starts, so starting it before they
// are ready only buys a retry backoff (etcd's client waits up to a second before it
// dials again, NATS a quarter of one) and takes CPU from the components on the critical
// path. Instances a component merely discovers (the gateway's merchants, products and
// orders) are not listed: the component watches the registry for them and becomes ready
// when they appear, and its own start overlaps theirs.
func (sys *System) dependencies(c *Component) []string {
	switch c.Kind {
	case config.KindRegistry, config.KindBroker:
		return nil
	case config.KindMerchant, config.KindBalancer:
		return []string{"registry-1"}
	case config.KindProduct, config.KindOrder:
		return []string{"registry-1", "broker-1"}
	case config.KindGateway:
		if sys.design.Discovery == design.DiscoveryServer {
			return []string{"registry-1", "balancer-1"}
		}
		return []string{"registry-1"}
	default:
		return []string{"registry-1"}
	}
}

// step is c's node of the start graph. On containers a component waits for its
// dependencies' containers only to be running, not for their processes to be ready: the
// engine starts containers at a fixed cost each (a network namespace, a veth, a root file
// system: a quarter of a second or more), nearly all of it CPU that the registry's and
// broker's boot would otherwise leave idle. By the time a dependent's own process runs,
// the registry and broker are usually listening; a dial that is early is retried within
// 100 ms (the registry client's reconnect backoff, the broker client's reconnect wait),
// and a component becomes ready right after its dependencies do. Locally a process starts
// in milliseconds and would only spend its dependencies' boot in those retries, so it
// waits for readiness as before.
func (sys *System) step(c *Component) step {
	deps := sys.dependencies(c)
	if !sys.containers {
		return step{name: c.Name, deps: deps}
	}
	return step{name: c.Name, up: deps}
}

// step is one node of a start graph.
type step struct {
	name string
	// deps must be ready before the step starts; up need only be up (stepFuncs.up),
	// which comes earlier.
	deps, up []string
}

// root reports whether the step waits for nothing.
func (s step) root() bool { return len(s.deps) == 0 && len(s.up) == 0 }

// stepFuncs are what a start graph does with each node: start it, then wait for it to
// be ready. All must return when ctx ends. up, when set, returns once a started step's
// process is up, before it is ready; an error there (no such probe for the step, or the
// probe gave up) only means its dependents wait for its readiness instead.
type stepFuncs struct {
	start func(ctx context.Context, name string) error
	ready func(ctx context.Context, name string) error
	up    func(ctx context.Context, name string) error
}

// runGraph starts every step as soon as each of its own dependencies is ready — not in
// waves: a slow component delays only what depends on it — and returns once every step
// is ready, or with the first error (the rest are cancelled and waited for). since is
// the clock of the returned timings. A dependency on an unknown step or a cycle is an
// error before anything starts, never a hang.
func runGraph(ctx context.Context, steps []step, f stepFuncs, since time.Time) ([]ComponentStartup, error) {
	if err := checkGraph(steps); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ready := make(map[string]chan struct{}, len(steps))
	up := make(map[string]chan struct{}, len(steps))
	upOnce := make(map[string]func(), len(steps))
	probed := map[string]bool{}
	for _, s := range steps {
		ready[s.name] = make(chan struct{})
		ch := make(chan struct{})
		up[s.name], upOnce[s.name] = ch, sync.OnceFunc(func() { close(ch) })
		for _, d := range s.up {
			probed[d] = true
		}
	}
	out := make([]ComponentStartup, len(steps))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel(err)
		}
	}
	for i, s := range steps {
		out[i] = ComponentStartup{Name: s.name, Deps: slices.Clone(s.deps), Up: slices.Clone(s.up)}
		wg.Go(func() {
			wait := func(chs map[string]chan struct{}, names []string) bool {
				for _, d := range names {
					select {
					case <-chs[d]:
					case <-ctx.Done():
						return false // the failure that cancelled ctx is already recorded
					}
				}
				return true
			}
			if !wait(ready, s.deps) || !wait(up, s.up) {
				return
			}
			out[i].Start = time.Since(since)
			if err := f.start(ctx, s.name); err != nil {
				fail(err)
				return
			}
			out[i].Running = time.Since(since)
			if probed[s.name] && f.up != nil {
				// The probe ends when the step is ready (or failed): then it is moot.
				pctx, stop := context.WithCancel(ctx)
				defer stop()
				wg.Go(func() {
					if f.up(pctx, s.name) == nil {
						mu.Lock()
						out[i].IsUp = time.Since(since)
						mu.Unlock()
						upOnce[s.name]()
					}
				})
			}
			if err := f.ready(ctx, s.name); err != nil {
				fail(err)
				return
			}
			out[i].Ready = time.Since(since)
			upOnce[s.name]() // ready implies up
			close(ready[s.name])
		})
	}
	wg.Wait()
	if first != nil {
		return out, first
	}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	return out, nil
}

// checkGraph rejects a dependency on an unknown or duplicate step and a cycle.
func checkGraph(steps []step) error {
	deps := map[string][]string{}
	for _, s := range steps {
		if _, dup := deps[s.name]; dup {
			return fmt.Errorf("start graph: step %s is listed twice", s.name)
		}
		deps[s.name] = s.deps
	}
	for _, s := range steps {
		deps[s.name] = append(slices.Clone(s.deps), s.up...)
	}
	for _, s := range steps {
		for _, d := range deps[s.name] {
			if _, ok := deps[d]; !ok {
				return fmt.Errorf("start graph: %s depends on unknown %s", s.name, d)
			}
		}
	}
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case visiting:
			return fmt.Errorf("start graph: cycle %s", strings.Join(append(path, name), " -> "))
		case done:
			return nil
		}
		state[name] = visiting
		for _, d := range deps[name] {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		return nil
	}
	for _, s := range steps {
		if err := visit(s.name, nil); err != nil {
			return err
		}
	}
	return nil
}

// String is the profile as a table, one component per line in the order they became
// ready, with the phases first: what `faultline bench startup -v` prints.
func (s Startup) String() string {
	var b strings.Builder
	for _, p := range s.Phases {
		fmt.Fprintf(&b, "  %-14s %8s\n", p.Name, ms(p.Took))
	}
	cs := slices.Clone(s.Components)
	slices.SortStableFunc(cs, func(a, b ComponentStartup) int { return int(a.Ready - b.Ready) })
	prepared := slices.ContainsFunc(cs, func(c ComponentStartup) bool { return c.Prepared > 0 })
	col := func(d time.Duration) string {
		if !prepared {
			return ""
		}
		if d == 0 {
			return fmt.Sprintf(" %8s", "-")
		}
		return fmt.Sprintf(" %8s", ms(d))
	}
	head := ""
	if prepared {
		head = fmt.Sprintf(" %8s", "created")
	}
	fmt.Fprintf(&b, "  %-14s%s %8s %8s %8s  %s\n", "component", head, "start", "running", "ready", "after")
	for _, c := range cs {
		waited := slices.Clone(c.Deps)
		for _, d := range c.Up {
			waited = append(waited, d+" up")
		}
		after := strings.Join(waited, ",")
		if after == "" {
			after = "-"
		}
		if c.IsUp > 0 && c.IsUp < c.Ready {
			after += fmt.Sprintf(" (itself up at %s)", ms(c.IsUp))
		}
		fmt.Fprintf(&b, "  %-14s%s %8s %8s %8s  %s\n", c.Name, col(c.Prepared), ms(c.Start), ms(c.Running), ms(c.Ready), after)
	}
	fmt.Fprintf(&b, "  %-14s%s %26s\n", "all ready", strings.Repeat(" ", len(head)), ms(s.Ready))
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
