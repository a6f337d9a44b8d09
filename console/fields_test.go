package console

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/faults"
)

func TestKindsCoverTheRegistry(t *testing.T) {
	var got []string
	for _, k := range Kinds() {
		got = append(got, k.Kind)
		assert.NotEmpty(t, k.Fields, "kind %s has no fields", k.Kind)
	}
	assert.Equal(t, faults.Kinds(), got)
}

func TestLatencyFields(t *testing.T) {
	i := slices.IndexFunc(Kinds(), func(k Kind) bool { return k.Kind == "latency" })
	require.GreaterOrEqual(t, i, 0)
	fields := map[string]Field{}
	for _, f := range Kinds()[i].Fields {
		fields[f.Name] = f
	}
	tests := []struct {
		name, typ string
		required  bool
	}{
		{"target", "string", true},
		{"latency", "duration", true},
		{"jitter", "duration", false},
		{"direction", "string", false},
		{"toxicity", "number", false},
	}
	for _, tt := range tests {
		got, ok := fields[tt.name]
		require.True(t, ok, "no field %s", tt.name)
		assert.Equal(t, tt.typ, got.Type, tt.name)
		assert.Equal(t, tt.required, got.Required, tt.name)
	}
	assert.Equal(t, []string{"downstream", "upstream", "both"}, fields["direction"].Enum)
}

// A kind registered after the console was written gets a form all the same.
type testFault struct {
	Target string        `yaml:"target"`
	Hold   time.Duration `yaml:"hold"`
	Count  int           `yaml:"count,omitempty"`
}

func (*testFault) Inject(ctx context.Context, env faults.Env) error { return nil }
func (*testFault) Heal(ctx context.Context, env faults.Env) error   { return nil }

func init() { faults.Register("console_test_kind", func() faults.Fault { return &testFault{} }) }

func TestNewKindGetsAForm(t *testing.T) {
	i := slices.IndexFunc(Kinds(), func(k Kind) bool { return k.Kind == "console_test_kind" })
	require.GreaterOrEqual(t, i, 0)
	want := []Field{{Name: "target", Type: "string"}, {Name: "hold", Type: "duration"}, {Name: "count", Type: "integer"}}
	assert.Equal(t, want, Kinds()[i].Fields)
	f, err := NewFault("console_test_kind", map[string]string{"target": "a", "hold": "2s", "count": "3"})
	require.NoError(t, err)
	assert.Equal(t, &testFault{Target: "a", Hold: 2 * time.Second, Count: 3}, f)
}

func TestNewFault(t *testing.T) {
	tests := []struct {
		name    string
		kind    string
		params  map[string]string
		wantErr string
	}{
		{"latency", "latency", map[string]string{"target": "gateway->product", "latency": "1500ms", "direction": ""}, ""},
		{"bad duration", "latency", map[string]string{"target": "gateway->product", "latency": "soon"}, "field latency"},
		{"invalid by the kind's own rules", "latency", map[string]string{"target": "gateway->product"}, "validate latency"},
		{"unknown field", "latency", map[string]string{"target": "gateway->product", "latency": "1s", "colour": "red"}, "unknown field"},
		{"unknown kind", "earthquake", nil, "unknown kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFault(tt.kind, tt.params)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			l, ok := f.(*faults.Latency)
			require.True(t, ok)
			assert.Equal(t, 1500*time.Millisecond, l.Latency)
			assert.Equal(t, "gateway->product", l.Target)
		})
	}
}
