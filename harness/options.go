// Package harness runs a scenario against a system under test (package sut) and gives a
// verdict, through one pipeline (see runner.run in pipeline.go): it claims the run
// directory and opens the undo record and the history, starts the system on the local or
// Docker runtime with a fault proxy on every link it declares, scrapes its metrics into
// the history, sends the scenario's seeded load while a scheduler injects and heals each
// fault at its time and measures its real effect, then heals everything, waits for the
// system's state to converge when it can be read, evaluates the checks and writes
// result.json. Faults are healed and the system stopped on every exit path, a cancelled
// context included. Which system runs is the caller's choice (WithSystemFor,
// WithSystem); the harness names none.
package harness

import (
	"io"
	"log/slog"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
)

// Defaults of a run.
const (
	// DefaultRunsDir is where runs go when no directory is given:
	// DefaultRunsDir/<UTC timestamp>-<scenario>.
	DefaultRunsDir = ".faultline/runs"
	// DefaultConvergeBound bounds the wait for the final state to add up after the load.
	DefaultConvergeBound = 10 * time.Second
	// HistoryFile and ResultFile are the names of a run's records inside its directory.
	HistoryFile   = "history.jsonl"
	ResultFile    = "result.json"
	ProcessesFile = "processes.json"
)

// Option configures Run.
type Option func(*options)

type options struct {
	dir           string
	command       string
	args          []string
	log           *slog.Logger
	progress      func(Progress)
	seed          *int64
	linkOpts      []faults.Option
	evaluator     Evaluator
	convergeBound time.Duration
	readyTimeout  time.Duration
	runtime       string
	docker        Docker
	kubernetes    Kubernetes
	system        sut.System
	systemFor     SystemFor
	started       *Up
}

func defaultOptions() options {
	return options{
		log:           slog.New(slog.DiscardHandler),
		convergeBound: DefaultConvergeBound,
		readyTimeout:  60 * time.Second,
	}
}

// WithDir sets the run directory (default DefaultRunsDir/<UTC timestamp>-<scenario>). It
// receives history.jsonl, result.json, processes.json and the system's own directory.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithCommand sets the faultline executable (and arguments before "--config FILE") that
// components are re-executed from; tests pass their own binary with no arguments. The
// default is this executable with "serve".
func WithCommand(command string, args ...string) Option {
	return func(o *options) { o.command, o.args = command, args }
}

// WithLogger logs the run's progress and the system's start.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithProgress calls fn about twice a second while the run goes, and at every phase
// change, from one goroutine at a time. fn must not block for long.
func WithProgress(fn func(Progress)) Option { return func(o *options) { o.progress = fn } }

// WithSeed overrides the scenario's seed, so a failing run can be reproduced or varied.
func WithSeed(seed int64) Option { return func(o *options) { o.seed = &seed } }

// WithLinkOptions configures the run's fault proxies (for example a prober that sends
// real requests along a link when measuring a fault's effect).
func WithLinkOptions(opts ...faults.Option) Option {
	return func(o *options) { o.linkOpts = append(o.linkOpts, opts...) }
}

// WithEvaluator replaces the check evaluator.
func WithEvaluator(e Evaluator) Option {
	return func(o *options) {
		if e != nil {
			o.evaluator = e
		}
	}
}

// WithConvergeBound bounds how long the harness waits after the load for the system's
// state to converge (sut.State; default 10 s).
func WithConvergeBound(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.convergeBound = d
		}
	}
}

// WithReadyTimeout bounds the system's start (default 60 s).
func WithReadyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.readyTimeout = d
		}
	}
}

// Progress is a snapshot of a run for a live view.
type Progress struct {
	// Phase is starting, before, during:<fault>[,during:<fault>…], after, converging,
	// evaluating, stopping or done.
	Phase string
	// Elapsed is the time since the load began (0 before it does).
	Elapsed time.Duration
	// Requests and Errors count completed requests and those that failed.
	Requests, Errors uint64
	// RPS is the completion rate over the last second.
	RPS float64
	// ActiveFaults names the faults injected and not yet healed.
	ActiveFaults []string
}

// WithRuntime runs the scenario on rt ("local", "docker" or "kubernetes") whatever its
// system.runtime says, so one scenario file serves all (faultline run --runtime docker). Empty keeps
// the scenario's choice.
func WithRuntime(rt string) Option { return func(o *options) { o.runtime = rt } }

// Docker configures runs on the Docker runtime. Zero fields are built or found: images
// are built FROM scratch from the module (and only rebuilt when the binary changed).
type Docker struct {
	// Image holds the faultline binary (docker.BuildImage); Toxiproxy holds Toxiproxy's
	// server (docker.BuildToxiproxyImage). A suite builds them once and passes them on.
	Image, Toxiproxy string
	// ModuleRoot is where images are built from; empty asks the go command from the
	// working directory.
	ModuleRoot string
	// BuildLog receives the image builds' output; nil discards it.
	BuildLog io.Writer
}

// WithSystem runs the scenario against sys, made for this one run; it wins over
// WithSystemFor.
func WithSystem(sys sut.System) Option { return func(o *options) { o.system = sys } }

// SystemFor makes the system under test for one run of sc. command and args are what
// WithCommand gave: the executable a system of faultline's own processes re-executes.
type SystemFor func(sc *scenarios.Scenario, command string, args ...string) sut.System

// WithSystemFor picks each run's system under test (systems.For picks the one the
// scenario names). Run needs it or WithSystem.
func WithSystemFor(f SystemFor) Option { return func(o *options) { o.systemFor = f } }

// WithDocker sets how runs on the Docker runtime get their images.
func WithDocker(d Docker) Option { return func(o *options) { o.docker = d } }
