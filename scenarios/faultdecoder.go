package scenarios

import (
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// FaultDecoder creates the value a fault's type-specific attributes are decoded into. It
// is the one seam between scenario files and the fault layer, so parsing can be tested
// with stand-in faults and a program can add fault kinds of its own.
type FaultDecoder interface {
	// Kinds lists the known fault types, for messages and the schema.
	Kinds() []string
	// New returns a fresh value for kind, normally a pointer to a struct with yaml tags.
	New(kind string) (any, error)
}

// validator and targeted are faults.Validator and faults.Targeted restated, so specs from
// any FaultDecoder (and check specs) get the same treatment.
type (
	validator interface{ Validate() []error }
	targeted  interface{ Targets() []string }
)

// Common keys of every fault; everything else belongs to the fault's own struct.
var faultCommon = []string{"name", "type", "at", "for"}

// Common keys of every check.
var checkCommon = []string{"check", "name"}

// split separates a mapping's pairs into the common keys and the rest, keeping the rest's
// position so problems inside it still point into the file.
func split(n *yaml.Node, common []string) (rest *yaml.Node, commonKeys map[string]bool, restKeys map[string]bool) {
	rest = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	commonKeys, restKeys = map[string]bool{}, map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if contains(common, k) {
			commonKeys[k] = true
			continue
		}
		restKeys[k] = true
		rest.Content = append(rest.Content, n.Content[i], n.Content[i+1])
	}
	return rest, commonKeys, restKeys
}

// decodeNode decodes the common keys into f, then the rest into a fresh value from the
// fault registry for f.Type.
func (f *FaultSpec) decodeNode(d *decoder, n *yaml.Node, p path) {
	d.faultCount++
	if d.faultCount == MaxFaults+1 {
		d.errorf(n, "split the timeline into several scenarios", "faults: more than %d faults", MaxFaults)
	}
	if d.faultCount > MaxFaults {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "each fault is a mapping with name, type, at, for and its attributes", "%s: want a mapping, got %s", p, describe(n))
		return
	}
	n = d.merged(n, 1)
	rest, _, restKeys := split(n, faultCommon)
	d.decodeStruct(n, reflect.ValueOf(f).Elem(), p, 1, "fault", nil, restKeys)
	if f.Type == "" || d.faults == nil {
		return
	}
	typeNode := lookup(n, path{"type"}, false)
	spec, err := safeNew(d.faults, f.Type)
	if err != nil || spec == nil {
		kinds := d.faults.Kinds()
		d.errorf(typeNode, kindHint(f.Type, kinds), "%s.type: unknown fault type %q", p, f.Type)
		return
	}
	f.Spec, f.missing = d.decodeSpec(rest, spec, p, fmt.Sprintf("%s fault", f.Type), faultCommon)
}

// decodeNode decodes the common keys into c, then the rest into a fresh spec for c.Type.
func (c *Check) decodeNode(d *decoder, n *yaml.Node, p path) {
	d.checks++
	if d.checks == MaxChecks+1 {
		d.errorf(n, "split the scenario", "more than %d checks", MaxChecks)
	}
	if d.checks > MaxChecks {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "each check is a mapping that starts with check: <type>", "%s: want a mapping, got %s", p, describe(n))
		return
	}
	n = d.merged(n, 1)
	rest, _, restKeys := split(n, checkCommon)
	d.decodeStruct(n, reflect.ValueOf(c).Elem(), p, 1, "check", nil, restKeys)
	if c.Type == "" {
		return
	}
	spec, err := NewCheck(c.Type)
	if err != nil {
		d.errorf(lookup(n, path{"check"}, false), kindHint(c.Type, CheckKinds()), "%s.check: unknown check type %q", p, c.Type)
		return
	}
	v, missing := d.decodeSpec(rest, spec, p, c.Type+" check", checkCommon)
	c.missing = missing
	if v, ok := v.(CheckSpec); ok {
		c.Spec = v
	}
}

func kindHint(kind string, kinds []string) string {
	if len(kinds) == 0 {
		return "no types are registered"
	}
	h := "known types: " + joinSorted(kinds)
	if s, ok := suggest(kind, kinds); ok {
		h = fmt.Sprintf("did you mean %q? %s", s, h)
	}
	return h
}

// decodeSpec decodes rest into spec, which is usually a pointer to a struct; a non-pointer
// value is copied into a new pointer so that it can still be filled. It also returns the
// required fields that were missing, so that the spec's own "x is required" message is
// not reported a second time.
func (d *decoder) decodeSpec(rest *yaml.Node, spec any, p path, what string, common []string) (any, []string) {
	rv := reflect.ValueOf(spec)
	target := rv
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		target = rv.Elem()
	} else {
		ptr := reflect.New(rv.Type())
		ptr.Elem().Set(rv)
		target = ptr.Elem()
	}
	var missing []string
	if target.Kind() == reflect.Struct {
		missing = d.decodeStruct(rest, target, p, 1, what, common, nil)
	} else {
		d.decode(rest, target, p, 1)
	}
	if rv.Kind() == reflect.Pointer {
		return spec, missing
	}
	return target.Interface(), missing
}

// safeNew calls a FaultDecoder, turning a panic into an error.
func safeNew(fd FaultDecoder, kind string) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("new fault: %v", r)
		}
	}()
	return fd.New(kind)
}
