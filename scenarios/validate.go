package scenarios

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bounds of the load section: beyond them a scenario is a mistake on one machine.
const (
	MaxRatePerSecond = 10_000
	MaxLoadDuration  = 30 * time.Minute
	MaxWorkersLimit  = 10_000
	MaxClients       = 10_000
)

var scenarioName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// MaxNameLength bounds scenario and design names: they name run directories (with a
// timestamp in front), and a file system refuses a name of more than 255 bytes at mkdir,
// long after validate said the file was fine.
const MaxNameLength = 64

// checkName reports what is wrong with a name that becomes a directory name; what says
// whose name it is ("name", "compare[1]: name"), example is a good one.
func (v *validation) checkName(p path, what, name, kind, example string) {
	switch {
	case len(name) > MaxNameLength:
		v.add(v.at(p, false), fmt.Sprintf("use at most %d characters, such as %s; it names the run directory", MaxNameLength, example), "%s is %d characters long, more than %d", what, len(name), MaxNameLength)
	case !scenarioName.MatchString(name):
		v.add(v.at(p, false), "use lower-case letters, digits and dashes, such as "+example, "%s %q is not a valid %s name", what, name, kind)
	}
}

// validation collects semantic problems of one scenario.
type validation struct {
	s     *Scenario
	topo  SystemShape
	errs  ErrorList
	names map[string]path // check name -> where it was defined
	// parsed holds the positions Parse already reported: a value that failed to decode is
	// left zero, and "must be above 0" on top of "cannot parse" would only be noise.
	parsed map[Position]bool
}

// Validate reports every problem of s at once, in file order: those Parse found and the
// semantic ones (timeline beyond the load, duplicate names, unknown targets, weights,
// phases naming no fault...). A zero topology means DefaultShape(s.System).
func (s *Scenario) Validate(topology SystemShape) []error {
	if s == nil {
		return []error{errors.New("validate scenario: no scenario")}
	}
	// What the runtime refuses holds whatever the shape of the system turns out to be.
	refused, rt := topology.RefusedFaults, topology.Runtime
	if s.Topology != nil {
		topology = CustomShape(s.Topology)
	}
	if topology.IsZero() {
		topology = DefaultShape(s.System)
		if topology.IsZero() {
			return []error{errors.New("validate scenario: no default system registered and no topology: import the reference package or pass a shape")}
		}
	}
	topology.RefusedFaults, topology.Runtime = refused, cmp.Or(rt, "this runtime")
	v := &validation{s: s, topo: topology, names: map[string]path{}, parsed: map[Position]bool{}}
	v.errs = append(v.errs, s.parseErrs...)
	for _, e := range s.parseErrs {
		v.parsed[e.Position] = true
	}
	if body := lookup(s.root, nil, false); body != nil && body.Kind != yaml.MappingNode {
		return s.parseErrs.Errors()
	}
	v.scenario()
	v.system()
	v.load()
	v.faults()
	v.checks()
	v.expectFailure()
	v.compare()
	v.sweep()
	v.custom()
	return v.errs.sorted().Errors()
}

func (v *validation) at(p path, key bool) *yaml.Node { return lookup(v.s.root, p, key) }

