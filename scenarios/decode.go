package scenarios

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Decoding limits: a scenario is a small hand-written file, so anything far bigger is a
// mistake or an attack, and is refused with a message instead of exhausting memory.
const (
	MaxFileSize  = 1 << 20 // bytes
	MaxFaults    = 64
	MaxChecks    = 256 // over steady_state, expect and abort_when together
	MaxListItems = 1024
	maxDepth     = 48
	maxNodes     = 200_000 // nodes visited, aliases included
)

// nodeDecoder is implemented by types whose YAML shape is decided by one of their keys
// (faults by `type`, checks by `check`), so the generic decoder hands them the node.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, p path)
}

func joinSorted(ss []string) string {
	out := append([]string(nil), ss...)
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// path locates a value in the document: strings are mapping keys, ints sequence indexes.
type path []any

func (p path) with(elem any) path {
	out := make(path, len(p), len(p)+1)
	copy(out, p)
	return append(out, elem)
}

// String formats p as load.mix.browse or faults[2].at.
func (p path) String() string {
	var b strings.Builder
	for _, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	if b.Len() == 0 {
		return "scenario"
	}
	return b.String()
}

// decoder walks a yaml.Node tree into Go values by reflection, collecting every problem
// with its position instead of stopping at the first (yaml.v3's own decoder reports lines
// but not columns, and cannot tell a misspelt key from an unknown one).
type decoder struct {
	file       string
	errs       ErrorList
	nodes      int
	active     map[*yaml.Node]bool
	faults     FaultDecoder
	checks     int
	faultCount int
}

func (d *decoder) errorf(n *yaml.Node, hint string, format string, args ...any) {
	pos := Position{}
	if n != nil {
		pos = Position{Line: n.Line, Column: n.Column}
	}
	d.errs = append(d.errs, &Error{File: d.file, Position: pos, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// errFrom records err (possibly a *hinted) at n, prefixed with the value's path.
func (d *decoder) errFrom(n *yaml.Node, p path, err error) {
	if nd, ok := err.(*negativeDuration); ok {
		h := nd.hinted
		if len(p) > 0 && p[len(p)-1] == "at" {
			h.hint = "at counts from load start (0 = load start) and cannot be negative"
		}
		err = &h
	}
	if h, ok := err.(*hinted); ok {
		d.errorf(n, h.hint, "%s: %s", p, h.msg)
		return
	}
	d.errorf(n, "", "%s: %s", p, err.Error())
}

// deref follows aliases. It returns nil when an alias refers to itself or the document
// has been expanded past the node budget (an alias bomb).
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if n.Alias == nil || d.active[n.Alias] {
			d.errorf(n, "an anchor cannot contain an alias to itself", "alias *%s refers to itself", n.Value)
			return nil
		}
		n = n.Alias
	}
	return n
}

var (
	yamlNodeType = reflect.TypeFor[yaml.Node]()
	durationType = reflect.TypeFor[time.Duration]()
)

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// decode stores n into v, which must be settable.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, p path, depth int) {
	if n = d.deref(n); n == nil {
		return
	}
	d.nodes++
	if d.nodes == maxNodes {
		d.errorf(n, "remove aliases that expand to huge trees", "document expands to more than %d values", maxNodes)
	}
	if d.nodes >= maxNodes {
		return
	}
	if depth > maxDepth {
		d.errorf(n, "", "%s: nesting deeper than %d levels", p, maxDepth)
		return
	}
	if n.Anchor != "" {
		if d.active == nil {
			d.active = map[*yaml.Node]bool{}
		}
		d.active[n] = true
		defer delete(d.active, n)
	}
	if v.CanAddr() {
		switch u := v.Addr().Interface().(type) {
		case nodeDecoder:
			u.decodeNode(d, n, p)
			return
		case *yaml.Node:
			*u = *n
			return
		case yaml.Unmarshaler:
			if err := safeUnmarshal(u, n); err != nil {
				d.errFrom(n, p, err)
			}
			return
		}
	}
	if v.Type() == durationType {
		var dur Duration
		if err := dur.UnmarshalYAML(n); err != nil {
			d.errFrom(n, p, err)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), p, depth+1)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			d.errorf(n, "", "%s: cannot decode into %s", p, v.Type())
			return
		}
		var x any
		if err := n.Decode(&x); err != nil {
			d.errFrom(n, p, err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.Struct:
		if isNull(n) {
			return
		}
		d.decodeStruct(n, v, p, depth, "", nil, nil)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "start each item with \"- \"", "%s: want a list, got %s", p, describe(n))
			return
		}
		if len(n.Content) > MaxListItems {
			d.errorf(n, "", "%s: %d items is more than the limit of %d", p, len(n.Content), MaxListItems)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), p.with(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "", "%s: want a mapping, got %s", p, describe(n))
			return
		}
		if v.Type().Key().Kind() != reflect.String {
			d.errorf(n, "", "%s: cannot decode into %s", p, v.Type())
			return
		}
		n = d.merged(n, depth)
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, ok := d.key(n.Content[i], p, seen)
			if !ok {
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], ev, p.with(k), depth+1)
			m.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
	default:
		d.decodeScalar(n, v, p)
	}
}

