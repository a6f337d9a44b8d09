// Package faults is Faultline's fault layer: network faults injected through in-process
// Toxiproxy proxies that sit on every link the harness controls, partitions built from
// them, and process faults (crash, pause, restart, crash-loop, delete) driven through a
// runtime.
//
// It follows the shape of toxiproxy's toxics: a fault is a small config struct with
// Inject and Heal, registered by name, decoded in two steps (the kind first, then the
// attributes into the struct New returns). What a fault can do beyond that — validate
// itself, name its targets, measure its real effect — it offers through small optional
// interfaces, so a scenario runner asks for a capability instead of switching on kinds.
package faults

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Fault is one injectable failure. Heal must be idempotent: healing twice, or healing a
// fault that was never injected, is a no-op, because the harness heals on every exit path.
type Fault interface {
	Inject(ctx context.Context, env Env) error
	Heal(ctx context.Context, env Env) error
}

// Validator is implemented by faults that can check their attributes before a run. It
// returns every problem at once so a scenario author fixes a file in one pass.
type Validator interface {
	Validate() []error
}

// Targeted is implemented by faults that act on named components, services or links, so
// a scenario can refuse a target the system does not have before anything is injected.
// Link targets are reported as their two ends ("api->db-2" gives "api" and
// "db-2").
type Targeted interface {
	Targets() []string
}

// Measurer is implemented by faults whose effect can be observed after Inject. A run whose
// fault did not land (Effect.Landed false) cannot show what it claims and is invalid.
type Measurer interface {
	Measure(ctx context.Context, env Env) (Effect, error)
}

// WindowMeasurer is implemented by faults whose effect builds up over their whole window
// (a crash loop's rounds), which a look right after Inject would undercount. The harness
// calls MeasureWindow when the window ends, before healing, instead of Measure, and its
// answer is the fault's one effect in every output.
type WindowMeasurer interface {
	MeasureWindow(ctx context.Context, env Env) (Effect, error)
}

// Effect is what a fault measurably did, next to what it was configured to do.
type Effect struct {
	Kind       string  `json:"kind"`
	Configured float64 `json:"configured"`
	Measured   float64 `json:"measured"`
	Unit       string  `json:"unit"`
	// Tolerance is how far Measured may lie from Configured, in Unit, for the fault to
	// count as landed: the one number every output states. Zero when landing is a count
	// that must match (processes, links) or an outcome (refused, reset).
	Tolerance float64 `json:"tolerance,omitempty"`
	Landed    bool    `json:"landed"`
	Detail    string  `json:"detail,omitempty"`
}

// Env is what a fault acts on. Either part may be nil when a run has no such layer; a
// fault that needs the missing part fails to inject instead of panicking.
type Env interface {
	Links() *Links
	Processes() Processes
}

// Processes is the slice of a runtime that process faults need. Names are component
// (instance) names such as "api-2"; Instances maps a service to its components.
type Processes interface {
	Kill(name string) error
	Pause(name string) error
	Resume(name string) error
	Restart(ctx context.Context, name string) error
	Running(name string) bool
	Instances(service string) []string
}

// PIDs is an optional capability of a Processes whose components are local OS processes;
// it lets pause be verified from /proc (state T) and restart from a changed PID.
type PIDs interface {
	PID(name string) (pid int, ok bool)
}

// HealthProber is an optional capability of a Processes that can ask a component's health
// endpoint; it lets a pause be verified where no PID is visible (for example a container).
type HealthProber interface {
	Healthy(ctx context.Context, name string) bool
}

// NewEnv bundles links and processes into an Env; either may be nil.
func NewEnv(links *Links, procs Processes) Env { return env{links: links, procs: procs} }

type env struct {
	links *Links
	procs Processes
}

func (e env) Links() *Links        { return e.links }
func (e env) Processes() Processes { return e.procs }

var (
	registryMu sync.RWMutex
	registry   = map[string]func() Fault{}
)

// Register makes a fault kind available to New. It panics on a duplicate kind because
// that is a programming error at init, never a consequence of user input.
func Register(kind string, factory func() Fault) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[kind]; dup {
		panic(fmt.Sprintf("faults: kind %q registered twice", kind))
	}
	if factory == nil {
		panic(fmt.Sprintf("faults: kind %q registered with a nil factory", kind))
	}
	registry[kind] = factory
}

// New returns a fresh, zero-valued fault of kind, ready to have its attributes decoded
// into it. An unknown kind is an error that lists the known ones.
func New(kind string) (Fault, error) {
	registryMu.RLock()
	factory, ok := registry[kind]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("new fault: unknown kind %q (known: %s)", kind, strings.Join(Kinds(), ", "))
	}
	return factory(), nil
}

// Decode is the two-step decoding in one call: New(kind), then decode the attributes into
// the fault (pass a yaml.Node's or json.Decoder's Decode method).
func Decode(kind string, decode func(v any) error) (Fault, error) {
	f, err := New(kind)
	if err != nil {
		return nil, err
	}
	if decode != nil {
		if err := decode(f); err != nil {
			return nil, fmt.Errorf("decode %s attributes: %w", kind, err)
		}
	}
	return f, nil
}

// Kinds lists the registered fault kinds, sorted, for error messages, schemas and docs.
func Kinds() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
