package explore

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Shape is a trial's timeline on the load's clock: the steady state is judged for Before,
// the faults hold for Hold, and the system is watched recover for After.
type Shape struct {
	Before, Hold, After time.Duration
}

// DefaultShape fits ≥ 6 trials a minute on a small machine with the recovery wait, while
// each phase still holds enough requests at the catalog's rates (40–50/s) for its checks.
var DefaultShape = Shape{Before: 1500 * time.Millisecond, Hold: 2500 * time.Millisecond, After: 2 * time.Second}

// Duration is the trial's load duration.
func (s Shape) Duration() time.Duration { return s.Before + s.Hold + s.After }

// Validate refuses a shape a trial of kinds cannot run in: a phase that is not positive,
// or a hold too short to measure a latency's effect (probes through the link must come
// back while it holds).
func (s Shape) Validate(kinds []string) error {
	if s.Before <= 0 || s.Hold <= 0 || s.After <= 0 {
		return fmt.Errorf("validate trial shape: before %s, hold %s and after %s must all be positive", s.Before, s.Hold, s.After)
	}
	if slices.Contains(kinds, "latency") && s.Hold < DefaultLatency+time.Second {
		return fmt.Errorf("validate trial shape: a hold of %s is too short to measure a latency of %s; hold at least %s", s.Hold, DefaultLatency, DefaultLatency+time.Second)
	}
	return nil
}

// variant is what a derived scenario changes in the explored one.
type variant struct {
	name, description string
	seed              int64
	shape             Shape
	faults            []Candidate
	// design replaces system.design when set (a path).
	design string
}

// derive writes the scenario a trial runs, and the minimal scenario a failure is handed
// back as: the explored scenario's YAML (its system, design, load and checks) with its
// name, description, seed and load duration set, its faults replaced by the variant's at
// a fixed time, and what named the old faults (expect_failure) or other designs (compare)
// removed. expect.during keeps, for each new fault, the checks of the old lists that judge
// the load alone (see loadChecks): they are the scenario's invariants under a fault. Relative paths (system.design, system.topology) are made
// absolute against the explored file, so the result runs from any directory.
func derive(src []byte, file string, v variant) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("derive scenario: parse %s: %w", file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("derive scenario: %s is not a YAML mapping", file)
	}
	root := doc.Content[0]
	setKey(root, "name", str(v.name))
	setKey(root, "description", str(v.description))
	setKey(root, "seed", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.seed, 10)})
	delKey(root, "expect_failure")
	delKey(root, "compare")
	var invariants []*yaml.Node
	if ex := getKey(root, "expect"); ex != nil && ex.Kind == yaml.MappingNode {
		invariants = duringInvariants(getKey(ex, "during"))
		delKey(ex, "during")
		if len(invariants) > 0 && len(v.faults) > 0 {
			during := &yaml.Node{Kind: yaml.MappingNode}
			for _, c := range v.faults {
				list := invariants
				if len(v.faults) > 1 {
					// Check names are unique in a scenario: each fault's copy is named after it.
					list = renamed(invariants, faultName(c))
				}
				setKey(during, faultName(c), &yaml.Node{Kind: yaml.SequenceNode, Content: list})
			}
			setKey(ex, "during", during)
		}
		if len(ex.Content) == 0 {
			delKey(root, "expect")
		}
	}
	load := getKey(root, "load")
	if load == nil || load.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("derive scenario: %s has no load section", file)
	}
	if getKey(load, "ramp") != nil {
		return nil, errors.New("derive scenario: a load with a ramp cannot be cut into trials; give load.rate instead")
	}
	setKey(load, "duration", str(v.shape.Duration().String()))
	sys := getKey(root, "system")
	if v.design != "" {
		if sys == nil {
			sys = &yaml.Node{Kind: yaml.MappingNode}
			setKey(root, "system", sys)
		}
		setKey(sys, "design", str(v.design))
	}
	if sys != nil && sys.Kind == yaml.MappingNode {
		for _, k := range []string{"design", "topology"} {
			if n := getKey(sys, k); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
				n.Value = absolutePath(n.Value, file)
			}
		}
	}
	fs := &yaml.Node{Kind: yaml.SequenceNode}
	for _, c := range v.faults {
		f := &yaml.Node{Kind: yaml.MappingNode}
		setKey(f, "name", str(faultName(c)))
		setKey(f, "type", str(c.Kind))
		setKey(f, "at", str(v.shape.Before.String()))
		setKey(f, "for", str(v.shape.Hold.String()))
		attrs := c.Attrs()
		for _, k := range slices.Sorted(maps.Keys(attrs)) {
			var n yaml.Node
			if err := n.Encode(attrs[k]); err != nil {
				return nil, fmt.Errorf("derive scenario: encode %s: %w", k, err)
			}
			setKey(f, k, &n)
		}
		fs.Content = append(fs.Content, f)
	}
	setKey(root, "faults", fs)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("derive scenario: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// loadChecks are the check kinds that judge the load alone, whatever the fault: the
// ones a scenario's expect.during lists that explore keeps as invariants of every trial's
// fault. The others (fault_landed, breaker_opened, fallback_served, ...) describe how the
// system meets one scripted fault and are left with it.
var loadChecks = []string{"latency", "error_rate", "throughput"}

// duringInvariants collects, once each, the load-judging checks of every fault's list in
// expect.during.
func duringInvariants(during *yaml.Node) []*yaml.Node {
	if during == nil || during.Kind != yaml.MappingNode {
		return nil
	}
	var out []*yaml.Node
	seen := map[string]bool{}
	for i := 1; i < len(during.Content); i += 2 {
		list := during.Content[i]
		if list.Kind != yaml.SequenceNode {
			continue
		}
		for _, c := range list.Content {
			if c.Kind != yaml.MappingNode {
				continue
			}
			kind := getKey(c, "check")
			if kind == nil || !slices.Contains(loadChecks, kind.Value) {
				continue
			}
			b, err := yaml.Marshal(c)
			if err != nil || seen[string(b)] {
				continue
			}
			seen[string(b)] = true
			out = append(out, c)
		}
	}
	return out
}

// renamed copies checks, suffixing each explicit name with "-" + suffix.
func renamed(checks []*yaml.Node, suffix string) []*yaml.Node {
	out := make([]*yaml.Node, len(checks))
	for i, c := range checks {
		cp := *c
		cp.Content = slices.Clone(c.Content)
		if n := getKey(&cp, "name"); n != nil {
			setKey(&cp, "name", str(n.Value+"-"+suffix))
		}
		out[i] = &cp
	}
	return out
}

// absolutePath resolves a relative path the way a run finds a design: next to the
// scenario file or in its parents; a path found nowhere is left as written.
func absolutePath(p, file string) string {
	if filepath.IsAbs(p) || file == "" {
		return p
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return p
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			return filepath.Join(dir, p)
		}
		if filepath.Dir(dir) == dir {
			return p
		}
	}
}

// faultName is a scenario fault name for c: lower-case words joined by dashes.
func faultName(c Candidate) string { return slug(c.Kind + "-" + c.Target.Name) }

// slug keeps letters and digits and joins the rest with single dashes.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func getKey(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, str(key), v)
}

func delKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}
