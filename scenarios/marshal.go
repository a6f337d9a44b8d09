package scenarios

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Marshal writes s as a scenario file that Parse reads back to the same scenario: each
// fault's and each check's own attributes inline beside their common keys, as a person
// writes them. A program that builds a scenario (the console recording a session) marshals
// these types rather than templating text, so what it writes is what the parser reads.
func Marshal(s *Scenario) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode scenario %s: %w", s.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode scenario %s: %w", s.Name, err)
	}
	return buf.Bytes(), nil
}

// MarshalYAML writes the common keys, then the fault type's own attributes inline.
func (f FaultSpec) MarshalYAML() (any, error) {
	type common struct {
		Name string   `yaml:"name"`
		Type string   `yaml:"type"`
		At   Duration `yaml:"at"`
		For  Duration `yaml:"for"`
	}
	return inline(common{f.Name, f.Type, f.At, f.For}, f.Spec, "fault "+f.Name)
}

// MarshalYAML writes the common keys, then the check type's own attributes inline.
func (c Check) MarshalYAML() (any, error) {
	type common struct {
		Type string `yaml:"check"`
		Name string `yaml:"name,omitempty"`
	}
	var spec any
	if c.Spec != nil {
		spec = c.Spec
	}
	return inline(common{c.Type, c.Name}, spec, "check "+c.Type)
}

// MarshalYAML writes a design path as a string and an inline design as the mapping it was.
func (d DesignRef) MarshalYAML() (any, error) {
	if d.Inline != nil {
		return d.Inline, nil
	}
	return d.Path, nil
}

// inline encodes head, then appends spec's keys to it; spec must encode as a mapping.
func inline(head, spec any, what string) (*yaml.Node, error) {
	var n yaml.Node
	if err := n.Encode(head); err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	if spec == nil {
		return &n, nil
	}
	var sn yaml.Node
	if err := sn.Encode(spec); err != nil {
		return nil, fmt.Errorf("encode %s attributes: %w", what, err)
	}
	switch {
	case sn.Kind == yaml.ScalarNode && sn.ShortTag() == "!!null":
		return &n, nil
	case sn.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("encode %s attributes: want a mapping, got %s", what, describe(&sn))
	}
	n.Content = append(n.Content, sn.Content...)
	return &n, nil
}
