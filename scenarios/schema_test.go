package scenarios

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func loadSchema(t *testing.T, opts ...Option) map[string]any {
	t.Helper()
	var s map[string]any
	require.NoError(t, json.Unmarshal(Schema(opts...), &s))
	return s
}

// schemaWalker is a small JSON Schema validator: type, properties, required,
// additionalProperties, items, enum, const, pattern, minimum/maximum, oneOf and local
// $ref. It is enough to hold the catalog to the schema editors see, without a dependency.
type schemaWalker struct {
	root map[string]any
}

func (w schemaWalker) resolve(s map[string]any) map[string]any {
	for i := 0; i < 8; i++ {
		r, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name := strings.TrimPrefix(r, "#/$defs/")
		s = w.root["$defs"].(map[string]any)[name].(map[string]any)
	}
	return s
}

func (w schemaWalker) validate(v any, s map[string]any, at string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if r, ok := s["$ref"].(string); ok {
		errs = append(errs, w.validate(v, w.resolve(map[string]any{"$ref": r}), at)...)
	}
	if typ, ok := s["type"].(string); ok && !jsonTypeIs(v, typ) {
		fail("want %s, got %T", typ, v)
		return errs
	}
	if c, ok := s["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		fail("want %v, got %v", c, v)
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || fmt.Sprint(e) == fmt.Sprint(v)
		}
		if !found {
			fail("%v is not in %v", v, enum)
		}
	}
	if p, ok := s["pattern"].(string); ok {
		if str, isStr := v.(string); isStr && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	}
	if n, isNum := toFloat(v); isNum {
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("%v is below %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			fail("%v is above %v", n, m)
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		matched := 0
		var sub []string
		for _, o := range one {
			e := w.validate(v, o.(map[string]any), at)
			if len(e) == 0 {
				matched++
			}
			sub = append(sub, e...)
		}
		if matched != 1 {
			fail("matches %d of oneOf (%s)", matched, strings.Join(sub, "; "))
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asStrings(s["required"]) {
			if _, ok := v[r]; !ok {
				fail("missing required %q", r)
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, w.validate(v[k], ps, at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("unexpected property %q", k)
				}
			case map[string]any:
				errs = append(errs, w.validate(v[k], ap, at+"."+k)...)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range v {
				errs = append(errs, w.validate(e, items, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

func jsonTypeIs(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := toFloat(v)
		return ok
	case "integer":
		f, ok := toFloat(v)
		return ok && f == math.Trunc(f)
	}
	return true
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func asStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, fmt.Sprint(e))
		}
	}
	return out
}

func yamlValue(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	require.NoError(t, yaml.Unmarshal(src, &v))
	return v
}

func TestSchemaIsDraft202012(t *testing.T) {
	s := loadSchema(t)
	assert.Equal(t, "https://json-schema.org/draft/2020-12/schema", s["$schema"])
	assert.Equal(t, SchemaID, s["$id"])
	assert.ElementsMatch(t, []any{"name", "description", "load"}, s["required"])
}

// TestCatalogMatchesSchema holds every built-in scenario to the schema editors use, and
// makes sure the walker is not vacuous by feeding it a broken copy.
func TestCatalogMatchesSchema(t *testing.T) {
	w := schemaWalker{root: loadSchema(t)}
	for _, name := range Catalog() {
		b, err := CatalogFile(name)
		require.NoError(t, err)
		assert.Empty(t, w.validate(yamlValue(t, b), w.root, name), name)
	}
	bad := yamlValue(t, []byte(`name: x
description: y
load: {rate: 5/s, duration: 5 s, mix: {browse: 1}, colour: red}
system: {runtime: kubernetes}
faults: [{name: f, type: latency, at: 1s, for: 1s, target: a->b, latency: 1s, bogus: 1}]
steady_state: [{check: latency, percentile: p42, max: 1s}, {check: nope}]
`))
	got := w.validate(bad, w.root, "bad")
	joined := strings.Join(got, "\n")
	for _, want := range []string{
		`bad.load.duration: "5 s" does not match`,
		`bad.load: unexpected property "colour"`,
		`bad.system.runtime: kubernetes is not in`,
		`bad.faults[0]: matches 0 of oneOf`,
		`bad.steady_state[0]: matches 0 of oneOf`,
		`bad.steady_state[1].check: nope is not in`,
	} {
		assert.Contains(t, joined, want)
	}
}

// TestSchemaCoversGoFields walks the Go types and requires every YAML key to appear in
// the schema at the same place, including every check kind and every fault kind.
func TestSchemaCoversGoFields(t *testing.T) {
	root := loadSchema(t)
	w := schemaWalker{root: root}
	var walk func(t reflect.Type, s map[string]any, at string)
	walk = func(typ reflect.Type, s map[string]any, at string) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		s = w.resolve(s)
		switch {
		case typ == checkType || typ == faultSpecType:
			return // covered by the variant checks below
		case typ.Kind() == reflect.Slice:
			items, ok := s["items"].(map[string]any)
			require.True(t, ok, "%s: array schema", at)
			walk(typ.Elem(), items, at+"[]")
		case typ.Kind() == reflect.Map:
			ap, ok := s["additionalProperties"].(map[string]any)
			require.True(t, ok, "%s: map schema", at)
			walk(typ.Elem(), ap, at+".*")
		case typ.Kind() == reflect.Struct && typ.PkgPath() == reflect.TypeFor[Scenario]().PkgPath() && s["type"] == "object":
			props, _ := s["properties"].(map[string]any)
			for _, f := range fieldsOf(typ) {
				ps, ok := props[f.name].(map[string]any)
				if !assert.True(t, ok, "%s.%s is missing from the schema", at, f.name) {
					continue
				}
				walk(typ.FieldByIndex(f.index).Type, ps, at+"."+f.name)
			}
		}
	}
	walk(reflect.TypeFor[Scenario](), root, "scenario")

	variants := func(def string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, v := range root["$defs"].(map[string]any)[def].(map[string]any)["oneOf"].([]any) {
			m := v.(map[string]any)
			out[m["title"].(string)] = m["properties"].(map[string]any)
		}
		return out
	}
	checks := variants("check")
	for _, kind := range CheckKinds() {
		props, ok := checks[kind]
		require.True(t, ok, "check %s has a variant", kind)
		spec, err := NewCheck(kind)
		require.NoError(t, err)
		for _, name := range append(fieldNames(reflect.TypeOf(spec)), checkCommon...) {
			assert.Contains(t, props, name, "check %s field %s", kind, name)
		}
	}
	faultVariants := variants("fault")
	fd := DefaultFaultDecoder()
	require.NotEmpty(t, fd.Kinds())
	for _, kind := range fd.Kinds() {
		props, ok := faultVariants[kind]
		require.True(t, ok, "fault %s has a variant", kind)
		spec, err := fd.New(kind)
		require.NoError(t, err)
		for _, name := range append(fieldNames(reflect.TypeOf(spec)), faultCommon...) {
			assert.Contains(t, props, name, "fault %s field %s", kind, name)
		}
	}
}