func (v *validation) add(n *yaml.Node, hint, format string, args ...any) {
	pos := Position{}
	if n != nil {
		pos = Position{Line: n.Line, Column: n.Column}
	}
	if v.parsed[pos] {
		return
	}
	v.errs = append(v.errs, &Error{File: v.s.File, Position: pos, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// emptyReported tells whether an empty required value at p is already reported: Parse
// reports a missing key, so only a present-but-empty value is new.
func (v *validation) emptyReported(p path) bool {
	if v.s.root == nil {
		return false
	}
	_, ok := find(v.s.root, p, false)
	return !ok
}

// present tells whether the file has a value at p (which may have failed to decode).
func (v *validation) present(p path) bool {
	_, ok := find(v.s.root, p, false)
	return ok && v.s.root != nil
}

func (v *validation) scenario() {
	s := v.s
	switch {
	case s.Name == "" && !v.emptyReported(path{"name"}):
		v.add(v.at(path{"name"}, false), "name it after what it shows, such as replica-crash", "name is empty")
	case s.Name != "":
		v.checkName(path{"name"}, "name", s.Name, "scenario", "replica-crash")
	}
	if strings.TrimSpace(s.Description) == "" && !v.emptyReported(path{"description"}) {
		v.add(v.at(path{"description"}, false), "say what the scenario teaches and why; workshop teachers read it aloud", "description is empty")
	}
}

func (v *validation) system() {
	sys := v.s.System
	if sys.Runtime != "" && !contains(Runtimes, sys.Runtime) {
		v.add(v.at(path{"system", "runtime"}, false), choiceHint(sys.Runtime, Runtimes), "system.runtime %q is not a runtime", sys.Runtime)
	}
	keys := make([]string, 0, len(sys.Replicas))
	for k := range sys.Replicas {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n := sys.Replicas[k]
		if replicated := replicatedServices(); !contains(replicated, k) {
			h := choiceHint(k, replicated)
			if k == "gateway" || k == "gateways" {
				h = "the gateway count is system.gateways"
			} else if contains(defaultServices(), k) {
				h = k + " always runs as a single instance; replicas are for " + strings.Join(replicated, ", ")
			}
			v.add(v.at(path{"system", "replicas", k}, true), h, "system.replicas: %q is not a replicated service", k)
			continue
		}
		if n < 1 || n > MaxReplicas {
			v.add(v.at(path{"system", "replicas", k}, false), fmt.Sprintf("use 1 to %d", MaxReplicas), "system.replicas.%s: %d replicas is out of range", k, n)
		}
	}
	if sys.Gateways < 0 || sys.Gateways > MaxReplicas {
		v.add(v.at(path{"system", "gateways"}, false), fmt.Sprintf("use 1 to %d", MaxReplicas), "system.gateways: %d gateways is out of range", sys.Gateways)
	}
	if sys.LeaseTTL != 0 && (sys.LeaseTTL.Std() < 100*time.Millisecond || sys.LeaseTTL.Std() > time.Minute) {
		v.add(v.at(path{"system", "lease_ttl"}, false), "use between 100ms and 1m; the default is 2s", "system.lease_ttl %s is out of range", sys.LeaseTTL)
	}
	if d := sys.Design; d.Path != "" && !strings.HasSuffix(d.Path, ".yaml") && !strings.HasSuffix(d.Path, ".yml") {
		v.add(v.at(path{"system", "design"}, false), "designs are YAML files such as designs/resilient.yaml", "system.design %q is not a .yaml file", d.Path)
	}
}

// journeys lists the names mix and checks may use: built-in journeys and declared targets.
func (v *validation) journeys() []string {
	out := append([]string(nil), Journeys...)
	if v.topo.Custom {
		out = nil // the built-in journeys call the reference gateway
	}
	for _, t := range v.s.Load.Targets {
		if t.Name != "" && !contains(out, t.Name) {
			out = append(out, t.Name)
		}
	}
	return out
}

func (v *validation) load() {
	l := v.s.Load
	lp := path{"load"}
	if v.emptyReported(lp) {
		return
	}
	rateLimit := func(r Rate, p path) {
		switch {
		case r.Freq <= 0:
			v.add(v.at(p, false), "a rate of 0 sends nothing; use at least 1/s", "%s must be above 0", p)
		case r.PerSecond() > MaxRatePerSecond:
			v.add(v.at(p, false), fmt.Sprintf("one machine cannot drive more than %d/s", MaxRatePerSecond), "%s %s is above the limit", p, r)
		}
	}
	switch {
	case !l.Rate.IsZero() && len(l.Ramp) > 0:
		v.add(v.at(lp.with("ramp"), true), "keep rate for a constant load, or ramp for steps", "load.rate and load.ramp cannot both be set")
	case l.Rate.IsZero() && len(l.Ramp) == 0 && !v.present(lp.with("rate")) && !v.present(lp.with("ramp")):
		v.add(v.at(lp, false), `add rate: 50/s, or ramp: [{rate: 10/s, for: 5s}, ...]`, "load has neither rate nor ramp")
	case !l.Rate.IsZero():
		rateLimit(l.Rate, lp.with("rate"))
	}
	var rampTotal Duration
	for i, st := range l.Ramp {
		p := lp.with("ramp").with(i)
		rateLimit(st.Rate, p.with("rate"))
		if st.Shape != "" && !contains(RampShapes, st.Shape) {
			v.add(v.at(p.with("shape"), false), choiceHint(st.Shape, RampShapes), "%s %q is not a ramp shape", p.with("shape"), st.Shape)
		}
		if st.For <= 0 && !v.emptyReported(p.with("for")) {
			v.add(v.at(p.with("for"), false), "each step lasts a positive time", "%s must be above 0", p.with("for"))
		}
		rampTotal = addSat(rampTotal, st.For)
	}
	switch {
	case l.Duration <= 0 && !v.emptyReported(lp.with("duration")):
		v.add(v.at(lp.with("duration"), false), "such as 20s", "load.duration must be above 0")
	case l.Duration.Std() > MaxLoadDuration:
		v.add(v.at(lp.with("duration"), false), "split long soaks into several runs", "load.duration %s is above the limit of %s", l.Duration, MaxLoadDuration)
	case len(l.Ramp) > 0 && rampTotal > l.Duration:
		v.add(v.at(lp.with("ramp"), true), fmt.Sprintf("shorten the steps or set load.duration to at least %s", rampTotal), "load.ramp lasts %s, longer than load.duration %s", rampTotal, l.Duration)
	}
	if l.MaxWorkers < 0 || l.MaxWorkers > MaxWorkersLimit {
		v.add(v.at(lp.with("max_workers"), false), fmt.Sprintf("use 1 to %d; the default is 64", MaxWorkersLimit), "load.max_workers %d is out of range", l.MaxWorkers)
	}
	if l.Clients < 0 || l.Clients > MaxClients {
		v.add(v.at(lp.with("clients"), false), fmt.Sprintf("use 1 to %d; the default is 10", MaxClients), "load.clients %d is out of range", l.Clients)
	}
	if l.Timeout.Std() > time.Minute {
		v.add(v.at(lp.with("timeout"), false), "a client timeout above 1m hides failures; the default is 2s", "load.timeout %s is above the limit", l.Timeout)
	}
	targetNames := map[string]int{}
	for i, t := range l.Targets {
		p := lp.with("targets").with(i)
		if prev, dup := targetNames[t.Name]; dup && t.Name != "" {
			v.add(v.at(p.with("name"), false), "give each target its own name", "%s: target name %q is already used by load.targets[%d]", p, t.Name, prev)
		}
		targetNames[t.Name] = i
		if contains(Journeys, t.Name) {
			v.add(v.at(p.with("name"), false), "built-in journeys are "+strings.Join(Journeys, ", "), "%s: target name %q is a built-in journey", p, t.Name)
		}
		if t.URL != "" {
			u, err := v.clientURL(t.URL)
			if err == nil {
				err = checkURL(u)
			}
			if err != nil {
				msg, h := err.Error(), ""
				if hd, ok := err.(*hinted); ok {
					msg, h = hd.msg, hd.hint
				}
				v.add(v.at(p.with("url"), false), h, "%s: %s", p, msg)
			}
		}
		if t.Method != "" && !contains(httpMethods, t.Method) {
			v.add(v.at(p.with("method"), false), choiceHint(t.Method, httpMethods), "%s: method %q is not a known HTTP method", p, t.Method)
		}
	}
	known := v.journeys()
	v.mix(lp.with("mix"), l.Mix, known)
	for i, st := range l.Ramp {
		if st.Mix != nil {
			v.mix(lp.with("ramp").with(i).with("mix"), st.Mix, known)
		}
	}
}

// mix checks one mix at p (load.mix, or a ramp step's): every name a journey or a declared
// target, no negative weight, some positive weight.
func (v *validation) mix(p path, mix map[string]float64, known []string) {
	var total float64
	negative := false
	for _, w := range mix {
		total += max(w, 0)
		negative = negative || w < 0
	}
	for _, k := range slices.Sorted(maps.Keys(mix)) {
		if !contains(known, k) {
			v.add(v.at(p.with(k), true), choiceHint(k, known), "%s: %q is neither a journey nor a declared target", p, k)
		}
		if mix[k] < 0 {
			v.add(v.at(p.with(k), false), "weights are relative shares, 0 or more", "%s.%s: weight %g is negative", p, k, mix[k])
		}
	}
	switch {
	case len(mix) == 0 && !v.emptyReported(p):
		v.add(v.at(p, false), "such as {browse: 60, view_order: 20, place_order: 20}", "%s is empty", p)
	case len(mix) > 0 && total <= 0 && !negative:
		v.add(v.at(p, false), "give at least one journey a positive weight", "%s weights sum to %g", p, total)
	}
}

func (v *validation) faults() {
	s := v.s
	byName := map[string]int{}
	lastEnd := Duration(0)
	for i, f := range s.Faults {
		p := path{"faults", i}
		fn := v.at(p, false)
		if f.Name == "" && !v.emptyReported(p.with("name")) {
			v.add(v.at(p.with("name"), false), "expect.during refers to faults by name", "%s: name is empty", p)
		}
		if j, dup := byName[f.Name]; dup && f.Name != "" {
			prev := s.Faults[j]
			rel := "does not overlap it"
			if f.At < prev.End() && prev.At < f.End() {
				rel = "overlaps it"
			}
			v.add(v.at(p.with("name"), false), "give each fault its own name so expect.during is unambiguous",
				"%s: fault name %q is already used by faults[%d] (line %d) and %s", p, f.Name, j, v.at(path{"faults", j}, false).Line, rel)
		} else if f.Name != "" {
			byName[f.Name] = i
		}
		if f.For <= 0 && !v.emptyReported(p.with("for")) {
			v.add(v.at(p.with("for"), false), "every fault is healed; give how long it lasts, such as 5s", "%s.for must be above 0", p)
		}
		if s.Load.Duration > 0 && f.End() > s.Load.Duration {
			v.add(v.at(p.with("for"), false), fmt.Sprintf("end it by %s or lengthen load.duration", s.Load.Duration),
				"fault %q ends at %s (at %s + for %s), after the load stops at %s", f.Name, f.End(), f.At, f.For, s.Load.Duration)
		}
		lastEnd = max(lastEnd, f.End())
		if why, ok := v.topo.RefusedFaults[f.Type]; ok {
			v.add(v.at(p.with("type"), false), why, "%s: fault type %q is not available on %s", p, f.Type, v.topo.Runtime)
		}
		if f.Spec == nil {
			continue
		}
		v.specProblems(fn, p, f.Spec, f.missing)
		v.edge(fn, p, f.Spec)
		for j := range i {
			g := s.Faults[j]
			if g.Spec != nil && g.Type == f.Type && f.At < g.End() && g.At < f.End() && sameTargets(f.Spec, g.Spec) {
				v.add(v.at(p.with("at"), false), "one fault of a type per target at a time; merge them or move one",
					"%s: fault %q overlaps fault %q of the same type on the same target", p, f.Name, g.Name)
			}
		}
	}
	if len(s.SteadyState) > 0 && len(s.Faults) > 0 && s.Load.Duration > 0 && lastEnd >= s.Load.Duration {
		v.add(v.at(path{"steady_state"}, true), "end the last fault a few seconds before load.duration",
			"steady_state is checked after the last heal, but the last fault heals at %s when the load stops", lastEnd)
	}
}

// edge reports a link fault on an edge the system does not have: both ends exist, but
// the caller never calls the callee, so no proxy sits between them and the fault would be
// refused only after the system started. A custom topology's links are checked with the
// topology (see custom); a topology without edges (a caller's own) is not checked.
func (v *validation) edge(n *yaml.Node, p path, spec any) {
	if groups, ok := groupsField(spec); ok {
		v.crossing(n, p, groups)
		return
	}
	target := targetField(spec)
	from, to, ok := strings.Cut(target, "->")
	if !ok || v.topo.Custom || len(v.topo.Edges) == 0 || v.topo.CheckTarget(target) != nil {
		return
	}
	if err := v.topo.CheckEdge(strings.TrimSpace(from), strings.TrimSpace(to)); err != nil {
		msg, h := err.Error(), ""
		var hd *hinted
		if errors.As(err, &hd) {
			msg, h = hd.msg, hd.hint
		}
		v.add(scalarWith(n, target), h, "%s: %s", p, msg)
	}
}

// crossing reports a partition no edge crosses: every link stays inside one group (or
// touches no group), so there is nothing to cut and the run would fail at injection.
// A service's route link whose instances are grouped one by one is counted as crossing:
// the fault layer decides that case with the running instances. It applies to the
// reference system and to a custom topology alike: both list their edges.
func (v *validation) crossing(n *yaml.Node, p path, groups [][]string) {
	if len(v.topo.Edges) == 0 || len(groups) < 2 {
		return
	}
	groupOf := func(name, service string) int {
		for i, g := range groups {
			for _, m := range g {
				if m == name || (service != "" && m == service) {
					return i
				}
			}
		}
		for i, g := range groups {
			for _, m := range g {
				if ServiceOf(m) == name && m != name {
					return len(groups) + i // instances of a shared caller: undecided here
				}
			}
		}
		return -1
	}
	for _, e := range v.topo.Edges {
		gf, gt := groupOf(e.From, e.FromService), groupOf(e.To, e.ToService)
		if gf >= len(groups) || (gf >= 0 && gt >= 0 && gf != gt) {
			return
		}
	}
	for _, g := range groups {
		for _, m := range g {
			if v.topo.CheckTarget(m) != nil {
				return // already reported as unknown
			}
		}
	}
	v.add(lookup(n, path{"groups"}, false), "group components that call each other, such as [[order], [broker]]; see the links in docs/SCENARIOS.md",
		"%s: no link crosses the groups %v, so the partition would cut nothing", p, groups)
}

// groupsField reads a fault's Groups attribute (a partition's), if it has one.
func groupsField(spec any) ([][]string, bool) {
	rv := reflect.ValueOf(spec)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return nil, false
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, false
	}
	g := rv.FieldByName("Groups")
	if !g.IsValid() {
		return nil, false
	}
	groups, ok := g.Interface().([][]string)
	return groups, ok
}

func sameTargets(a, b any) bool {
	ta, oka := safeTargets(a)
	tb, okb := safeTargets(b)
	if !oka || !okb || len(ta) == 0 {
		return false
	}
	sort.Strings(ta)
	sort.Strings(tb)
	return strings.Join(ta, "\x00") == strings.Join(tb, "\x00")
}

// specProblems reports a fault's or check's own problems and unknown targets, placing
// each on the attribute it names.
func (v *validation) specProblems(n *yaml.Node, p path, spec any, missing []string) {
	if val, ok := spec.(validator); ok {
		v.specErrs(n, p, safeValidate(val), missing)
	}
	targets, _ := safeTargets(spec)
	for _, t := range targets {
		if err := v.topo.CheckTarget(t); err != nil {
			msg, h := err.Error(), ""
			var hd *hinted
			if errors.As(err, &hd) {
				msg, h = hd.msg, hd.hint
			}
			v.add(scalarWith(n, t), h, "%s: %s", p, msg)
		}
	}
}

// specErrs places each of a spec's errors on the line of the attribute it starts with,
// else on the check's; an error about a missing attribute was reported already.
func (v *validation) specErrs(n *yaml.Node, p path, errs []error, missing []string) {
	for _, err := range errs {
		key, msg, h := splitSpecErr(n, err, missing)
		if contains(missing, key) {
			continue
		}
		at := n
		if key != "" {
			at = lookup(n, path{key}, false)
		}
		v.add(at, h, "%s: %s", p, msg)
	}
}

// splitSpecErr finds which attribute a spec's error is about: messages start with the
// attribute ("latency: must not be negative", "max must be above 0").
func splitSpecErr(n *yaml.Node, err error, missing []string) (key, msg, hint string) {
	msg = err.Error()
	var hd *hinted
	if errors.As(err, &hd) {
		msg, hint = hd.msg, hd.hint
	}
	candidates := append([]string(nil), missing...)
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			candidates = append(candidates, n.Content[i].Value)
		}
	}
	best := ""
	for _, k := range candidates {
		if len(k) > len(best) && strings.HasPrefix(msg, k) && (len(msg) == len(k) || strings.ContainsRune(" :.[", rune(msg[len(k)]))) {
			best = k
		}
	}
	return best, msg, hint
}

