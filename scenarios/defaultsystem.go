package scenarios

import (
	"errors"
	"slices"
	"sync"
)

// DefaultSystem is the system a scenario runs when it names no topology of its own, as
// validation must know it: its services and the links a run proxies. The system's own
// package registers it (package reference does when imported), so that this package
// validates link faults against the one list the interposer also builds from, without
// depending on the system's code.
type DefaultSystem struct {
	// Services are the system's services in start order.
	Services []SystemService
	// Replicated are the services whose instance count system.replicas may choose, in
	// the order hints list them; the others run once (the gateways have their own count).
	Replicated []string
	// Edges lists the proxied links of the system sized by services (each service's
	// instance count), one per proxy the run puts in place.
	Edges func(services map[string]int) []Edge
}

// SystemService is one service of the default system.
type SystemService struct {
	// Name is the service's name, as targets and links write it.
	Name string
	// Doc says what the service is, for the scenario reference.
	Doc string
}

var registered struct {
	mu  sync.RWMutex
	sys *DefaultSystem
}

// RegisterDefaultSystem makes sys the system scenarios without a topology are validated
// against. A second registration replaces the first: there is one default system.
func RegisterDefaultSystem(sys DefaultSystem) error {
	if len(sys.Services) == 0 || sys.Edges == nil {
		return errors.New("register default system: it needs services and edges")
	}
	sys.Services, sys.Replicated = slices.Clone(sys.Services), slices.Clone(sys.Replicated)
	registered.mu.Lock()
	defer registered.mu.Unlock()
	registered.sys = &sys
	return nil
}

// Builtin returns the registered default system; false when none is, which happens
// only in a program that does not import the system's package.
func RegisteredDefault() (DefaultSystem, bool) {
	registered.mu.RLock()
	defer registered.mu.RUnlock()
	if registered.sys == nil {
		return DefaultSystem{}, false
	}
	return *registered.sys, true
}

// defaultServices lists the default system's service names in start order; nil when
// none is registered.
func defaultServices() []string {
	b, _ := RegisteredDefault()
	out := make([]string, len(b.Services))
	for i, s := range b.Services {
		out[i] = s.Name
	}
	return out
}

// replicatedServices lists the services of the default system a scenario may replicate;
// nil when none is registered.
func replicatedServices() []string {
	b, _ := RegisteredDefault()
	return b.Replicated
}
