package scenarios

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withDefaultSystem runs f with sys as the registered default system (nil: none), then
// puts back what the reference package registered.
func withDefaultSystem(t *testing.T, sys *DefaultSystem, f func()) {
	t.Helper()
	registered.mu.Lock()
	saved := registered.sys
	registered.sys = sys
	registered.mu.Unlock()
	defer func() {
		registered.mu.Lock()
		registered.sys = saved
		registered.mu.Unlock()
	}()
	f()
}

// TestValidateNeedsASystem: without a topology and without a registered default system
// there is nothing to check targets and links against, and validation refuses the
// scenario instead of accepting every link.
func TestValidateNeedsASystem(t *testing.T) {
	s, err := Parse("x.yaml", []byte(minimal))
	require.NoError(t, err)
	withDefaultSystem(t, nil, func() {
		got := s.Validate(SystemShape{})
		require.Len(t, got, 1)
		assert.EqualError(t, got[0], "validate scenario: no default system registered and no topology: import the reference package or pass a shape")
	})
	assert.Empty(t, s.Validate(SystemShape{}), "with the reference system registered")
}

// TestValidateUsesTheRegisteredLinks: link faults are checked against the links of
// whatever system is registered, not a list of this package's own.
func TestValidateUsesTheRegisteredLinks(t *testing.T) {
	tiny := &DefaultSystem{
		Services: []SystemService{{Name: "front"}, {Name: "back"}},
		Edges: func(n map[string]int) []Edge {
			return []Edge{{From: "front", To: "back-1", ToService: "back"}}
		},
	}
	tests := []struct {
		target string
		want   string // empty: valid
	}{
		{"front->back", ""},
		{"front->back-1", ""},
		{"back->front", "no link back->front: back does not call front, so no proxy sits there"},
		{"gateway->back", `target "gateway" is not in the topology (hint: services are back, front`},
	}
	withDefaultSystem(t, tiny, func() {
		for _, tt := range tests {
			got := problems(t, minimal+`faults:
  - {name: f, type: latency, at: 1s, for: 2s, latency: 50ms, target: `+tt.target+`}
`)
			if tt.want == "" {
				assert.Empty(t, got, tt.target)
				continue
			}
			require.Len(t, got, 1, "%s: %q", tt.target, got)
			assert.Contains(t, got[0], tt.want, tt.target)
		}
	})
}

// TestRegisterDefaultSystemRefusesAnEmptyOne: a system without services or edges would
// make every link fault unverifiable.
func TestRegisterDefaultSystemRefusesAnEmptyOne(t *testing.T) {
	tests := []struct {
		name string
		sys  DefaultSystem
	}{
		{"nothing", DefaultSystem{}},
		{"no edges", DefaultSystem{Services: []SystemService{{Name: "a"}}}},
		{"no services", DefaultSystem{Edges: func(map[string]int) []Edge { return nil }}},
	}
	for _, tt := range tests {
		assert.EqualError(t, RegisterDefaultSystem(tt.sys), "register default system: it needs services and edges", tt.name)
	}
}
