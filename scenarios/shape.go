package scenarios

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/topology"
)

// SystemShape is the shape of the system a scenario is validated against: what it may
// target, its services and their instance counts, and the proxied links a fault can act
// on. Instances are named <service>-<n>, n from 1, as the system package names its
// components, and a link is written caller->callee with either end a service or an
// instance. (A topology.Topology is a user's whole system, commands and all; its shape is
// CustomShape of it.)
type SystemShape struct {
	// Services maps each service to its number of instances.
	Services map[string]int
	// Custom marks a user's own topology (see CustomShape): checks that read the
	// reference system's state are refused, and so are its built-in journeys.
	Custom bool
	// Links are a custom topology's declared links, "from->to"; a link whose caller is
	// topology.Client makes "client" a valid link end.
	Links []string
	// Edges are the links a fault can act on, one per proxy the run puts in place, so that
	// a fault on an edge the system does not have is refused by validate instead of after
	// the system started. Nil means the edges are unknown and not checked.
	Edges []Edge
	// RefusedFaults are the fault kinds the runtime the scenario will run on cannot
	// carry out, each with the reason (a kill-and-restart loop where a controller restarts
	// on its own schedule, a delete where no controller replaces the instance): validate
	// refuses them at the fault's type, as the run would when it starts. Nil refuses none.
	RefusedFaults map[string]string
	// Runtime names that runtime in the messages of RefusedFaults.
	Runtime string
}

// Edge is one proxied link, named the way the fault layer matches a target caller->callee:
// the caller by From or FromService, the callee by To or ToService.
type Edge struct {
	// From is the caller: a service when all its instances share the proxy, or one
	// instance when each has its own.
	From string
	// FromService is From's service when From is an instance, else empty.
	FromService string
	// To is the callee instance.
	To string
	// ToService is To's service.
	ToService string
}

// Matches reports whether the target from->to selects e.
func (e Edge) Matches(from, to string) bool {
	return (e.From == from || (e.FromService != "" && e.FromService == from)) && (e.To == to || e.ToService == to)
}

// CheckEdge reports why no edge matches from->to, with a hint naming what the caller
// does call; nil when at least one does. Both ends are known to exist.
func (t SystemShape) CheckEdge(from, to string) error {
	var calls, callers []string
	for _, e := range t.Edges {
		if e.Matches(from, to) {
			return nil
		}
		if e.From == from || e.FromService == from {
			calls = appendNew(calls, e.ToService)
		}
		if e.To == to || e.ToService == to {
			callers = appendNew(callers, cmpOr(e.FromService, e.From))
		}
	}
	for _, e := range t.Edges {
		// A caller's instances share a route link: order-1->product is written order->product.
		if e.FromService == "" && ServiceOf(from) == e.From && (e.To == to || e.ToService == to) {
			return hint(fmt.Sprintf("the instances of %s share one link to %s; write %s->%s", e.From, to, e.From, to), "no link %s->%s: %s is not a caller of its own", from, to, from)
		}
	}
	h := fmt.Sprintf("%s calls %s", from, orNone(sortedCopy(calls)))
	if len(callers) > 0 {
		h += fmt.Sprintf("; %s is called by %s", to, strings.Join(sortedCopy(callers), ", "))
	}
	return hint(h, "no link %s->%s: %s does not call %s, so no proxy sits there", from, to, from, to)
}

func appendNew(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func sortedCopy(list []string) []string {
	out := append([]string(nil), list...)
	sort.Strings(out)
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ServiceOf is the service an instance belongs to: "product-2" → "product". Only a
// numbered instance has a service apart from its name, so "api-gateway" is its own.
func ServiceOf(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return name
	}
	for _, r := range name[i+1:] {
		if r < '0' || r > '9' {
			return name
		}
	}
	return name[:i]
}

// DefaultShape is the registered default system (the reference system) sized by sys: replicated services,
// gateways, and single instances of the others. Without a registered system it is zero,
// and Validate then refuses the scenario.
func DefaultShape(sys System) SystemShape {
	b, ok := RegisteredDefault()
	if !ok {
		return SystemShape{}
	}
	t := SystemShape{Services: map[string]int{}}
	for _, s := range b.Services {
		t.Services[s.Name] = sys.ReplicasOf(s.Name)
	}
	t.Edges = b.Edges(t.Services)
	return t
}

// IsZero reports whether t has no services (Validate then uses the reference topology).
func (t SystemShape) IsZero() bool { return len(t.Services) == 0 }

// HasComponent reports whether name is a service or one of its instances.
func (t SystemShape) HasComponent(name string) bool {
	if _, ok := t.Services[name]; ok {
		return true
	}
	if t.Custom && name == topology.Client {
		for _, l := range t.Links {
			if strings.HasPrefix(l, topology.Client+"->") {
				return true
			}
		}
	}
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return false
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || name[i+1] == '0' || name[i+1] == '+' {
		return false
	}
	count, ok := t.Services[name[:i]]
	return ok && n >= 1 && n <= count
}

// Components lists every service and instance name, sorted, for hints.
func (t SystemShape) Components() []string {
	var out []string
	for s, n := range t.Services {
		out = append(out, s)
		for i := 1; i <= n; i++ {
			out = append(out, fmt.Sprintf("%s-%d", s, i))
		}
	}
	sort.Strings(out)
	return out
}

// CheckTarget reports why target (a component, or a link caller->callee) is not in t,
// with a hint; it returns nil when the target exists.
func (t SystemShape) CheckTarget(target string) error {
	if from, to, ok := strings.Cut(target, "->"); ok {
		if err := t.checkComponent(strings.TrimSpace(from)); err != nil {
			return err
		}
		if err := t.checkComponent(strings.TrimSpace(to)); err != nil {
			return err
		}
		if strings.TrimSpace(from) == strings.TrimSpace(to) {
			return hint("a link joins two different components", "link %q starts and ends at the same component", target)
		}
		return nil
	}
	return t.checkComponent(target)
}

func (t SystemShape) checkComponent(name string) error {
	if t.HasComponent(name) {
		return nil
	}
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if n, ok := t.Services[name[:i]]; ok {
			return hint(fmt.Sprintf("%s has %d instance(s), %s-1 to %s-%d; raise system.replicas or system.gateways", name[:i], n, name[:i], name[:i], n), "target %q is not in the topology", name)
		}
	}
	if s, ok := suggest(name, t.Components()); ok {
		return hint(fmt.Sprintf("did you mean %q?", s), "target %q is not in the topology", name)
	}
	services := make([]string, 0, len(t.Services))
	for s := range t.Services {
		services = append(services, s)
	}
	if t.Custom {
		return hint("the topology's components are "+joinSorted(services), "target %q is not in the topology", name)
	}
	return hint("services are "+joinSorted(services)+", instances <service>-<n>", "target %q is not in the topology", name)
}
