// Package sut defines the system under test as the harness's run pipeline sees it: what
// it must do to be started, interposed, loaded, scraped, faulted, read and stopped. The
// reference system (package reference) and a user's topology (package topology/run) are
// two implementations; a test can write a third. The harness never asks which one it
// runs: everything one system can do and another cannot is an optional capability,
// checked with a type assertion, the way runtime's are.
package sut

import (
	"context"
	"log/slog"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/loadgen"
	"github.com/faultline-dev/faultline/observe"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/scenarios"
)

// System is one system under test, made for one run of one scenario. The pipeline calls
// Validate and Runnable before anything exists, Plan once the run directory is claimed,
// Start once, then the rest while the system runs, and Stop on every way out.
type System interface {
	// Validate returns the scenario's problems against this system's components and
	// links, each naming its place in the scenario file; nil when there are none.
	Validate(sc *scenarios.Scenario) []error
	// Runnable returns why the system cannot run on runtime rt ("local", "docker"), as an
	// *Unrunnable, or nil when it can.
	Runnable(rt string) error
	// Plan fixes what the run needs to know before the system starts: its design's name
	// and how many link proxies it can need. dir is the run directory.
	Plan(dir string, container bool) (Plan, error)
	// Start starts every instance on env.Runtime, with every link the harness must be
	// able to fault going through a proxy of env.Links, and returns once each instance is
	// ready. A Start that fails leaves what it started for Stop.
	Start(ctx context.Context, env Env) error
	// Stop stops every instance it started. It is called on every exit path, after a
	// failed Start too.
	Stop(ctx context.Context) error
	// Topology lists every instance for the run's report, external ones included.
	Topology() []result.Component
	// Processes lists what the system started, for processes.json.
	Processes() []Process
	// Running reports whether an instance is alive.
	Running(name string) bool
	// Instances lists the instances of a replicated component (service); nil for anything
	// else, which faults then treat as one instance.
	Instances(service string) []string
	// LoadTargets are the base URLs the load is sent to, the first preferred and the
	// others failed over to; nil means the scenario's load targets carry absolute URLs.
	LoadTargets() []string
	// Scrape describes where the system's metrics are read.
	Scrape() (Scrape, error)
}

// Plan is what a system tells the run before it starts.
type Plan struct {
	// Design names the system's design in the result ("default", a design file's name,
	// "custom").
	Design string
	// Proxies is how many link proxies the system can need: a run in containers
	// publishes that many ports of its proxy container.
	Proxies int
}

// Env is what the harness lends a system to start on.
type Env struct {
	// Dir is the run directory.
	Dir string
	// Runtime starts the instances; it records what it starts for crash recovery.
	Runtime runtime.Runtime
	// Container is set when Runtime runs containers on a network of their own.
	Container bool
	// Dial maps an address on the containers' network to one the harness can dial; nil
	// when addresses are dialled as they are.
	Dial func(addr string) (string, error)
	// Links is where every interposed link gets its proxy.
	Links *faults.Links
	// ReadyTimeout bounds the wait for the system to be ready.
	ReadyTimeout time.Duration
	// Log receives the system's progress.
	Log *slog.Logger
}

// Process is one line of processes.json: what a run started, so that anyone can check
// afterwards that nothing of it is left running.
type Process struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	PID   int    `json:"pid"`
	Admin string `json:"admin"`
}

// Scrape is where a system's metrics are read.
type Scrape struct {
	// Targets lists the metrics endpoints now; it is called at every scrape, so that a
	// restarted instance's new address is followed.
	Targets func() []observe.Target
	// Checked keeps only the metrics the scenario's checks name, for systems whose
	// endpoints publish far more than a run needs.
	Checked bool
}

// Unrunnable says why a system cannot run on a runtime, and what to do about it.
type Unrunnable struct {
	Err  error
	Hint string
}

// Error is the reason.
func (u *Unrunnable) Error() string { return u.Err.Error() }

// Unwrap is the reason's error.
func (u *Unrunnable) Unwrap() error { return u.Err }

