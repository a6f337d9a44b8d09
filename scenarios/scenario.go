// Package scenarios reads, validates and describes scenario files: a system and its
// design, a load, a timeline of faults, a steady-state hypothesis and expectations per
// phase. Every problem in a file is reported at once as file:line:col with a hint, so a
// workshop teacher or a CI author can fix a scenario without running it; running and
// evaluating checks is left to the runner.
package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/topology"
)

// Scenario is one decoded scenario file.
type Scenario struct {
	Name          string             `yaml:"name" json:"name" doc:"short identifier, lower-case words joined by dashes" required:"true"`
	Description   string             `yaml:"description" json:"description" doc:"what the scenario teaches and why; workshop teachers read it aloud" required:"true"`
	System        System             `yaml:"system,omitempty" json:"system,omitempty" doc:"the system under test and its design"`
	Seed          int64              `yaml:"seed,omitempty" json:"seed,omitempty" doc:"seed of every random choice, so a run can be reproduced"`
	Load          LoadSpec           `yaml:"load" json:"load" doc:"the traffic sent through the gateway while faults run" required:"true"`
	Faults        []FaultSpec        `yaml:"faults,omitempty" json:"faults,omitempty" doc:"the fault timeline; times count from the start of the load"`
	SteadyState   []Check            `yaml:"steady_state,omitempty" json:"steady_state,omitempty" doc:"checks that must hold before the first fault and after the last heal"`
	Expect        Expect             `yaml:"expect,omitempty" json:"expect,omitempty" doc:"checks per phase"`
	AbortWhen     []Check            `yaml:"abort_when,omitempty" json:"abort_when,omitempty" doc:"checks evaluated continuously; the first to fail stops the run as invalid"`
	ExpectFailure *ExpectFailure     `yaml:"expect_failure,omitempty" json:"expect_failure,omitempty" doc:"for a scenario that demonstrates a weak design: the check that must fail, and why"`
	Compare       []DesignVariant    `yaml:"compare,omitempty" json:"compare,omitempty" doc:"designs to run side by side with faultline compare: the same seeded load and fault schedule against each; faultline run uses system.design"`
	Sweep         *Sweep             `yaml:"sweep,omitempty" json:"sweep,omitempty" doc:"a load sweep for faultline compare: the offered rates each design runs at, with and without the faults, and the bounds its knee is found against; --rates on the command line overrides the rates"`
	Topology      *topology.Topology `yaml:"topology,omitempty" json:"topology,omitempty" doc:"your own system instead of the reference system: components to start, their ports, readiness and the links faults act on"`

	// File is the name the scenario was parsed from, used in every message.
	File string `yaml:"-" json:"-"`

	root      *yaml.Node
	parseErrs ErrorList
	// topoFile and topoRoot locate the topology's problems: the file system.topology
	// names, or the scenario itself (topoRoot then being the topology: value).
	topoFile string
	topoRoot *yaml.Node
}

// Runtimes a system can run on.
var Runtimes = []string{"local", "docker"}

// MaxReplicas bounds replicas and gateways: more would not fit on a laptop.
const MaxReplicas = 9

// System describes the system under test.
type System struct {
	Runtime  string         `yaml:"runtime,omitempty" json:"runtime,omitempty" doc:"local processes (default) or docker containers" enum:"local,docker"`
	Replicas map[string]int `yaml:"replicas,omitempty" json:"replicas,omitempty" doc:"instances per service (merchant, order, product); default 1"`
	Gateways int            `yaml:"gateways,omitempty" json:"gateways,omitempty" doc:"number of gateway instances, default 1" minimum:"1"`
	Design   DesignRef      `yaml:"design,omitempty" json:"design,omitempty" doc:"design file path (designs/resilient.yaml) or the design inline; default design when absent"`
	LeaseTTL Duration       `yaml:"lease_ttl,omitempty" json:"lease_ttl,omitempty" doc:"registry lease TTL, the heartbeat deadline; default 2s"`
	Stock    int64          `yaml:"stock,omitempty" json:"stock,omitempty" doc:"initial stock of every product of the reference system; default 1000000, which a run never exhausts, while a small stock makes a burst of orders oversubscribe it" minimum:"1"`
	Topology string         `yaml:"topology,omitempty" json:"topology,omitempty" doc:"path of a topology file (your own system), relative to the scenario; or write topology: inline"`
}

// ReplicasOf returns the instance count of service with its default: system.gateways for
// the gateway, system.replicas for a service the default system replicates, 1 otherwise.
func (s System) ReplicasOf(service string) int {
	switch {
	case service == "gateway":
		return max(s.Gateways, 1)
	case contains(replicatedServices(), service):
		return max(s.Replicas[service], 1)
	}
	return 1
}

