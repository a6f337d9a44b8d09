package scenarios

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/topology"
)

// processFaults act on processes, which an external component is not.
var processFaults = []string{"crash", "pause", "restart", "crash_loop", "disconnect", "delete"}

// HasTopology reports whether s runs against a user's topology instead of the reference
// system.
func (s *Scenario) HasTopology() bool { return s != nil && s.Topology != nil }

// attachTopology reads the file system.topology names (relative to the scenario) into
// s.Topology, with its problems placed in that file, and sets the directory templates are
// resolved against.
func (s *Scenario) attachTopology(d *decoder) {
	s.topoFile = s.File
	s.topoRoot = lookup(s.root, path{"topology"}, false)
	if s.System.Topology == "" {
		if s.Topology != nil {
			s.Topology.Base = dirOf(s.File)
		}
		return
	}
	at := lookup(s.root, path{"system", "topology"}, false)
	if s.Topology != nil {
		d.errorf(at, "keep the inline topology: or system.topology: file, not both", "system.topology and topology cannot both be set")
		return
	}
	file := s.System.Topology
	if !filepath.IsAbs(file) {
		file = filepath.Join(dirOf(s.File), file)
	}
	data, err := os.ReadFile(file)
	switch {
	case err != nil:
		d.errorf(at, "the path is relative to the scenario file", "system.topology: read %s: %v", s.System.Topology, shortPathErr(err))
		return
	case len(data) > MaxFileSize:
		d.errorf(at, "", "system.topology: %s is more than %d bytes", s.System.Topology, MaxFileSize)
		return
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		d.errorf(at, "check the topology file's indentation and quoting", "system.topology: parse %s: %s", s.System.Topology, trimYAMLPrefix(err.Error()))
		return
	}
	body := &root
	if body.Kind == yaml.DocumentNode && len(body.Content) == 1 {
		body = body.Content[0]
	}
	// The file may hold the topology itself, or a document with a topology: key.
	if inner := lookup(body, path{"topology"}, false); inner != body && inner != nil {
		body = inner
	}
	td := &decoder{file: file, faults: d.faults}
	t := &topology.Topology{}
	td.decode(body, reflect.ValueOf(t).Elem(), nil, 0)
	d.errs = append(d.errs, td.errs...)
	t.Base = filepath.Dir(file)
	s.Topology, s.topoFile, s.topoRoot = t, file, body
}

func dirOf(file string) string {
	if file == "" {
		return "."
	}
	return filepath.Dir(file)
}

func shortPathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// CustomShape is what a scenario against t may target: its components (a replicated
// one as <name>-<n>) and its declared links.
func CustomShape(t *topology.Topology) SystemShape {
	out := SystemShape{Services: map[string]int{}, Custom: true, Links: t.LinkNames()}
	for _, c := range t.Components {
		n := 0 // a single instance is named after its component, not <name>-1
		if c.Replicas > 1 {
			n = c.Replicas
		}
		out.Services[c.Name] = n
	}
	// One proxy per declared link and callee instance, as the topology's plan makes them.
	for _, l := range t.Links {
		to, ok := t.Component(l.To)
		if !ok {
			continue // reported by the topology's own validation
		}
		for _, inst := range to.Instances() {
			out.Edges = append(out.Edges, Edge{From: l.From, To: inst, ToService: to.Name})
		}
	}
	return out
}