// scalarWith finds the scalar under n that names target, for placing a target problem:
// the exact value, else a link whose end it is, else n.
func scalarWith(n *yaml.Node, target string) *yaml.Node {
	var exact, partial *yaml.Node
	var walk func(*yaml.Node, int)
	walk = func(x *yaml.Node, depth int) {
		if x == nil || depth > 8 || exact != nil {
			return
		}
		if x.Kind == yaml.ScalarNode {
			switch {
			case x.Value == target:
				exact = x
			case partial == nil && strings.Contains(x.Value, "->"):
				for _, end := range strings.Split(x.Value, "->") {
					if strings.TrimSpace(end) == target {
						partial = x
					}
				}
			}
			return
		}
		for i, c := range x.Content {
			if x.Kind == yaml.MappingNode && i%2 == 0 {
				continue
			}
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	switch {
	case exact != nil:
		return exact
	case partial != nil:
		return partial
	}
	return n
}

func safeValidate(val validator) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = []error{fmt.Errorf("validate: %v", r)}
		}
	}()
	return val.Validate()
}

func safePlacement(pl Placed, at Placement) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = []error{fmt.Errorf("check placement: %v", r)}
		}
	}()
	return pl.CheckPlacement(at)
}

func safeTargets(spec any) (ts []string, ok bool) {
	t, ok := spec.(targeted)
	if !ok {
		return nil, false
	}
	defer func() {
		if r := recover(); r != nil {
			ts, ok = nil, false
		}
	}()
	return append([]string(nil), t.Targets()...), true
}