// LoadSpec describes the traffic.
type LoadSpec struct {
	Rate       Rate               `yaml:"rate,omitempty" json:"rate,omitempty" doc:"constant open-model rate, such as 50/s; or use ramp"`
	Ramp       []RampStep         `yaml:"ramp,omitempty" json:"ramp,omitempty" doc:"rate steps, in order: each holds its rate for its for (or, with shape: linear, reaches it in a straight line); the last rate holds until the end"`
	Duration   Duration           `yaml:"duration" json:"duration" doc:"how long load runs; faults must end by then" required:"true"`
	MaxWorkers int                `yaml:"max_workers,omitempty" json:"max_workers,omitempty" doc:"bound on concurrent requests, so a slow system cannot exhaust the harness; default 64" minimum:"1"`
	Timeout    Duration           `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"per-request client timeout; default 2s"`
	Clients    int                `yaml:"clients,omitempty" json:"clients,omitempty" doc:"distinct simulated users (tokens); default 10" minimum:"1"`
	Mix        map[string]float64 `yaml:"mix" json:"mix" doc:"relative weight per journey (browse, view_order, place_order, retry_order) or declared target" required:"true"`
	Targets    []HTTPTarget       `yaml:"targets,omitempty" json:"targets,omitempty" doc:"user-declared HTTP requests, named in mix like journeys"`
}

// RampStep is one step of a ramped load.
type RampStep struct {
	Rate Rate     `yaml:"rate" json:"rate" doc:"rate during this step" required:"true"`
	For  Duration `yaml:"for" json:"for" doc:"how long the step lasts" required:"true"`
	// Shape is "step" (the default) or "linear".
	Shape string `yaml:"shape,omitempty" json:"shape,omitempty" doc:"step (default): hold rate for the whole step, so the rate jumps at its start; linear: move in a straight line from the previous step's rate (0 for the first step) to rate over for" enum:"step,linear"`
	// Mix, when set, replaces load.mix from the step's start on.
	Mix map[string]float64 `yaml:"mix,omitempty" json:"mix,omitempty" doc:"relative weight per journey from this step's start on, until a later step sets its own (load.mix before the first that does)"`
}

// RampShapes are the shapes a ramp step can take.
var RampShapes = []string{"step", "linear"}

// HTTPTarget is a request a user declares, so the load can exercise their own services.
type HTTPTarget struct {
	Name    string            `yaml:"name" json:"name" doc:"name used in mix and in checks' journey" required:"true"`
	Method  string            `yaml:"method,omitempty" json:"method,omitempty" doc:"default GET" enum:"GET,HEAD,POST,PUT,PATCH,DELETE"`
	URL     string            `yaml:"url" json:"url" doc:"path on the gateway (/products) or absolute http URL" required:"true"`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty" doc:"extra request headers"`
	Body    string            `yaml:"body,omitempty" json:"body,omitempty" doc:"request body"`
}

// FaultSpec is one entry of the fault timeline. Name, Type, At and For are common to all
// faults; the remaining keys are decoded into Spec, a value created by the fault
// registry for Type (a faults.Fault when the faults package provides the decoder).
type FaultSpec struct {
	Name string   `yaml:"name" json:"name" doc:"unique name; expect.during refers to it" required:"true"`
	Type string   `yaml:"type" json:"type" doc:"fault type" required:"true"`
	At   Duration `yaml:"at" json:"at" doc:"injection time, counted from load start (0 = load start)" required:"true"`
	For  Duration `yaml:"for" json:"for" doc:"how long until heal" required:"true"`

	Spec any `yaml:"-" json:"-"`

	missing []string // required attributes reported missing while decoding
}

// End is when the fault is healed, from the start of the load. It saturates instead of
// wrapping around, so an absurd at or for still ends after the load.
func (f FaultSpec) End() Duration { return addSat(f.At, f.For) }

// Check is one check: Type names its kind, Name lets expect_failure and reports refer to
// it, and the remaining keys are decoded into Spec.
type Check struct {
	Type string `yaml:"check" json:"check" doc:"check type" required:"true"`
	Name string `yaml:"name,omitempty" json:"name,omitempty" doc:"unique name, used by expect_failure and reports"`

	Spec CheckSpec `yaml:"-" json:"-"`

	missing []string
}

// Expect holds checks per phase.
type Expect struct {
	Before  []Check            `yaml:"before,omitempty" json:"before,omitempty" doc:"checks over the time before the first fault"`
	During  map[string][]Check `yaml:"during,omitempty" json:"during,omitempty" doc:"checks over each fault's window, keyed by fault name"`
	After   []Check            `yaml:"after,omitempty" json:"after,omitempty" doc:"checks over the time after the last heal"`
	Overall []Check            `yaml:"overall,omitempty" json:"overall,omitempty" doc:"checks over the whole run"`
}

// DesignVariant is one design of a comparison. A comparison runs the scenario once per
// variant (several times with --repeat) with only the design changed, so that a difference
// in the figures is the design's doing.
type DesignVariant struct {
	Name        string    `yaml:"name" json:"name" doc:"short label shown in the comparison, lower-case words joined by dashes, such as breaker-on" required:"true"`
	Design      DesignRef `yaml:"design" json:"design" doc:"design file path (designs/no-breaker.yaml) or the design inline" required:"true"`
	Description string    `yaml:"description,omitempty" json:"description,omitempty" doc:"what this variant changes, for the audience"`
}

