package console

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/scenarios"
)

// Field is one input of a fault kind's form, derived from the registered config struct
// (its yaml name and Go type) and the kind's documentation, so that a newly registered
// kind gets a form without console code.
type Field struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"` // duration, string, number, integer, bool, list
	Doc      string   `json:"doc,omitempty"`
	Required bool     `json:"required,omitempty"`
	Enum     []string `json:"enum,omitempty"`
}

// Kind is one registered fault kind and its form.
type Kind struct {
	Kind    string  `json:"kind"`
	Summary string  `json:"summary,omitempty"`
	Fields  []Field `json:"fields"`
}

var durationType = reflect.TypeFor[time.Duration]()

// Kinds lists every kind in the fault registry with the fields of its config struct.
func Kinds() []Kind {
	doc, _ := scenarios.DefaultFaultDecoder().(scenarios.FaultDocumenter)
	var out []Kind
	for _, kind := range faults.Kinds() {
		f, err := faults.New(kind)
		if err != nil {
			continue
		}
		k := Kind{Kind: kind}
		var d scenarios.FaultDoc
		if doc != nil {
			d, _ = doc.FaultDoc(kind)
			k.Summary = d.Summary
		}
		k.Fields = fieldsOf(reflect.TypeOf(f), d)
		out = append(out, k)
	}
	return out
}

// fieldsOf walks t's exported fields with a yaml name (embedded structs inlined).
func fieldsOf(t reflect.Type, d scenarios.FaultDoc) []Field {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []Field
	for sf := range t.Fields() {
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if sf.Anonymous && (strings.Contains(opts, "inline") || name == "") && sf.Type.Kind() == reflect.Struct {
			out = append(out, fieldsOf(sf.Type, d)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		typ := typeName(sf.Type)
		if typ == "" {
			continue
		}
		fd := d.Fields[name]
		out = append(out, Field{Name: name, Type: typ, Doc: fd.Doc, Required: fd.Required, Enum: fd.Enum})
	}
	return out
}

func typeName(t reflect.Type) string {
	if t == durationType || t.ConvertibleTo(durationType) && t.Kind() == reflect.Int64 && t.Name() == "Duration" {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Bool:
		return "bool"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "list"
		}
	}
	return ""
}

// NewFault decodes a form's values into a fresh fault of kind, the way a scenario's
// attributes are decoded (YAML, unknown fields refused), and validates it. Empty values
// are left out.
func NewFault(kind string, params map[string]string) (faults.Fault, error) {
	var k *Kind
	for _, c := range Kinds() {
		if c.Kind == kind {
			k = &c
			break
		}
	}
	if k == nil {
		return nil, fmt.Errorf("new fault: unknown kind %q (known: %s)", kind, strings.Join(faults.Kinds(), ", "))
	}
	attrs := map[string]any{}
	for name, v := range params {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		i := slices.IndexFunc(k.Fields, func(f Field) bool { return f.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("new %s: unknown field %q", kind, name)
		}
		val, err := parseValue(k.Fields[i].Type, v)
		if err != nil {
			return nil, fmt.Errorf("new %s: field %s: %w", kind, name, err)
		}
		attrs[name] = val
	}
	b, err := yaml.Marshal(attrs)
	if err != nil {
		return nil, fmt.Errorf("encode %s attributes: %w", kind, err)
	}
	f, err := faults.Decode(kind, func(v any) error {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		return dec.Decode(v)
	})
	if err != nil {
		return nil, err
	}
	if v, ok := f.(faults.Validator); ok {
		if errs := v.Validate(); len(errs) > 0 {
			msgs := make([]string, len(errs))
			for i, e := range errs {
				msgs[i] = e.Error()
			}
			return nil, fmt.Errorf("validate %s: %s", kind, strings.Join(msgs, "; "))
		}
	}
	return f, nil
}

func parseValue(typ, v string) (any, error) {
	switch typ {
	case "duration":
		if _, err := time.ParseDuration(v); err != nil {
			return nil, err
		}
		return v, nil
	case "number":
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("want a number, got %q", v)
		}
		return x, nil
	case "integer":
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want an integer, got %q", v)
		}
		return x, nil
	case "bool":
		x, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("want true or false, got %q", v)
		}
		return x, nil
	case "list":
		var out []string
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	return v, nil
}
