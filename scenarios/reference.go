package scenarios

//go:generate sh -c "cd .. && go run ./cmd/faultline schema --markdown > docs/SCENARIOS.md"

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// ReferenceCommand regenerates docs/SCENARIOS.md; a test fails when the file differs from
// what Reference produces.
const ReferenceCommand = "go run ./cmd/faultline schema --markdown > docs/SCENARIOS.md"

// journeyDocs says what each built-in journey of the reference load does.
var journeyDocs = map[string]string{
	"browse":      "lists the products (one time in four) or reads one product",
	"view_order":  "reads an order acknowledged earlier in the run; before any is, browses instead",
	"place_order": "buys a random quantity of a random product from the merchant that sells it, with a fresh idempotency key",
	"retry_order": "re-sends an earlier placement byte for byte, same key and client, as a client that never saw the first answer would",
}

// Reference renders the scenario reference (docs/SCENARIOS.md) from the JSON Schema, the
// reference system's topology and the fault descriptions, so that the page cannot drift
// from what validate accepts.
func Reference(opts ...Option) []byte {
	var schema map[string]any
	if err := json.Unmarshal(Schema(opts...), &schema); err != nil {
		return nil // Schema marshals plain maps; this cannot happen
	}
	o := buildOptions(opts)
	r := &refWriter{defs: schema["$defs"].(map[string]any)}
	r.p("# Scenario reference")
	r.p("")
	r.p("<!-- Generated from the scenario JSON Schema; do not edit. Regenerate with: %s -->", ReferenceCommand)
	r.p("")
	r.p("A scenario is one YAML file: the system under test, a seeded load, a timeline of faults and the checks that judge the run. `faultline validate FILE|DIR` reports every problem of a file at once, as `file:line:col: message (hint: ...)`; `faultline schema > scenario.schema.json` gives editors completion and these descriptions. This page is generated from that schema.")
	r.p("")
	r.p("Contents: [clocks and phases](#clocks-and-phases) · [the reference system](#the-reference-system) · [scenario fields](#scenario-fields) · [faults](#faults) · [checks](#checks)")
	r.p("")
	r.clocks()
	r.reference()
	r.p("## Scenario fields")
	r.p("")
	r.object("scenario", schema, structOrder(reflect.TypeFor[Scenario]()))
	r.faults(o)
	r.checks()
	return bytes.TrimRight(r.b.Bytes(), "\n")
}

type refWriter struct {
	b    bytes.Buffer
	defs map[string]any
}

func (r *refWriter) p(format string, args ...any) {
	if len(args) == 0 {
		r.b.WriteString(format)
	} else {
		fmt.Fprintf(&r.b, format, args...)
	}
	r.b.WriteByte('\n')
}

func (r *refWriter) clocks() {
	r.p("## Clocks and phases")
	r.p("")
	r.p("Every time in a scenario counts from **load start**: 0 is the first request of the load, and reports, charts and messages count on the same clock. A fault is injected at `at` and healed at `at + for`, so its window is `[at, at + for)`; every fault must heal by `load.duration`. A run first starts the system and waits for it to be ready; none of that time is on the clock.")
	r.p("")
	r.p("| where | measured over |")
	r.p("|---|---|")
	r.p("| `steady_state` | before the first injection, and again after the last heal |")
	r.p("| `expect.before` | from load start to the first injection |")
	r.p("| `expect.during.<fault>` | that fault's window, from its injection to its heal |")
	r.p("| `expect.after` | from the last heal to the end of the load |")
	r.p("| `expect.overall` | the whole load |")
	r.p("| `abort_when` | continuously; the first to fail stops the run as invalid, healing every fault at once |")
	r.p("")
	r.p("`load.rate` is a constant open-model rate; `load.ramp` is a list of steps, each with its own rate and length, in order from load start (see [load.ramp](#loadramp)). Durations are Go durations (`500ms`, `20s`, `1m30s`), never negative and at most %s; a load lasts at most %s.", MaxDuration, MaxLoadDuration)
	r.p("")
}

