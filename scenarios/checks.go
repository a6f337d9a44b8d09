package scenarios

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// CheckSpec is the type-specific part of a check: what it measures and its threshold.
// A kind is its spec type, registered by name (RegisterCheck); what else it does are
// optional capabilities of the same type: Placed, AutoNamed, Templated and MetricReader
// here, and checks.Evaluable, checks.Abortable and checks.Live, which judge a run. This
// package only decodes and validates, so a scenario can be checked without anything able
// to start it.
type CheckSpec interface {
	// Validate reports every problem with the spec's own fields. Messages start with the
	// offending YAML key so the problem can be placed on its line.
	Validate() []error
}

// Placement is where a check sits in a scenario and what the scenario around it
// declares, for a kind's phase rules (see Placed).
type Placement struct {
	// Phase is the section the check sits in: one of the Place constants.
	Phase string
	// Faults are the names of the timeline's faults.
	Faults []string
	// Journeys are the journeys and declared load targets a filter may name.
	Journeys []string
	// Custom is set when the scenario runs a user's topology, not the reference system.
	Custom bool
}

// Sections a check can sit in (Placement.Phase).
const (
	PlaceSteady  = "steady_state"
	PlaceBefore  = "before"
	PlaceDuring  = "during"
	PlaceAfter   = "after"
	PlaceOverall = "overall"
	PlaceAbort   = "abort_when"
)

// Placed is the optional capability of a kind with phase rules: one measured from a
// fault's injection belongs under expect.during, one naming a journey needs a journey the
// load runs. Like Validate's, each message starts with the offending YAML key when there
// is one, so the problem is placed on its line.
type Placed interface {
	CheckPlacement(at Placement) []error
}

// AutoNamed is the optional capability of a kind that names an unnamed check after its
// filters ("latency_p99/browse"); without it the check is named after its kind.
type AutoNamed interface {
	AutoName() string
}

// Templated is the optional capability of a kind with fields a custom topology's
// templates ({{.Addr "web" "http"}}) are rendered in before it runs. RenderTemplates
// returns a copy with each such field replaced by render(field, value); field is its
// YAML key, with an index for a list item ("run.1").
type Templated interface {
	RenderTemplates(render func(field, value string) string) CheckSpec
}

// MetricReader is the optional capability of a kind that reads metrics, by name, so that
// a scraper of a custom topology and a run's stop conditions keep those samples.
type MetricReader interface {
	MetricNames() []string
}