// merged returns n's pairs with YAML merge keys (<<: *base) expanded: merged pairs come
// first and explicit keys override them, as in yaml.v3. n itself is left untouched.
func (d *decoder) merged(n *yaml.Node, depth int) *yaml.Node {
	has := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		has = has || isMergeKey(n.Content[i])
	}
	if !has || depth > maxDepth {
		return n
	}
	out := *n
	out.Content = nil
	explicit := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !isMergeKey(n.Content[i]) {
			explicit[n.Content[i].Value] = true
		}
	}
	var add func(m *yaml.Node)
	add = func(m *yaml.Node) {
		if m = d.deref(m); m == nil {
			return
		}
		switch m.Kind {
		case yaml.MappingNode:
			m = d.merged(m, depth+1)
			for i := 0; i+1 < len(m.Content); i += 2 {
				k := m.Content[i].Value
				if explicit[k] {
					continue
				}
				explicit[k] = true
				out.Content = append(out.Content, m.Content[i], m.Content[i+1])
			}
		case yaml.SequenceNode:
			for _, c := range m.Content {
				add(c)
			}
		default:
			d.errorf(m, "merge a mapping, such as <<: *defaults", "cannot merge %s", describe(m))
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMergeKey(n.Content[i]) {
			add(n.Content[i+1])
		} else {
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &out
}

func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == "" || k.ShortTag() == "!!merge")
}

// key reads a mapping key, reporting non-string and duplicate keys.
func (d *decoder) key(kn *yaml.Node, p path, seen map[string]*yaml.Node) (string, bool) {
	kn = d.deref(kn)
	if kn == nil {
		return "", false
	}
	if kn.Kind != yaml.ScalarNode {
		d.errorf(kn, "", "%s: keys must be plain words, got %s", p, describe(kn))
		return "", false
	}
	if prev, dup := seen[kn.Value]; dup {
		d.errorf(kn, "remove one of them; YAML keeps only the last", "%s: key %q is already defined at line %d", p, kn.Value, prev.Line)
		return "", false
	}
	seen[kn.Value] = kn
	return kn.Value, true
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, p path) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "", "%s: want %s, got %s", p, kindName(v.Kind()), describe(n))
		return
	}
	tag := n.ShortTag()
	if tag == "!!null" {
		d.errorf(n, "give a value or remove the key", "%s: want %s, got nothing", p, kindName(v.Kind()))
		return
	}
	bad := func() {
		d.errorf(n, "", "%s: want %s, got %s", p, kindName(v.Kind()), describe(n))
	}
	switch v.Kind() {
	case reflect.String:
		if tag != "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 && tag != "!!int" && tag != "!!float" {
			bad()
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if tag != "!!bool" {
			bad()
			return
		}
		b, _ := strconv.ParseBool(strings.ToLower(n.Value))
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, v.Type().Bits())
		if tag != "!!int" || err != nil {
			bad()
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, v.Type().Bits())
		if tag != "!!int" || err != nil {
			bad()
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), v.Type().Bits())
		if (tag != "!!int" && tag != "!!float") || err != nil || f != f {
			bad()
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, "", "%s: cannot decode into %s", p, v.Type())
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return k.String()
}

