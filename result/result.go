// Package result is the record of one scenario run that the harness writes (result.json)
// and that reports, CI and comparisons read: the verdict with its reason, every check with
// its measured figure and threshold, every fault with its measured effect, the load that
// was actually delivered, and where the full history lives. It holds summaries only; the
// per-request detail stays in the history file and is streamed from there.
package result

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Version is the result format's version; readers refuse a newer major version.
const Version = 1

// Verdict is the outcome of a run.
type Verdict string

// Verdicts. A run that cannot show what it claims is invalid, never passed.
const (
	Passed  Verdict = "passed"  // every check held (or an expected failure happened as stated)
	Failed  Verdict = "failed"  // a check failed (or an expected failure did not happen)
	Invalid Verdict = "invalid" // the fault never landed, the load never reached its rate, the steady state did not hold before the fault
	Aborted Verdict = "aborted" // a stop condition fired; the run healed at once
	Error   Verdict = "error"   // the harness could not run the scenario
)

// Exit codes of the faultline command, one per verdict; CI gates on them. They are defined
// here only: the command maps a run's verdict through ExitCode and every other failure
// (a usage error, a harness error) to ExitError.
const (
	ExitPassed  = 0 // the run passed / the command succeeded
	ExitFailed  = 1 // a check failed
	ExitInvalid = 2 // the run could not show what it claims
	ExitError   = 3 // the harness could not run the scenario; a usage error
	ExitAborted = 4 // a stop condition fired
)

// ExitCode is what `faultline run` returns for a verdict; CI gates on it.
func (v Verdict) ExitCode() int {
	switch v {
	case Passed:
		return ExitPassed
	case Failed:
		return ExitFailed
	case Invalid:
		return ExitInvalid
	case Aborted:
		return ExitAborted
	default:
		return ExitError
	}
}

// Worst returns the verdict a suite reports for a set of runs: error over aborted over
// invalid over failed over passed.
func Worst(vs ...Verdict) Verdict {
	rank := map[Verdict]int{Passed: 0, Failed: 1, Invalid: 2, Aborted: 3, Error: 4}
	w := Passed
	for _, v := range vs {
		r, ok := rank[v]
		if !ok {
			r = rank[Error]
			v = Error
		}
		if r > rank[w] {
			w = v
		}
	}
	return w
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string.
type Duration time.Duration

// MarshalJSON writes "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Run is one scenario run.
type Run struct {
	Version     int    `json:"version"`
	Scenario    string `json:"scenario"`
	File        string `json:"file,omitempty"`
	Description string `json:"description,omitempty"`
	Design      string `json:"design,omitempty"` // design name (or file) the system ran
	Runtime     string `json:"runtime"`          // local | docker
	// RunID is the id the run's undo record and, on Docker, its containers, network and
	// volumes are labelled with.
	RunID     string    `json:"run_id,omitempty"`
	Seed      int64     `json:"seed"`
	StartedAt time.Time `json:"started_at"`
	Duration  Duration  `json:"duration"`
	RunDir    string    `json:"run_dir,omitempty"`
	History   string    `json:"history,omitempty"` // path of the history file, relative to RunDir when inside it

	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason,omitempty"` // one line: why the verdict (the first failed check, the fault that did not land, the error)
	Hint    string  `json:"hint,omitempty"`   // what to do about it

	// ExpectedFailure is set for a scenario that demonstrates a weak design.
	ExpectedFailure *ExpectedFailure `json:"expected_failure,omitempty"`

	// LoadStart is when the load began on the run's clock (the clock of Phases, of the
	// faults' Injected and Healed, and of the history's T). A scenario's times count from
	// load start, so reports subtract it from every time they show.
	LoadStart Duration `json:"load_start,omitempty"`

	Phases   []Phase     `json:"phases,omitempty"`
	Faults   []Fault     `json:"faults,omitempty"`
	Checks   []Check     `json:"checks,omitempty"`
	Load     Load        `json:"load"`
	Topology []Component `json:"topology,omitempty"`
	Links    []Link      `json:"links,omitempty"`
}

// ExpectedFailure records whether a weak design failed the way the scenario says it must.
type ExpectedFailure struct {
	Check    string `json:"check"`    // name of the check that must fail
	Reason   string `json:"reason"`   // why it must fail (the teaching point)
	Observed bool   `json:"observed"` // the check did fail
	// Results names the run's results that belong to Check: itself, the sub-results of a
	// check that reports one per property ("inventory/settled"), its steady-state windows.
	// The verdict's rule decides it once (checks.Decide); every report marks these.
	Results []string `json:"results,omitempty"`
}

// Phase is a named span of the run on the run's clock.
type Phase struct {
	Name  string   `json:"name"` // before | during:<fault> | after
	Start Duration `json:"start"`
	End   Duration `json:"end"`
}

// Fault is one fault of the timeline with what it really did.
type Fault struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Targets   []string `json:"targets,omitempty"`
	At        Duration `json:"at"`
	For       Duration `json:"for"`
	Injected  Duration `json:"injected"`         // when inject returned
	Healed    Duration `json:"healed,omitempty"` // when heal returned (0: never healed, which a verdict must explain)
	Effect    *Effect  `json:"effect,omitempty"`
	HealError string   `json:"heal_error,omitempty"`
	// Traffic is what crossed the fault's links while it was in place, counted by their
	// proxies; nil for faults that act on no link's proxy (process faults, links held down).
	Traffic *Traffic `json:"traffic,omitempty"`
}