// custom reports what is wrong with a scenario against a user's topology: the topology's
// own problems, reference-system settings, reference-only checks, link faults on links
// not declared, and process faults on external components.
func (v *validation) custom() {
	s := v.s
	if s.Topology == nil {
		return
	}
	for _, p := range s.Topology.Validate() {
		n, _ := find(s.topoRoot, path(p.Path), false)
		pos := Position{}
		if n != nil {
			pos = Position{Line: n.Line, Column: n.Column}
		}
		v.errs = append(v.errs, &Error{File: s.topoFile, Position: pos, Msg: "topology: " + p.Error(), Hint: p.Hint})
	}
	sys := s.System
	ref := func(key string, set bool) {
		if set {
			v.add(v.at(path{"system", key}, true), "system."+key+" configures the reference system; your topology sets its own components", "system.%s does not apply to a custom topology", key)
		}
	}
	ref("replicas", len(sys.Replicas) > 0)
	ref("gateways", sys.Gateways != 0)
	ref("design", !sys.Design.IsZero())
	ref("lease_ttl", sys.LeaseTTL != 0)
	if sys.Runtime != "" && sys.Runtime != "local" && sys.Runtime != "docker" {
		v.add(v.at(path{"system", "runtime"}, false), "local runs the components' commands; docker runs them in their image: or build:", "system.runtime %q is not supported with a custom topology", sys.Runtime)
	}
	if len(s.Compare) > 0 {
		v.add(v.at(path{"compare"}, true), "compare runs designs of the reference system", "compare does not apply to a custom topology")
	}
	for i, f := range s.Faults {
		target := targetField(f.Spec)
		p := path{"faults", i}
		if target == "" {
			continue
		}
		at := scalarWith(v.at(p, false), target)
		if from, to, ok := strings.Cut(target, "->"); ok {
			from, to = strings.TrimSpace(from), strings.TrimSpace(to)
			toComp := to
			if c, ok := s.Topology.ComponentOf(to); ok {
				toComp = c.Name
			}
			if !s.Topology.HasLink(from, toComp) && v.topo.CheckTarget(target) == nil {
				v.add(at, "declare it under topology.links ({from: "+from+", to: "+toComp+"}); declared: "+orNone(s.Topology.LinkNames()),
					"%s: link %q is not declared in the topology, so no proxy sits on it", p, from+"->"+toComp)
			}
			continue
		}
		if c, ok := s.Topology.ComponentOf(target); ok && c.External() && slices.Contains(processFaults, f.Type) {
			v.add(at, "an external component is not started by the harness; fault a link to it instead", "%s: %s cannot act on %q: it is external (address %s)", p, f.Type, target, c.Address)
		}
	}
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// targetField reads a fault's Target attribute (the target as written), if it has one.
func targetField(spec any) string {
	v := reflect.ValueOf(spec)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	if t := v.FieldByName("Target"); t.IsValid() && t.Kind() == reflect.String {
		return t.String()
	}
	return ""
}

// clientURL renders a URL the load generator or a probe uses, for validation: with a
// custom topology it must be an absolute URL once its templates are rendered.
func (v *validation) clientURL(s string) (string, error) {
	if !v.topo.Custom || v.s.Topology == nil {
		return s, nil
	}
	out, err := v.s.Topology.CheckClientTemplate(s)
	if err != nil {
		return s, hint(`load and probe URLs see .Addr "component" "port" and .Addrs`, "%v", err)
	}
	if strings.HasPrefix(out, "/") {
		return out, hint(`write http://{{.Addr "web" "http"}}`+s, "url %q is a path, but a custom topology has no gateway to resolve it against", s)
	}
	return out, nil
}

// forValidation returns spec with its templated fields rendered, so that the spec's own
// Validate sees a URL, not a template. A field that does not render is reported on its
// line and validated as a placeholder URL, so that its problem is not reported twice.
func (v *validation) forValidation(p path, spec CheckSpec) CheckSpec {
	t, ok := spec.(Templated)
	if !ok || !v.topo.Custom || v.s.Topology == nil {
		return spec
	}
	return t.RenderTemplates(func(field, value string) string {
		out, err := v.s.Topology.CheckClientTemplate(value)
		if err != nil {
			fp := p
			for _, k := range strings.Split(field, ".") {
				if i, aerr := strconv.Atoi(k); aerr == nil {
					fp = fp.with(i)
				} else {
					fp = fp.with(k)
				}
			}
			v.add(v.at(fp, false), `templates see .Addr "component" "port" and .Addrs`, "%s: %v", p, err)
			return "http://127.0.0.1/"
		}
		return out
	})
}