// Sweep is a load sweep of a comparison: each design runs at each rate, once with the
// scenario's faults and once without, and its knee is the first rate where p99 or the
// error rate leaves its bound. A bound left out comes from the scenario's own p99 latency
// or error_rate check without a journey or route filter, else from a default.
type Sweep struct {
	Rates      []int     `yaml:"rates" json:"rates" doc:"offered rates in requests per second, ascending, such as [50, 100, 200, 400]; each replaces load.rate for its runs" required:"true"`
	KneeP99    Duration  `yaml:"knee_p99,omitempty" json:"knee_p99,omitempty" doc:"p99 latency bound of the knee, such as 500ms"`
	KneeErrors *Fraction `yaml:"knee_errors,omitempty" json:"knee_errors,omitempty" doc:"error-rate bound of the knee, such as 1%"`
}

// MaxSweepRates bounds a sweep's rates: every rate runs every design twice.
const MaxSweepRates = 12

// ExpectFailure marks a scenario whose point is that a check fails: the run passes only if
// that check fails and its failure message matches Reason.
type ExpectFailure struct {
	Check       string `yaml:"check" json:"check" doc:"name of the check that must fail" required:"true"`
	Reason      string `yaml:"reason" json:"reason" doc:"regular expression the check's failure message must match" required:"true"`
	Explanation string `yaml:"explanation" json:"explanation" doc:"why the design fails here, for the audience" required:"true"`
}

// Option changes how a scenario is parsed.
type Option func(*options)

type options struct {
	faults FaultDecoder
}

// WithFaultDecoder decodes faults with fd instead of the default fault registry.
func WithFaultDecoder(fd FaultDecoder) Option {
	return func(o *options) { o.faults = fd }
}

func buildOptions(opts []Option) options {
	o := options{faults: DefaultFaultDecoder()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// Parse decodes a scenario. It returns a nil Scenario only when data is not YAML at all
// (or too big); otherwise it returns the Scenario together with an ErrorList of every
// decoding problem (unknown fields, wrong types, bad durations), which Validate reports
// again alongside the semantic problems.
func Parse(filename string, data []byte, opts ...Option) (*Scenario, error) {
	o := buildOptions(opts)
	fail := func(line int, hint, format string, args ...any) (*Scenario, error) {
		return nil, ErrorList{{File: filename, Position: Position{Line: line, Column: min(line, 1)}, Msg: fmt.Sprintf(format, args...), Hint: hint}}
	}
	if len(data) > MaxFileSize {
		return fail(0, "split the scenario or remove generated content", "file is %d bytes, more than the limit of %d", len(data), MaxFileSize)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := safeDecode(dec, &root); err != nil {
		if errors.Is(err, io.EOF) {
			return fail(1, "start from a built-in scenario such as scenarios/baseline.yaml", "file is empty")
		}
		msg := err.Error()
		line := 1
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = msg[len(m[0]):]
		}
		return fail(line, "check indentation and quoting around this line", "parse YAML: %s", trimYAMLPrefix(msg))
	}
	var extra yaml.Node
	if err := safeDecode(dec, &extra); err == nil {
		return fail(max(extra.Line, 1), "put each scenario in its own file", "file holds more than one YAML document")
	}
	s := &Scenario{File: filename, root: &root}
	d := &decoder{file: filename, faults: o.faults}
	body := &root
	if body.Kind == yaml.DocumentNode && len(body.Content) == 1 {
		body = body.Content[0]
	}
	if body.Kind != yaml.MappingNode {
		d.errorf(body, "a scenario is a mapping with name, description, load, faults...", "want a mapping at the top level, got %s", describe(body))
	} else {
		d.decodeStruct(body, reflect.ValueOf(s).Elem(), nil, 0, "", nil, nil)
	}
	s.attachTopology(d)
	s.parseErrs = d.errs.sorted()
	if len(s.parseErrs) > 0 {
		return s, s.parseErrs
	}
	return s, nil
}

// safeDecode guards against a panic in the YAML parser on hostile input.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

func trimYAMLPrefix(s string) string {
	if len(s) > 6 && s[:6] == "yaml: " {
		return s[6:]
	}
	return s
}

// Load reads and parses a scenario file; see Parse.
func Load(path string, opts ...Option) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open scenario: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(path, data, opts...)
}

// ValidateFile loads path and returns every problem, decoding and semantic, in file
// order; it is what `faultline validate` prints. A zero shape means the default system's
// (the reference system's, see DefaultShape) sized by the scenario's own system section.
func ValidateFile(path string, topology SystemShape, opts ...Option) []error {
	s, err := Load(path, opts...)
	if s == nil {
		var list ErrorList
		if errors.As(err, &list) {
			return list.Errors()
		}
		return []error{err}
	}
	return s.Validate(topology)
}
