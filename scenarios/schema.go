package scenarios

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// SchemaID is the $id of the scenario schema; editors map files to it by this name.
const SchemaID = "urn:faultline:scenario"

// Schema returns a JSON Schema (draft 2020-12) of scenario files for editors. It is
// generated from the Go types, the check registry and the fault decoder's types, so it
// cannot drift from what Parse accepts; faults and checks are oneOf variants selected by
// their type key.
func Schema(opts ...Option) []byte {
	o := buildOptions(opts)
	g := &schemaGen{defs: map[string]any{}}
	g.defs["duration"] = map[string]any{
		"type":        "string",
		"pattern":     `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$`,
		"description": "Go duration, such as 500ms, 20s or 1m30s",
	}
	g.defs["rate"] = map[string]any{
		"type":        "string",
		"pattern":     `^\s*[0-9]+\s*/\s*([0-9]+(\.[0-9]*)?)?(ns|us|µs|ms|s|m|h)\s*$`,
		"description": "requests per unit, such as 50/s or 600/1m",
	}
	g.defs["fraction"] = map[string]any{
		"description": "share between 0 and 1, or a percentage such as \"5%\"",
		"oneOf": []any{
			map[string]any{"type": "number", "minimum": 0, "maximum": 1},
			map[string]any{"type": "string", "pattern": `^\s*[0-9]+(\.[0-9]*)?\s*%$`},
		},
	}
	g.defs["design"] = map[string]any{
		"description": "design file path, or the design inline",
		"oneOf": []any{
			map[string]any{"type": "string", "pattern": `\.ya?ml$`},
			map[string]any{"type": "object"},
		},
	}
	g.defs["check"] = g.variants("check", CheckKinds(), reflect.TypeFor[Check](), func(kind string) any {
		spec, err := NewCheck(kind)
		if err != nil {
			return nil
		}
		return spec
	}, nil)
	var kinds []string
	if o.faults != nil {
		kinds = o.faults.Kinds()
	}
	var describe func(string) (FaultDoc, bool)
	if fd, ok := o.faults.(FaultDocumenter); ok {
		describe = fd.FaultDoc
	}
	g.defs["fault"] = g.variants("type", kinds, reflect.TypeFor[FaultSpec](), func(kind string) any {
		spec, err := safeNew(o.faults, kind)
		if err != nil {
			return nil
		}
		return spec
	}, describe)
	root := g.of(reflect.TypeFor[Scenario]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "Faultline scenario"
	root["$defs"] = g.defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		// Only maps, slices, strings and numbers are marshalled, so this cannot happen.
		return nil
	}
	return append(b, '\n')
}

type schemaGen struct {
	defs map[string]any
}

// variants builds the oneOf of a two-step type: one object per kind with the common
// fields, the kind's own fields, and the discriminator fixed to the kind.
func (g *schemaGen) variants(discriminator string, kinds []string, common reflect.Type, spec func(string) any, describe func(string) (FaultDoc, bool)) map[string]any {
	base := g.of(common)
	if len(kinds) == 0 {
		base["additionalProperties"] = true
		return base
	}
	sorted := append([]string(nil), kinds...)
	sort.Strings(sorted)
	var oneOf []any
	for _, k := range sorted {
		v := spec(k)
		if v == nil {
			continue
		}
		t := reflect.TypeOf(v)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		obj := g.of(common)
		props := obj["properties"].(map[string]any)
		props[discriminator] = map[string]any{"const": k}
		req, _ := obj["required"].([]string)
		if t.Kind() == reflect.Struct {
			own := g.of(t)
			for name, s := range own["properties"].(map[string]any) {
				props[name] = s
			}
			if r, ok := own["required"].([]string); ok {
				req = append(req, r...)
			}
		}
		if describe != nil {
			if doc, ok := describe(k); ok {
				req = applyDocs(props, req, doc, common)
				obj["description"] = doc.Summary
			}
		}
		sort.Strings(req)
		obj["required"] = req
		obj["title"] = k
		oneOf = append(oneOf, obj)
	}
	return map[string]any{
		"type":     "object",
		"required": []string{discriminator},
		"properties": map[string]any{
			discriminator: map[string]any{"enum": sorted},
		},
		"oneOf": oneOf,
	}
}

var (
	checkType     = reflect.TypeFor[Check]()
	faultSpecType = reflect.TypeFor[FaultSpec]()
)

// of returns the schema of t. Struct fields become properties with descriptions from the
// doc tag, enums from the enum tag and requirements from the required tag.
func (g *schemaGen) of(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeFor[Duration](), durationType:
		return ref("duration")
	case reflect.TypeFor[Rate]():
		return ref("rate")
	case reflect.TypeFor[Fraction]():
		return ref("fraction")
	case reflect.TypeFor[DesignRef]():
		return ref("design")
	case checkType:
		if _, building := g.defs["check"]; building {
			return ref("check")
		}
	case faultSpecType:
		if _, building := g.defs["fault"]; building {
			return ref("fault")
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.of(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		var req []string
		for _, f := range fieldsOf(t) {
			sf := t.FieldByIndex(f.index)
			s := g.of(sf.Type)
			if doc := sf.Tag.Get("doc"); doc != "" {
				s = withDesc(s, doc)
			}
			if enum := sf.Tag.Get("enum"); enum != "" {
				s["enum"] = strings.Split(enum, ",")
			}
			if m := sf.Tag.Get("minimum"); m != "" {
				if n, err := strconv.ParseFloat(m, 64); err == nil {
					s["minimum"] = n
				}
			}
			props[f.name] = s
			if f.required {
				req = append(req, f.name)
			}
		}
		out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(req) > 0 {
			out["required"] = req
		}
		return out
	}
	return map[string]any{}
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/$defs/" + name} }

// withDesc returns a copy of s with a description; draft 2020-12 allows it next to $ref.
func withDesc(s map[string]any, doc string) map[string]any {
	out := make(map[string]any, len(s)+1)
	for k, v := range s {
		out[k] = v
	}
	out["description"] = doc
	return out
}

// applyDocs adds a kind's attribute descriptions, enums and requirements to its
// properties (those of the common type excepted), for fault structs without doc tags.
func applyDocs(props map[string]any, req []string, doc FaultDoc, common reflect.Type) []string {
	commonKeys := fieldNames(common)
	for name, fd := range doc.Fields {
		p, ok := props[name].(map[string]any)
		if !ok || contains(commonKeys, name) {
			continue
		}
		if _, has := p["description"]; !has && fd.Doc != "" {
			p = withDesc(p, fd.Doc)
		}
		if len(fd.Enum) > 0 {
			p["enum"] = append([]string(nil), fd.Enum...)
		}
		props[name] = p
		if fd.Required && !contains(req, name) {
			req = append(req, name)
		}
	}
	return req
}