// safeUnmarshal calls a third-party UnmarshalYAML, turning a panic into an error because a
// scenario file must never crash the harness.
func safeUnmarshal(u yaml.Unmarshaler, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode value: %v", r)
		}
	}()
	return u.UnmarshalYAML(n)
}

// field is one YAML key of a struct.
type field struct {
	name     string
	index    []int
	required bool
}

var fieldCache sync.Map // reflect.Type -> []field

// fieldsOf lists the YAML keys of struct type t, following yaml.v3's rules: the tag name,
// else the lower-cased field name; "-" skips; ",inline" flattens an embedded struct.
func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!sf.IsExported() && !sf.Anonymous) {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for _, sub := range fieldsOf(ft) {
					out = append(out, field{name: sub.name, index: append([]int{i}, sub.index...), required: sub.required})
				}
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, field{name: name, index: []int{i}, required: sf.Tag.Get("required") == "true"})
	}
	fieldCache.Store(t, out)
	return out
}

// fieldNames lists the YAML keys a struct type accepts, for hints and the schema.
func fieldNames(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	fs := fieldsOf(t)
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

// fieldByIndex is reflect.Value.FieldByIndex that allocates nil embedded pointers.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// decodeStruct decodes mapping n into struct v. what names the mapping in messages
// ("latency fault"); extra lists keys owned by a caller (a fault's common keys) that are
// valid but not fields of v; skip says which keys to leave alone entirely. It returns the
// required fields (tag required:"true") that were missing, already reported.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, p path, depth int, what string, extra []string, skip map[string]bool) (missing []string) {
	in := p.String()
	if what != "" {
		in += " (" + what + ")"
	}
	if n.Kind != yaml.MappingNode && !isNull(n) {
		d.errorf(n, "", "%s: want a mapping, got %s", in, describe(n))
		return nil
	}
	if n.Kind == yaml.MappingNode {
		n = d.merged(n, depth)
	}
	fs := fieldsOf(v.Type())
	byName := make(map[string]field, len(fs))
	known := append([]string(nil), extra...)
	for _, f := range fs {
		byName[f.name] = f
		known = append(known, f.name)
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn := n.Content[i]
		k, ok := d.key(kn, p, seen)
		if !ok || skip[k] {
			continue
		}
		f, ok := byName[k]
		if !ok {
			h := ""
			if s, ok := suggest(k, known); ok {
				h = fmt.Sprintf("did you mean %q?", s)
			} else if len(known) > 0 {
				sorted := append([]string(nil), known...)
				sort.Strings(sorted)
				h = "known fields: " + strings.Join(sorted, ", ")
			}
			d.errorf(kn, h, "unknown field %q in %s", k, in)
			continue
		}
		d.decode(n.Content[i+1], fieldByIndex(v, f.index), p.with(k), depth+1)
	}
	for _, f := range fs {
		if f.required && seen[f.name] == nil {
			d.errorf(n, "", "%s: missing required field %q", in, f.name)
			missing = append(missing, f.name)
		}
	}
	return missing
}

// lookup finds the node at p under root (following aliases), or the deepest ancestor
// that exists, so that problems found after decoding can still point at the right place.
// With key set, it returns the key node of the last element instead of its value.
func lookup(root *yaml.Node, p path, key bool) *yaml.Node {
	n, _ := find(root, p, key)
	return n
}

// find is lookup that also says whether the whole path exists.
func find(root *yaml.Node, p path, key bool) (*yaml.Node, bool) {
	n := root
	for n != nil && n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for i, e := range p {
		for hops := 0; n != nil && n.Kind == yaml.AliasNode && hops < 16; hops++ {
			n = n.Alias
		}
		if n == nil {
			return nil, false
		}
		var next *yaml.Node
		switch e := e.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(n.Content); j += 2 {
					if n.Content[j].Value == e {
						next = n.Content[j+1]
						if key && i == len(p)-1 {
							next = n.Content[j]
						}
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && e >= 0 && e < len(n.Content) {
				next = n.Content[e]
			}
		}
		if next == nil {
			return n, false
		}
		n = next
	}
	return n, true
}