func (v *validation) checks() {
	s := v.s
	v.checkList(s.SteadyState, path{"steady_state"}, PlaceSteady)
	v.checkList(s.Expect.Before, path{"expect", "before"}, PlaceBefore)
	faultNames := make([]string, 0, len(s.Faults))
	for _, f := range s.Faults {
		faultNames = append(faultNames, f.Name)
	}
	keys := make([]string, 0, len(s.Expect.During))
	for k := range s.Expect.During {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := path{"expect", "during", k}
		if !contains(faultNames, k) {
			h := "the timeline has no faults"
			if len(faultNames) > 0 {
				h = choiceHint(k, faultNames)
			}
			v.add(v.at(p, true), h, "expect.during: %q names no fault", k)
		}
		v.checkList(s.Expect.During[k], p, PlaceDuring)
	}
	v.checkList(s.Expect.After, path{"expect", "after"}, PlaceAfter)
	v.checkList(s.Expect.Overall, path{"expect", "overall"}, PlaceOverall)
	v.checkList(s.AbortWhen, path{"abort_when"}, PlaceAbort)
}

func (v *validation) checkList(list []Check, base path, phase string) {
	for i, c := range list {
		p := base.with(i)
		n := v.at(p, false)
		if c.Name != "" {
			if prev, dup := v.names[c.Name]; dup {
				v.add(v.at(p.with("name"), false), "expect_failure and reports refer to checks by name", "%s: check name %q is already used by %s", p, c.Name, prev)
			} else {
				v.names[c.Name] = p
			}
		}
		if c.Spec == nil {
			continue
		}
		v.specProblems(n, p, v.forValidation(p, c.Spec), c.missing)
		if pl, ok := c.Spec.(Placed); ok {
			at := Placement{Phase: phase, Faults: v.faultNames(), Journeys: v.journeys(), Custom: v.topo.Custom}
			v.specErrs(n, p, safePlacement(pl, at), nil)
		}
	}
}

