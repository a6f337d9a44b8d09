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
// started and found ready. Every offset counts from the call of Start (or StartDocker).
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
	// Start is when the runtime was asked to start it (every dependency was ready by
	// then), Running when the runtime returned (a fork; a container created and
	// started), Ready when its /readyz first answered 200.
	Start, Running, Ready time.Duration
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

// step is one node of a start graph.
type step struct {
	name string
	deps []string
}

// stepFuncs are what a start graph does with each node: start it, then wait for it to
// be ready. Both must return when ctx ends.
type stepFuncs struct {
	start func(ctx context.Context, name string) error
	ready func(ctx context.Context, name string) error
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
	for _, s := range steps {
		ready[s.name] = make(chan struct{})
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
		out[i] = ComponentStartup{Name: s.name, Deps: slices.Clone(s.deps)}
		wg.Go(func() {
			for _, d := range s.deps {
				select {
				case <-ready[d]:
				case <-ctx.Done():
					return // the failure that cancelled ctx is already recorded
				}
			}
			out[i].Start = time.Since(since)
			if err := f.start(ctx, s.name); err != nil {
				fail(err)
				return
			}
			out[i].Running = time.Since(since)
			if err := f.ready(ctx, s.name); err != nil {
				fail(err)
				return
			}
			out[i].Ready = time.Since(since)
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
		for _, d := range s.deps {
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
		after := strings.Join(c.Deps, ",")
		if after == "" {
			after = "-"
		}
		fmt.Fprintf(&b, "  %-14s%s %8s %8s %8s  %s\n", c.Name, col(c.Prepared), ms(c.Start), ms(c.Running), ms(c.Ready), after)
	}
	fmt.Fprintf(&b, "  %-14s%s %26s\n", "all ready", strings.Repeat(" ", len(head)), ms(s.Ready))
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