// Optional capabilities. Process faults need the first three; a system without one has
// those faults fail when injected, with an error saying so.
type (
	// Killer kills an instance (SIGKILL, or the runtime's equivalent).
	Killer interface {
		Kill(name string) error
	}
	// Pauser freezes and thaws an instance.
	Pauser interface {
		Pause(name string) error
		Resume(name string) error
	}
	// Restarter starts an instance again and waits until it is ready.
	Restarter interface {
		Restart(ctx context.Context, name string) error
	}
	// Disconnecter takes an instance off the network and back (faults.Networker).
	Disconnecter = faults.Networker
	// Deleter deletes an instance that a controller of its runtime replaces (a Kubernetes
	// Deployment's pod), for the delete fault (faults.Deleter).
	Deleter = faults.Deleter
	// Prober answers whether an instance is healthy now, by its own readiness check: it
	// is how a pause is seen where no process id is (a container).
	Prober = faults.HealthProber
	// PIDs names an instance's operating-system process, for faults verified from /proc.
	PIDs = faults.PIDs
	// Discarder is a system that can end without stopping its instances one by one,
	// for a run whose runtime removes every instance right after (a container run:
	// Docker removes the containers, Kubernetes deletes the namespace and kills its
	// pods). A graceful stop there only waits, tier after tier, for instances that are
	// removed anyway. Discard releases what the runtime does not own (route
	// publishers, clients) and leaves the instances to the runtime's removal; the
	// pipeline calls it instead of Stop.
	Discarder interface {
		Discard(ctx context.Context) error
	}
	// RoutePublisher is a system whose callers find their callees at run time: the
	// pipeline waits, after Start, until every route through a proxy is published.
	RoutePublisher interface {
		PublishRoutes(ctx context.Context) error
	}
	// Renderer is a system whose scenario names its addresses by template: the pipeline
	// runs the rendered scenario once the system started.
	Renderer interface {
		Render(sc *scenarios.Scenario) (*scenarios.Scenario, error)
	}
	// Tokener issues the bearer tokens the load and the probes send.
	Tokener interface {
		Token(subject string, ttl time.Duration) (string, error)
	}
	// Journeyer is a system with built-in journeys, which the load runs beside the
	// scenario's own targets; token gives each client's bearer token.
	Journeyer interface {
		Journeys(token func(client int) string) []loadgen.Journey
	}
	// StateReader reads the system's own state (see State), which the harness watches
	// converge and hands to the check kinds that judge it; without it the run skips
	// convergence and those checks.
	StateReader interface {
		ReadState(ctx context.Context) (State, error)
	}
	// Leaser is a system whose components hold leases; checks on a kill's recovery
	// allow for their time to live.
	Leaser interface {
		LeaseTTL() time.Duration
	}
	// Registrar is a system whose instances join a service registry under a lease:
	// Registered returns the instances the registry lists now, by name, and false while
	// it has not been read. An instance missing from it has left the registry (its lease
	// expired or it deregistered); the console shows membership and logs its changes.
	Registrar interface {
		Registered() (map[string]bool, bool)
	}
	// Gauger is a system with gauges worth watching live beside the load, such as a
	// queue's backlog: the console charts each, summed over the instances publishing it.
	// The names are the system's, so that no framework code names a domain's metric.
	Gauger interface {
		Gauges() []Gauge
	}
	// Inspectable lends an instance's current process, so that what its runtime can
	// tell of it (runtime.Inspector: running, paused, on the network) is asked of the
	// runtime: a container's pause is invisible in the host's /proc. False for an
	// instance never started.
	Inspectable interface {
		Process(name string) (runtime.Process, bool)
	}
	// FaultlineImage is a system whose containers run faultline's own image, which a run
	// on Docker must then build.
	FaultlineImage interface {
		RunsFaultlineImage() bool
	}
)

// Gauge is one metric a system offers to chart live (Gauger).
type Gauge struct {
	// Metric is the metric's name in the system's /metrics.
	Metric string `json:"metric"`
	// Title says what it counts, with its unit, for the chart's heading.
	Title string `json:"title"`
}