// Traffic is what crossed a fault's links during its window, as their proxies counted it.
type Traffic struct {
	Links []string `json:"links"`
	// Connections is how many connections carried bytes from the callers towards the
	// callees, the harness's own probes excluded; 0 means no request of the load crossed.
	Connections int   `json:"connections"`
	Bytes       int64 `json:"bytes"`  // every byte towards the callees, probes included
	Probes      int   `json:"probes"` // the harness's probes that crossed
}

// Effect is a fault's measured effect against its configured one.
type Effect struct {
	Configured float64 `json:"configured"`
	Measured   float64 `json:"measured"`
	Unit       string  `json:"unit"`
	// Tolerance is how far Measured may lie from Configured, in Unit, for the fault to
	// have landed: the one tolerance every output states. Zero when landing is a count
	// that must match or an outcome.
	Tolerance float64 `json:"tolerance,omitempty"`
	Landed    bool    `json:"landed"`
	Detail    string  `json:"detail,omitempty"`
}

// Check is one evaluated check.
type Check struct {
	Name    string `json:"name"`    // unique within the run, e.g. "during:slow-product/latency p99"
	Kind    string `json:"kind"`    // error_rate, latency, breaker_opened, consistency, ...
	Phase   string `json:"phase"`   // before | during:<fault> | after | overall | steady_state
	Passed  bool   `json:"passed"`  //
	Skipped bool   `json:"skipped"` // could not be evaluated (no data); counts as not passed
	// Never reports that the moment the check waits for (a breaker opening or closing,
	// convergence, a lease expiring) was never observed: Figure is then no measurement,
	// and a report says "never observed" rather than printing it.
	Never     bool    `json:"never,omitempty"`
	Figure    float64 `json:"figure"`         // the measured value
	Op        string  `json:"op"`             // <=, >=, ==
	Threshold float64 `json:"threshold"`      // the bound the figure was held to
	Unit      string  `json:"unit,omitempty"` // ms, ratio, count, s
	Message   string  `json:"message"`        // a sentence a person reads: figure, bound, and what it means
	Detail    string  `json:"detail,omitempty"`
}

// Load is what the load generator delivered, overall and per journey.
type Load struct {
	PlannedRate  float64            `json:"planned_rate"`  // requests/s
	AchievedRate float64            `json:"achieved_rate"` // requests/s
	Requests     int64              `json:"requests"`
	Errors       int64              `json:"errors"`
	Journeys     map[string]Journey `json:"journeys,omitempty"`
}

// Journey is one journey's totals.
type Journey struct {
	Requests int64    `json:"requests"`
	Errors   int64    `json:"errors"`
	P50      Duration `json:"p50"`
	P95      Duration `json:"p95"`
	P99      Duration `json:"p99"`
}

// Component is one process of the system under test.
type Component struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Service string `json:"service"`
}

// Link is one caller → callee edge the harness can fault.
type Link struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// FailedChecks returns the checks that did not pass, skipped ones included.
func (r *Run) FailedChecks() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Passed {
			out = append(out, c)
		}
	}
	return out
}

// MaxResultSize bounds what Read accepts: a result is a summary, never megabytes.
const MaxResultSize = 32 << 20

// Write encodes r as indented JSON.
func (r *Run) Write(w io.Writer) error {
	if r.Version == 0 {
		r.Version = Version
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	return nil
}

// Save writes r to path atomically (write then rename), so a reader never sees half a file.
func (r *Run) Save(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create result: %w", err)
	}
	if err := r.Write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close result: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename result: %w", err)
	}
	return nil
}

// Read decodes and validates a result, refusing unknown fields, oversized input and a
// newer format version with a clear message.
func Read(rd io.Reader) (*Run, error) {
	dec := json.NewDecoder(io.LimitReader(rd, MaxResultSize+1))
	dec.DisallowUnknownFields()
	var r Run
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	if dec.InputOffset() > MaxResultSize {
		return nil, fmt.Errorf("decode result: larger than %d bytes", MaxResultSize)
	}
	if errs := r.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("validate result: %w", errors.Join(errs...))
	}
	return &r, nil
}

// LoadFile reads a result file.
func LoadFile(path string) (*Run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open result: %w", err)
	}
	defer f.Close()
	r, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Validate reports every problem with r at once.
func (r *Run) Validate() []error {
	var errs []error
	if r.Version < 1 || r.Version > Version {
		errs = append(errs, fmt.Errorf("version %d is not supported (this faultline reads version %d)", r.Version, Version))
	}
	if r.Scenario == "" {
		errs = append(errs, errors.New("scenario is empty"))
	}
	switch r.Verdict {
	case Passed, Failed, Invalid, Aborted, Error:
	default:
		errs = append(errs, fmt.Errorf("verdict %q is unknown", r.Verdict))
	}
	seen := map[string]bool{}
	for i, c := range r.Checks {
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("checks[%d]: name is empty", i))
		}
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("checks[%d]: name %q is repeated", i, c.Name))
		}
		seen[c.Name] = true
	}
	for i, p := range r.Phases {
		if p.End < p.Start {
			errs = append(errs, fmt.Errorf("phases[%d] %q ends before it starts", i, p.Name))
		}
	}
	return errs
}

// DesignRuns is one design's repeated runs of the same scenario (same seed, same load, same
// fault schedule), with their histories for the charts: what a design comparison produces
// and its reports render.
type DesignRuns struct {
	Design    string
	Runs      []*Run   // repeats
	Histories []string // one per repeat; may be empty for a table-only comparison
}
