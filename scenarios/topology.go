package scenarios

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/faultline-dev/faultline/topology"
)

// Topology is what a scenario may target: services and their instance counts. Instances
// are named <service>-<n>, n from 1, as the system package names its components, and a
// link is written caller->callee with either end a service or an instance.
type Topology struct {
	// Services maps each service to its number of instances.
	Services map[string]int
	// Custom marks a user's own topology (see CustomTopology): checks that read the
	// reference system's state are refused, and so are its built-in journeys.
	Custom bool
	// Links are a custom topology's declared links, "from->to"; a link whose caller is
	// topology.Client makes "client" a valid link end.
	Links []string
}

// ReferenceServices are the reference system's services, in start order.
var ReferenceServices = []string{"registry", "broker", "merchant", "product", "order", "balancer", "gateway"}

// ReferenceTopology is the reference system sized by sys: replicated domain services,
// gateways, and single registry, broker and balancer instances.
func ReferenceTopology(sys System) Topology {
	t := Topology{Services: map[string]int{}}
	for _, s := range ReferenceServices {
		t.Services[s] = sys.ReplicasOf(s)
	}
	return t
}

// IsZero reports whether t has no services (Validate then uses the reference topology).
func (t Topology) IsZero() bool { return len(t.Services) == 0 }

// HasComponent reports whether name is a service or one of its instances.
func (t Topology) HasComponent(name string) bool {
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
func (t Topology) Components() []string {
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
func (t Topology) CheckTarget(target string) error {
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

func (t Topology) checkComponent(name string) error {
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