func (r *refWriter) reference() {
	r.p("## The reference system")
	r.p("")
	r.p("Without `topology:` a scenario runs the reference system: an online shop of seven services, each started as its own process (or container with `system.runtime: docker`), with a fault proxy on every link.")
	r.p("")
	r.p("| service | instances | what it is |")
	r.p("|---|---|---|")
	b, _ := RegisteredDefault()
	for _, svc := range b.Services {
		s, n := svc.Name, "1"
		switch {
		case s == "gateway":
			n = fmt.Sprintf("`system.gateways`, 1 to %d", MaxReplicas)
		case slices.Contains(b.Replicated, s):
			n = fmt.Sprintf("`system.replicas.%s`, 1 to %d", s, MaxReplicas)
		}
		r.p("| `%s` | %s | %s |", s, n, svc.Doc)
	}
	r.p("")
	r.p("### Journeys")
	r.p("")
	r.p("`load.mix` weighs these journeys (and any `load.targets` you declare); checks may select one with `journey:`.")
	r.p("")
	r.p("| journey | what it does |")
	r.p("|---|---|")
	for _, j := range Journeys {
		r.p("| `%s` | %s |", j, journeyDocs[j])
	}
	r.p("")
	r.p("### Targets")
	r.p("")
	r.p("| form | example | means |")
	r.p("|---|---|---|")
	r.p("| service | `order` | every instance of the service (process faults: all of them, or one with `pick: one`) |")
	r.p("| instance | `order-2` | one instance; instances are numbered from 1 up to the service's count |")
	r.p("| link | `gateway->product` | the proxy between a caller and a callee; the callee may be an instance (`order->product-2`) |")
	r.p("")
	r.p("`pick` chooses among a service's instances for process faults: `all` (default) or `one`, the first running instance, so that a seeded run repeats.")
	r.p("")
	r.p("### Links")
	r.p("")
	r.p("Link faults act on these links only; `validate` refuses any other (`merchant->product` has no proxy: merchant never calls product). A caller's instances share one link to each callee instance, so the caller is written as its service (`order->product`, not `order-1->product`); links to the registry, the broker and the balancer are per calling instance, so `order-1->broker` and `order->broker` (all of them) both work.")
	r.p("")
	r.p("| caller | calls |")
	r.p("|---|---|")
	edges := DefaultShape(System{}).Edges
	for _, caller := range defaultServices() {
		var callees []string
		for _, e := range edges {
			if e.From == caller || e.FromService == caller {
				callees = appendNew(callees, e.ToService)
			}
		}
		if len(callees) == 0 {
			continue
		}
		for i, c := range callees {
			callees[i] = "`" + c + "`"
		}
		r.p("| `%s` | %s |", caller, strings.Join(callees, ", "))
	}
	r.p("")
	r.p("`registry` and `broker` call nothing. The balancer exists only in designs with server-side discovery.")
	r.p("")
}

// object renders the fields of an object schema as a table, then a section for each field
// that is itself an object or a list of objects.
func (r *refWriter) object(name string, s map[string]any, order []string) {
	props, _ := s["properties"].(map[string]any)
	if len(props) == 0 {
		return
	}
	required := stringList(s["required"])
	keys := order
	if len(keys) == 0 {
		for k := range props {
			keys = append(keys, k)
		}
		// Required fields first, as a file is usually written.
		sort.Slice(keys, func(i, j int) bool {
			ri, rj := slices.Contains(required, keys[i]), slices.Contains(required, keys[j])
			if ri != rj {
				return ri
			}
			return keys[i] < keys[j]
		})
	}
	r.p("| field | type | required | description |")
	r.p("|---|---|---|---|")
	var nested []string
	for _, k := range keys {
		p, ok := props[k].(map[string]any)
		if !ok {
			continue
		}
		req := ""
		if slices.Contains(required, k) {
			req = "yes"
		}
		r.p("| `%s` | %s | %s | %s |", k, r.typeOf(p), req, cell(desc(p)))
		if inner := objectOf(p); inner != nil {
			nested = append(nested, k)
		}
	}
	r.p("")
	for _, k := range nested {
		path := k
		if name != "scenario" {
			path = name + "." + k
		}
		inner := objectOf(props[k].(map[string]any))
		r.p("### %s", path)
		r.p("")
		if d := desc(props[k].(map[string]any)); d != "" {
			r.p("%s.", capitalize(d))
			r.p("")
		}
		r.object(path, inner, nil)
	}
}

// objectOf returns the object schema of a property, or of the items of a list property,
// when it has fields of its own.
func objectOf(p map[string]any) map[string]any {
	if _, ok := p["properties"].(map[string]any); ok {
		return p
	}
	if items, ok := p["items"].(map[string]any); ok {
		if _, ok := items["properties"].(map[string]any); ok {
			return items
		}
	}
	return nil
}

func (r *refWriter) typeOf(p map[string]any) string {
	if ref, ok := p["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		switch name {
		case "fault":
			return "[fault](#faults)"
		case "check":
			return "[check](#checks)"
		}
		return name
	}
	if enum := stringList(p["enum"]); len(enum) > 0 {
		quoted := make([]string, len(enum))
		for i, e := range enum {
			quoted[i] = "`" + e + "`"
		}
		return "one of " + strings.Join(quoted, ", ")
	}
	switch t, _ := p["type"].(string); t {
	case "array":
		if items, ok := p["items"].(map[string]any); ok {
			return "list of " + r.typeOf(items)
		}
		return "list"
	case "object":
		if _, ok := p["properties"]; ok {
			return "mapping"
		}
		if v, ok := p["additionalProperties"].(map[string]any); ok {
			return "map of " + r.typeOf(v)
		}
		return "mapping"
	case "":
		if _, ok := p["properties"]; ok {
			return "mapping"
		}
		return "any"
	default:
		return t
	}
}