func (v *validation) faultNames() []string {
	out := make([]string, 0, len(v.s.Faults))
	for _, f := range v.s.Faults {
		out = append(out, f.Name)
	}
	return out
}

func (v *validation) expectFailure() {
	ef := v.s.ExpectFailure
	if ef == nil {
		return
	}
	p := path{"expect_failure"}
	if ef.Check != "" {
		if _, ok := v.names[ef.Check]; !ok {
			names := make([]string, 0, len(v.names))
			for n := range v.names {
				names = append(names, n)
			}
			h := "give the check a name: field and refer to it here"
			if len(names) > 0 {
				h = choiceHint(ef.Check, names)
			}
			v.add(v.at(p.with("check"), false), h, "expect_failure.check: no check is named %q", ef.Check)
		}
	} else if !v.emptyReported(p.with("check")) {
		v.add(v.at(p.with("check"), false), "name the check that must fail", "expect_failure.check is empty")
	}
	if ef.Reason != "" {
		if _, err := regexp.Compile(ef.Reason); err != nil {
			v.add(v.at(p.with("reason"), false), "reason is a regular expression matched against the check's failure message", "expect_failure.reason: %v", err)
		}
	} else if !v.emptyReported(p.with("reason")) {
		v.add(v.at(p.with("reason"), false), "the harness verifies the check fails for this reason, not any reason", "expect_failure.reason is empty")
	}
	if strings.TrimSpace(ef.Explanation) == "" && !v.emptyReported(p.with("explanation")) {
		v.add(v.at(p.with("explanation"), false), "say why the design fails here; the audience reads it", "expect_failure.explanation is empty")
	}
}