// MetricNames lists, sorted and once each, the metrics the scenario's checks read (in
// every phase), so that a scraper keeps exactly those in the run's history.
func (s *Scenario) MetricNames() []string {
	var out []string
	for _, c := range s.allChecks() {
		if m, ok := c.Spec.(MetricReader); ok {
			out = append(out, m.MetricNames()...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Settler is the optional capability of a kind that may keep a run going after its load
// while the system settles (a convergence bound); a suite's shard plan counts that time.
type Settler interface {
	SettleBound() time.Duration
}

// Hint returns an error whose message validation reports with hint, the way built-in
// kinds suggest a fix ("did you mean ...").
func Hint(h, format string, args ...any) error { return hint(h, format, args...) }

// Check kinds.
const (
	CheckErrorRate      = "error_rate"
	CheckLatency        = "latency"
	CheckBreakerOpened  = "breaker_opened"
	CheckBreakerClosed  = "breaker_closed"
	CheckFallbackServed = "fallback_served"
	CheckFailover       = "failover"
	CheckFaultLanded    = "fault_landed"
	CheckThroughput     = "throughput"
	CheckHTTPProbe      = "http_probe"
	CheckMetric         = "metric"
	CheckCommand        = "command"
)

var checkRegistry = struct {
	sync.RWMutex
	m map[string]func() CheckSpec
}{m: map[string]func() CheckSpec{
	CheckErrorRate:      func() CheckSpec { return &ErrorRateCheck{} },
	CheckLatency:        func() CheckSpec { return &LatencyCheck{} },
	CheckBreakerOpened:  func() CheckSpec { return &BreakerOpenedCheck{} },
	CheckBreakerClosed:  func() CheckSpec { return &BreakerClosedCheck{} },
	CheckFallbackServed: func() CheckSpec { return &FallbackServedCheck{} },
	CheckFailover:       func() CheckSpec { return &FailoverCheck{} },
	CheckFaultLanded:    func() CheckSpec { return &FaultLandedCheck{} },
	CheckThroughput:     func() CheckSpec { return &ThroughputCheck{} },
	CheckHTTPProbe:      func() CheckSpec { return &HTTPProbeCheck{} },
	CheckMetric:         func() CheckSpec { return &MetricCheck{} },
	CheckCommand:        func() CheckSpec { return &CommandCheck{} },
}}

// RegisterCheck adds a check kind, so that a program embedding the harness can check
// something specific to its own services. newSpec must return a pointer to a struct.
func RegisterCheck(kind string, newSpec func() CheckSpec) error {
	if kind == "" || newSpec == nil {
		return errors.New("register check: kind and constructor are required")
	}
	checkRegistry.Lock()
	defer checkRegistry.Unlock()
	if _, dup := checkRegistry.m[kind]; dup {
		return fmt.Errorf("register check: kind %q is already registered", kind)
	}
	checkRegistry.m[kind] = newSpec
	return nil
}

// CheckKinds lists the registered check kinds, sorted.
func CheckKinds() []string {
	checkRegistry.RLock()
	defer checkRegistry.RUnlock()
	out := make([]string, 0, len(checkRegistry.m))
	for k := range checkRegistry.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// NewCheck returns an empty spec of kind, ready to be decoded into.
func NewCheck(kind string) (CheckSpec, error) {
	checkRegistry.RLock()
	f, ok := checkRegistry.m[kind]
	checkRegistry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("new check: unknown kind %q", kind)
	}
	return f(), nil
}

// KindOf returns the kind spec's type is registered under, "" for none, so that a program
// building checks in Go rather than YAML need not restate it. A type registered under
// several kinds gives the first of them in sorted order.
func KindOf(spec CheckSpec) string {
	if spec == nil {
		return ""
	}
	t := reflect.TypeOf(spec)
	for _, k := range CheckKinds() {
		if f, err := NewCheck(k); err == nil && reflect.TypeOf(f) == t {
			return k
		}
	}
	return ""
}

// Percentiles a latency check can name.
var Percentiles = []string{"p50", "p90", "p95", "p99"}

// Journeys are the built-in user journeys of the reference system's load.
var Journeys = []string{"browse", "view_order", "place_order", "retry_order"}

// ErrorRateCheck bounds the share of failed requests (transport errors, 5xx and timeouts)
// in its phase, over all traffic or one journey or gateway route.
type ErrorRateCheck struct {
	Max     Fraction `yaml:"max" json:"max" doc:"highest acceptable share of failed requests, 0.05 or \"5%\"" required:"true"`
	Journey string   `yaml:"journey,omitempty" json:"journey,omitempty" doc:"only requests of this journey or declared target"`
	Route   string   `yaml:"route,omitempty" json:"route,omitempty" doc:"only requests to this gateway route, such as \"GET /orders/{id}\""`
}

// Validate checks the threshold.
func (c *ErrorRateCheck) Validate() []error {
	if c.Journey != "" && c.Route != "" {
		return []error{errors.New("route and journey cannot both be set; pick one filter")}
	}
	return nil
}

// LatencyCheck bounds a latency percentile of the requests of its phase. A failed or
// timed-out request counts with its time to failure, since that is what its client waited:
// leaving it out would let a fault that turns slow answers into timeouts pass a latency
// bound. SuccessfulOnly restricts the percentile to the requests that succeeded.
type LatencyCheck struct {
	Percentile     string   `yaml:"percentile" json:"percentile" doc:"which percentile" enum:"p50,p90,p95,p99" required:"true"`
	Max            Duration `yaml:"max" json:"max" doc:"highest acceptable value of that percentile" required:"true"`
	Journey        string   `yaml:"journey,omitempty" json:"journey,omitempty" doc:"only requests of this journey or declared target"`
	Route          string   `yaml:"route,omitempty" json:"route,omitempty" doc:"only requests to this gateway route"`
	SuccessfulOnly bool     `yaml:"successful_only,omitempty" json:"successful_only,omitempty" doc:"time only the requests that succeeded; by default a failed or timed-out request counts with its time to failure"`
}

// Validate checks the percentile name and threshold.
func (c *LatencyCheck) Validate() []error {
	var errs []error
	if !contains(Percentiles, c.Percentile) {
		errs = append(errs, hint(choiceHint(c.Percentile, Percentiles), "percentile %q is not a known percentile", c.Percentile))
	}
	if c.Max <= 0 {
		errs = append(errs, errors.New("max must be a positive duration"))
	}
	if c.Journey != "" && c.Route != "" {
		errs = append(errs, errors.New("route and journey cannot both be set; pick one filter"))
	}
	return errs
}

// DefaultBreakerGrace is how long after a fault's heal an opening of a breaker still
// counts as the fault's when the check does not say (see BreakerOpenedCheck.Grace).
const DefaultBreakerGrace = Duration(time.Second)

// BreakerOpenedCheck asserts that the caller's breaker towards dependency opened within
// Within of the phase's fault being injected (faultline_breaker_state reaching 2), while
// the fault was active. The breaker is sampled, so an opening first seen after the heal
// still counts when it may have happened before it (no sample after the heal showed the
// breaker not open before the open one) and was seen at most Grace after the heal.
type BreakerOpenedCheck struct {
	Caller     string   `yaml:"caller" json:"caller" doc:"service whose breaker it is, such as gateway" required:"true"`
	Dependency string   `yaml:"dependency" json:"dependency" doc:"service the breaker protects calls to" required:"true"`
	Within     Duration `yaml:"within" json:"within" doc:"how soon after injection it must open" required:"true"`
	Grace      Duration `yaml:"grace,omitempty" json:"grace,omitempty" doc:"how late after the fault's heal an opening may be sampled and still count as the fault's, when no sample after the heal showed it closed first; default 1s"`
}

// Validate checks the names and window.
func (c *BreakerOpenedCheck) Validate() []error {
	errs := breakerErrs(c.Caller, c.Dependency, c.Within)
	if c.Grace < 0 {
		errs = append(errs, errors.New("grace must not be negative"))
	}
	return errs
}

// GraceOrDefault is the grace the check applies: Grace, or DefaultBreakerGrace.
func (c *BreakerOpenedCheck) GraceOrDefault() Duration {
	if c.Grace > 0 {
		return c.Grace
	}
	return DefaultBreakerGrace
}

// Targets names the components the check observes, so they are checked against the topology.
func (c *BreakerOpenedCheck) Targets() []string { return nonEmpty(c.Caller, c.Dependency) }

// BreakerClosedCheck asserts that the breaker closed again within Within of the fault
// being healed, proving the system recovers on its own. A breaker that never left the
// closed state during the fault proves no recovery, so the check fails unless
// MayNotOpen says that is acceptable.
type BreakerClosedCheck struct {
	Caller     string   `yaml:"caller" json:"caller" doc:"service whose breaker it is" required:"true"`
	Dependency string   `yaml:"dependency" json:"dependency" doc:"service the breaker protects calls to" required:"true"`
	Within     Duration `yaml:"within" json:"within" doc:"how soon after heal it must close" required:"true"`
	MayNotOpen bool     `yaml:"may_not_open,omitempty" json:"may_not_open,omitempty" doc:"pass when the breaker never opened (by default a breaker that never opened fails: there was nothing to recover from)"`
}

// Validate checks the names and window.
func (c *BreakerClosedCheck) Validate() []error { return breakerErrs(c.Caller, c.Dependency, c.Within) }

// Targets names the components the check observes.
func (c *BreakerClosedCheck) Targets() []string { return nonEmpty(c.Caller, c.Dependency) }

func breakerErrs(caller, dep string, within Duration) []error {
	var errs []error
	if caller == "" {
		errs = append(errs, errors.New("caller is required"))
	}
	if dep == "" {
		errs = append(errs, errors.New("dependency is required"))
	}
	if caller != "" && caller == dep {
		errs = append(errs, errors.New("dependency must differ from caller"))
	}
	if within <= 0 {
		errs = append(errs, errors.New("within must be a positive duration"))
	}
	return errs
}

// FallbackServedCheck asserts that fallbacks answered at least Min requests in its phase
// (faultline_policy_events_total{event="fallback"}), showing degradation instead of errors.
type FallbackServedCheck struct {
	Caller     string `yaml:"caller,omitempty" json:"caller,omitempty" doc:"only this caller's fallbacks"`
	Dependency string `yaml:"dependency,omitempty" json:"dependency,omitempty" doc:"only fallbacks for this dependency"`
	Min        int    `yaml:"min" json:"min" doc:"fewest fallback answers that pass" required:"true" minimum:"1"`
}

// Validate checks the count.
func (c *FallbackServedCheck) Validate() []error {
	if c.Min < 1 {
		return []error{errors.New("min must be at least 1")}
	}
	return nil
}

// Targets names the components the check observes.
func (c *FallbackServedCheck) Targets() []string { return nonEmpty(c.Caller, c.Dependency) }

// FailoverCheck bounds the client-visible error window after an instance is lost and, if
// asked, requires that the lost instance's lease was seen expiring in the registry.
type FailoverCheck struct {
	Service             string   `yaml:"service,omitempty" json:"service,omitempty" doc:"service that lost an instance; defaults to the fault's target"`
	MaxErrorWindow      Duration `yaml:"max_error_window" json:"max_error_window" doc:"longest stretch of client-visible errors" required:"true"`
	LeaseExpiryObserved bool     `yaml:"lease_expiry_observed,omitempty" json:"lease_expiry_observed,omitempty" doc:"require the instance's registry key to disappear"`
}

// Validate checks the window.
func (c *FailoverCheck) Validate() []error {
	if c.MaxErrorWindow <= 0 {
		return []error{errors.New("max_error_window must be a positive duration")}
	}
	return nil
}

// Targets names the components the check observes.
func (c *FailoverCheck) Targets() []string { return nonEmpty(c.Service) }

// FaultLandedCheck asserts that a fault's measured effect matched its configuration
// within the fault's own tolerance, or within Tolerance when that is tighter; a fault
// that did not land makes the run invalid, not passed.
type FaultLandedCheck struct {
	Fault     string   `yaml:"fault,omitempty" json:"fault,omitempty" doc:"fault name; defaults to the during phase it sits in"`
	Tolerance Fraction `yaml:"tolerance,omitempty" json:"tolerance,omitempty" doc:"accepted relative deviation of the measured effect; by default the fault's own tolerance, which its measured effect states (a tolerance here can only tighten it)"`
}

// Validate has nothing to check alone; the fault name is checked against the timeline.
func (c *FaultLandedCheck) Validate() []error { return nil }

// ThroughputCheck requires that completed requests reached Min of the planned rate, so a
// harness that could not generate its load does not pass silently.
type ThroughputCheck struct {
	Min Fraction `yaml:"min" json:"min" doc:"smallest share of the planned rate, 0.9 or \"90%\"" required:"true"`
}

// Validate checks the share.
func (c *ThroughputCheck) Validate() []error {
	if c.Min <= 0 {
		return []error{errors.New("min must be above 0")}
	}
	return nil
}

// HTTPProbeCheck calls an HTTP endpoint (a path on the gateway, or a loopback URL) and
// checks its status.
type HTTPProbeCheck struct {
	URL          string   `yaml:"url" json:"url" doc:"path on the gateway (/products) or absolute http URL" required:"true"`
	Method       string   `yaml:"method,omitempty" json:"method,omitempty" doc:"HTTP method, default GET" enum:"GET,HEAD,POST,PUT,PATCH,DELETE"`
	Status       int      `yaml:"status,omitempty" json:"status,omitempty" doc:"expected status, default 200"`
	BodyContains string   `yaml:"body_contains,omitempty" json:"body_contains,omitempty" doc:"text the body must contain"`
	Timeout      Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"default 2s"`
}

// Validate checks the URL, method and status.
func (c *HTTPProbeCheck) Validate() []error {
	var errs []error
	if err := checkURL(c.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Method != "" && !contains(httpMethods, c.Method) {
		errs = append(errs, hint(choiceHint(c.Method, httpMethods), "method %q is not a known HTTP method", c.Method))
	}
	if c.Status != 0 && (c.Status < 100 || c.Status > 599) {
		errs = append(errs, fmt.Errorf("status %d is not an HTTP status", c.Status))
	}
	return errs
}

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

func checkURL(s string) error {
	if s == "" {
		return errors.New("url is required")
	}
	if strings.HasPrefix(s, "/") {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is neither a path starting with / nor an http(s) URL", s)
	}
	return nil
}

// Comparison operators of a metric check.
var metricOps = []string{"<", "<=", "==", "!=", ">=", ">"}

// Reductions of a metric's samples over the phase.
var metricReduce = []string{"last", "min", "max", "all", "any"}

// MetricCheck compares a Prometheus metric scraped from a component during its phase.
type MetricCheck struct {
	Component string            `yaml:"component" json:"component" doc:"service (all instances) or instance to scrape" required:"true"`
	Metric    string            `yaml:"metric" json:"metric" doc:"metric name, such as faultline_outbox_backlog" required:"true"`
	Labels    map[string]string `yaml:"labels,omitempty" json:"labels,omitempty" doc:"label values the series must have"`
	Op        string            `yaml:"op" json:"op" doc:"comparison" enum:"<,<=,==,!=,>=,>" required:"true"`
	Value     *float64          `yaml:"value" json:"value" doc:"right-hand side of the comparison" required:"true"`
	Reduce    string            `yaml:"reduce,omitempty" json:"reduce,omitempty" doc:"which samples must satisfy it: last (default), min, max, all, any" enum:"last,min,max,all,any"`
}

// Validate checks the operator, name and value.
func (c *MetricCheck) Validate() []error {
	var errs []error
	if c.Component == "" {
		errs = append(errs, errors.New("component is required"))
	}
	if c.Metric == "" {
		errs = append(errs, errors.New("metric is required"))
	} else if !validMetricName(c.Metric) {
		errs = append(errs, fmt.Errorf("metric %q is not a Prometheus metric name", c.Metric))
	}
	if !contains(metricOps, c.Op) {
		errs = append(errs, hint("want one of "+strings.Join(metricOps, " "), "op %q is not a comparison", c.Op))
	}
	if c.Value == nil {
		errs = append(errs, errors.New("value is required"))
	}
	if c.Reduce != "" && !contains(metricReduce, c.Reduce) {
		errs = append(errs, hint(choiceHint(c.Reduce, metricReduce), "reduce %q is not a known reduction", c.Reduce))
	}
	return errs
}

// Targets names the component the check scrapes.
func (c *MetricCheck) Targets() []string { return nonEmpty(c.Component) }

func validMetricName(s string) bool {
	for i, r := range s {
		ok := r == '_' || r == ':' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return s != ""
}

// CommandCheck runs a command (argv, no shell unless you name one) and checks its exit
// code, so a scenario can assert something only the system's owner knows how to test.
type CommandCheck struct {
	Run      []string `yaml:"run" json:"run" doc:"argv of the command" required:"true"`
	ExitCode int      `yaml:"exit_code,omitempty" json:"exit_code,omitempty" doc:"expected exit code, default 0"`
	Timeout  Duration `yaml:"timeout,omitempty" json:"timeout,omitempty" doc:"default 10s"`
}

// Validate checks the command line.
func (c *CommandCheck) Validate() []error {
	var errs []error
	if len(c.Run) == 0 || c.Run[0] == "" {
		errs = append(errs, errors.New("run needs at least the program name"))
	}
	if c.ExitCode < 0 || c.ExitCode > 255 {
		errs = append(errs, fmt.Errorf("exit_code %d is outside 0..255", c.ExitCode))
	}
	return errs
}

var (
	_ CheckSpec = (*ErrorRateCheck)(nil)
	_ CheckSpec = (*LatencyCheck)(nil)
	_ CheckSpec = (*BreakerOpenedCheck)(nil)
	_ CheckSpec = (*BreakerClosedCheck)(nil)
	_ CheckSpec = (*FallbackServedCheck)(nil)
	_ CheckSpec = (*FailoverCheck)(nil)
	_ CheckSpec = (*FaultLandedCheck)(nil)
	_ CheckSpec = (*ThroughputCheck)(nil)
	_ CheckSpec = (*HTTPProbeCheck)(nil)
	_ CheckSpec = (*MetricCheck)(nil)
	_ CheckSpec = (*CommandCheck)(nil)
	_ targeted  = (*MetricCheck)(nil)
)

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// --- phase rules, names and templates of the built-in kinds ---

// journeyErrs reports a journey filter that names neither a journey nor a declared target.
func journeyErrs(j string, at Placement) []error {
	if j == "" || contains(at.Journeys, j) {
		return nil
	}
	return []error{hint(choiceHint(j, at.Journeys), "journey %q is neither a journey nor a declared target", j)}
}

// CheckPlacement checks the journey filter.
func (c *ErrorRateCheck) CheckPlacement(at Placement) []error { return journeyErrs(c.Journey, at) }

// AutoName names the check after its filter.
func (c *ErrorRateCheck) AutoName() string { return autoName(CheckErrorRate, c.Journey, c.Route) }

// CheckPlacement checks the journey filter.
func (c *LatencyCheck) CheckPlacement(at Placement) []error { return journeyErrs(c.Journey, at) }

// AutoName names the check after its percentile and filter.
func (c *LatencyCheck) AutoName() string {
	return autoName(CheckLatency+"_"+c.Percentile, c.Journey, c.Route)
}

// CheckPlacement keeps the check under expect.during (it is measured from an injection)
// and to the reference system, whose breakers it reads.
func (c *BreakerOpenedCheck) CheckPlacement(at Placement) []error {
	errs := referenceOnly(CheckBreakerOpened, at)
	if at.Phase != PlaceDuring {
		errs = append(errs, hint("put it under expect.during.<fault name>", "breaker_opened is measured from a fault's injection, so it belongs in expect.during"))
	}
	return errs
}

// referenceOnly refuses, in a custom topology, a kind that reads the reference system's
// own metrics or state.
func referenceOnly(kind string, at Placement) []error {
	if !at.Custom {
		return nil
	}
	return []error{hint("it reads the reference system's own metrics or state; use error_rate, latency, metric, http_probe or command",
		"%s applies only to the reference system, not to a custom topology", kind)}
}

// AutoName names the check after its edge.
func (c *BreakerOpenedCheck) AutoName() string {
	return autoName(CheckBreakerOpened, c.Caller+"->"+c.Dependency)
}

// CheckPlacement keeps the check where a heal happens, expect.during or expect.after,
// and to the reference system, whose breakers it reads.
func (c *BreakerClosedCheck) CheckPlacement(at Placement) []error {
	errs := referenceOnly(CheckBreakerClosed, at)
	if at.Phase != PlaceDuring && at.Phase != PlaceAfter {
		errs = append(errs, hint("put it under expect.during.<fault name> or expect.after", "breaker_closed is measured from a heal, so it belongs in expect.during or expect.after"))
	}
	return errs
}

// CheckPlacement keeps the check to the reference system, whose fallbacks it reads.
func (c *FallbackServedCheck) CheckPlacement(at Placement) []error {
	return referenceOnly(CheckFallbackServed, at)
}

// AutoName names the check after its edge.
func (c *BreakerClosedCheck) AutoName() string {
	return autoName(CheckBreakerClosed, c.Caller+"->"+c.Dependency)
}

// AutoName names the check after its edge, when it has one.
func (c *FallbackServedCheck) AutoName() string {
	if c.Caller == "" && c.Dependency == "" {
		return CheckFallbackServed
	}
	return autoName(CheckFallbackServed, c.Caller+"->"+c.Dependency)
}

// CheckPlacement keeps the check under expect.during (it is measured from a loss), and
// lease_expiry_observed to the reference system, which has the registry.
func (c *FailoverCheck) CheckPlacement(at Placement) []error {
	var errs []error
	if at.Custom && c.LeaseExpiryObserved {
		errs = append(errs, hint("a custom topology has no registry; remove it", "lease_expiry_observed applies only to the reference system"))
	}
	if at.Phase != PlaceDuring {
		errs = append(errs, hint("put it under expect.during.<fault name> of the crash", "failover is measured from an instance's loss, so it belongs in expect.during"))
	}
	return errs
}

// AutoName names the check after its service.
func (c *FailoverCheck) AutoName() string { return autoName(CheckFailover, c.Service) }

// CheckPlacement needs a fault: named, or the during phase's; a named one must exist.
func (c *FaultLandedCheck) CheckPlacement(at Placement) []error {
	switch {
	case c.Fault == "" && at.Phase != PlaceDuring:
		return []error{hint("name the fault with fault: <name>, or put the check under expect.during.<fault name>", "fault_landed outside expect.during needs a fault")}
	case c.Fault != "" && !contains(at.Faults, c.Fault):
		return []error{hint(choiceHint(c.Fault, at.Faults), "fault %q is not in the timeline", c.Fault)}
	}
	return nil
}

// AutoName names the check after its fault.
func (c *FaultLandedCheck) AutoName() string { return autoName(CheckFaultLanded, c.Fault) }

// MetricNames names the metric the check reads.
func (c *MetricCheck) MetricNames() []string { return nonEmpty(c.Metric) }

// AutoName names the check after its component and series.
func (c *MetricCheck) AutoName() string {
	return autoName(CheckMetric, c.Component, c.Metric+labelString(c.Labels))
}

// AutoName names the check after its request.
func (c *HTTPProbeCheck) AutoName() string {
	method := c.Method
	if method == "" {
		method = "GET"
	}
	return autoName(CheckHTTPProbe, method+" "+c.URL)
}

// CheckPlacement refuses a path with a custom topology, which has no gateway to resolve
// it against.
func (c *HTTPProbeCheck) CheckPlacement(at Placement) []error {
	if at.Custom && strings.HasPrefix(c.URL, "/") {
		return []error{hint(`write http://{{.Addr "web" "http"}}`+c.URL, "url %q is a path, but a custom topology has no gateway to resolve it against", c.URL)}
	}
	return nil
}

// RenderTemplates renders the URL.
func (c *HTTPProbeCheck) RenderTemplates(render func(field, value string) string) CheckSpec {
	x := *c
	x.URL = render("url", c.URL)
	return &x
}

// AutoName names the check after its program.
func (c *CommandCheck) AutoName() string {
	if len(c.Run) == 0 {
		return CheckCommand
	}
	return autoName(CheckCommand, c.Run[0])
}

// RenderTemplates renders every argument.
func (c *CommandCheck) RenderTemplates(render func(field, value string) string) CheckSpec {
	x := *c
	x.Run = make([]string, len(c.Run))
	for i, a := range c.Run {
		x.Run[i] = render(fmt.Sprintf("run.%d", i), a)
	}
	return &x
}

// autoName joins a kind and its non-empty filters with "/".
func autoName(kind string, filters ...string) string {
	return strings.Join(append([]string{kind}, nonEmpty(filters...)...), "/")
}

// labelString writes labels as {k=v,...}, sorted, or "" for none.
func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([]string, 0, len(keys))
	for _, k := range keys {
		kv = append(kv, k+"="+labels[k])
	}
	return "{" + strings.Join(kv, ",") + "}"
}