func (r *refWriter) faults(o options) {
	r.p("## Faults")
	r.p("")
	r.p("Every fault has these fields; its `type` decides the rest. Several faults may overlap in time, but not two of one type on one target.")
	r.p("")
	fault := r.defs["fault"].(map[string]any)
	variants := map[string]map[string]any{}
	for _, v := range anyList(fault["oneOf"]) {
		obj := v.(map[string]any)
		variants[obj["title"].(string)] = obj
	}
	common := map[string]any{"properties": map[string]any{}, "required": []any{}}
	if first := firstVariant(variants); first != nil {
		props := first["properties"].(map[string]any)
		for _, k := range faultCommon {
			p := props[k].(map[string]any)
			if k == "type" {
				p = map[string]any{"type": "string", "description": "the fault's kind, one of those below"}
			}
			common["properties"].(map[string]any)[k] = p
		}
		common["required"] = []any{"name", "type", "at", "for"}
	}
	r.object("fault", common, faultCommon)
	kinds := make([]string, 0, len(variants))
	for k := range variants {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	r.p("Kinds: %s.", linkList(kinds, ""))
	r.p("")
	var describe func(string) (FaultDoc, bool)
	if fd, ok := o.faults.(FaultDocumenter); ok {
		describe = fd.FaultDoc
	}
	for _, k := range kinds {
		v := variants[k]
		r.p("### %s", k)
		r.p("")
		if d := desc(v); d != "" {
			r.p("%s", d)
			r.p("")
		}
		own := withoutKeys(v, faultCommon)
		if len(own["properties"].(map[string]any)) > 0 {
			r.object("fault."+k, own, nil)
		}
		if describe != nil {
			if doc, ok := describe(k); ok && doc.Example != "" {
				r.p("```yaml")
				r.b.WriteString(doc.Example)
				r.p("```")
				r.p("")
			}
		}
	}
}

func (r *refWriter) checks() {
	r.p("## Checks")
	r.p("")
	r.p("A check is a mapping that starts with `check: <kind>`; `name:` lets `expect_failure` and reports refer to it. Where a check may sit is part of what it means: see [clocks and phases](#clocks-and-phases).")
	r.p("")
	check := r.defs["check"].(map[string]any)
	variants := map[string]map[string]any{}
	for _, v := range anyList(check["oneOf"]) {
		obj := v.(map[string]any)
		variants[obj["title"].(string)] = obj
	}
	kinds := make([]string, 0, len(variants))
	for k := range variants {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	r.p("Kinds: %s.", linkList(kinds, " check"))
	r.p("")
	for _, k := range kinds {
		r.p("### %s check", k)
		r.p("")
		if d := desc(variants[k]); d != "" {
			r.p("%s", d)
			r.p("")
		}
		r.object("check."+k, withoutKeys(variants[k], []string{"check"}), nil)
	}
}

func firstVariant(m map[string]map[string]any) map[string]any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return nil
	}
	return m[keys[0]]
}

// withoutKeys is an object schema without some of its properties.
func withoutKeys(s map[string]any, drop []string) map[string]any {
	props := map[string]any{}
	for k, v := range s["properties"].(map[string]any) {
		if !slices.Contains(drop, k) {
			props[k] = v
		}
	}
	var req []any
	for _, k := range stringList(s["required"]) {
		if !slices.Contains(drop, k) {
			req = append(req, k)
		}
	}
	return map[string]any{"properties": props, "required": req}
}

// linkList links each kind to its heading, "<kind><suffix>", by the anchor GitHub gives it.
func linkList(kinds []string, suffix string) string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = fmt.Sprintf("[`%s`](#%s)", k, strings.ReplaceAll(k+suffix, " ", "-"))
	}
	return strings.Join(out, ", ")
}

func desc(p map[string]any) string {
	d, _ := p["description"].(string)
	return d
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func anyList(v any) []any {
	l, _ := v.([]any)
	return l
}

func stringList(v any) []string {
	var out []string
	for _, x := range anyList(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// structOrder lists a struct's YAML keys in declaration order, for the scenario's own
// table, which reads best in the order a file is written.
func structOrder(t reflect.Type) []string { return fieldNames(t) }