// MaxVariants bounds a comparison: each variant starts a whole system per repeat.
const MaxVariants = 8

// compare checks the designs a comparison runs: each needs a unique, path-safe name (it
// names the variant's run directory and its column) and a design.
func (v *validation) compare() {
	list := v.s.Compare
	if len(list) == 0 {
		return
	}
	base := path{"compare"}
	switch {
	case len(list) == 1:
		v.add(v.at(base, false), "list at least two designs, such as breaker-off and breaker-on", "compare lists one design; a comparison needs two or more")
	case len(list) > MaxVariants:
		v.add(v.at(base, false), fmt.Sprintf("compare at most %d designs at a time", MaxVariants), "compare lists %d designs", len(list))
	}
	byName := map[string]int{}
	for i, d := range list {
		p := base.with(i)
		switch {
		case d.Name == "" && !v.emptyReported(p.with("name")):
			v.add(v.at(p.with("name"), false), "name it after what it changes, such as breaker-on", "%s: name is empty", p)
		case d.Name != "":
			v.checkName(p.with("name"), p.String()+": name", d.Name, "design", "breaker-on")
		}
		if j, dup := byName[d.Name]; dup && d.Name != "" {
			v.add(v.at(p.with("name"), false), "give each design its own name; the comparison's columns are named after them",
				"%s: design name %q is already used by compare[%d] (line %d)", p, d.Name, j, v.at(base.with(j), false).Line)
		} else if d.Name != "" {
			byName[d.Name] = i
		}
		switch {
		case d.Design.IsZero() && v.present(p.with("design")):
			v.add(v.at(p.with("design"), false), "give a path such as designs/resilient.yaml, or the design itself as a mapping", "%s: design is empty", p)
		case d.Design.Path != "" && !strings.HasSuffix(d.Design.Path, ".yaml") && !strings.HasSuffix(d.Design.Path, ".yml"):
			v.add(v.at(p.with("design"), false), "designs are YAML files such as designs/resilient.yaml", "%s: design %q is not a .yaml file", p, d.Design.Path)
		}
	}
}

// sweep checks a load sweep: whole positive rates, ascending and distinct, within the
// load's bounds, and positive knee bounds.
func (v *validation) sweep() {
	sw := v.s.Sweep
	if sw == nil {
		return
	}
	base := path{"sweep"}
	switch {
	case len(sw.Rates) == 0 && !v.emptyReported(base.with("rates")):
		v.add(v.at(base.with("rates"), false), "list the offered rates in requests per second, such as [50, 100, 200, 400]", "sweep.rates is empty")
	case len(sw.Rates) > MaxSweepRates:
		v.add(v.at(base.with("rates"), false), fmt.Sprintf("sweep at most %d rates at a time; every rate runs every design twice", MaxSweepRates), "sweep.rates lists %d rates", len(sw.Rates))
	}
	for i, r := range sw.Rates {
		p := base.with("rates").with(i)
		switch {
		case r < 1 || r > MaxRatePerSecond:
			v.add(v.at(p, false), fmt.Sprintf("a rate is whole requests per second in 1..%d", MaxRatePerSecond), "sweep.rates[%d]: %d is outside 1..%d", i, r, MaxRatePerSecond)
		case i > 0 && r <= sw.Rates[i-1]:
			v.add(v.at(p, false), "give the rates ascending, each once, such as [50, 100, 200, 400]", "sweep.rates[%d]: %d does not come after %d", i, r, sw.Rates[i-1])
		}
	}
	if v.present(base.with("knee_p99")) && sw.KneeP99 <= 0 {
		v.add(v.at(base.with("knee_p99"), false), "give a positive duration such as 500ms", "sweep.knee_p99 must be above 0")
	}
	if sw.KneeErrors != nil && *sw.KneeErrors <= 0 {
		v.add(v.at(base.with("knee_errors"), false), `give a share above 0, such as "1%"`, "sweep.knee_errors must be above 0")
	}
}
