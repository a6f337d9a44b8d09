package system

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
)

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"zero but dir is fine", Spec{Dir: "x"}, nil},
		{"no dir", Spec{}, []string{"dir is empty"}},
		{"negative replicas", Spec{Dir: "x", Orders: -1, Gateways: -2}, []string{"orders is -1", "gateways is -2"}},
		{"too many", Spec{Dir: "x", Products: 33}, []string{"products is 33, want <= 32"}},
		{"sub-second lease", Spec{Dir: "x", LeaseTTL: 500 * time.Millisecond}, []string{"granularity of 1s"}},
		{"negative lease", Spec{Dir: "x", LeaseTTL: -time.Second}, []string{"lease_ttl is -1s"}},
		{"empty catalog part", Spec{Dir: "x", Catalog: config.Catalog{InitialStock: 5}}, []string{"at least one merchant"}},
		{"missing design", Spec{Dir: "x", DesignFile: "/no/such/design.yaml"}, []string{"design file"}},
		{"bad env", Spec{Dir: "x", Env: []string{"=x"}}, []string{"not KEY=VALUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.spec.Validate()
			require.Len(t, got, len(tt.want), "%v", got)
			for i, w := range tt.want {
				assert.ErrorContains(t, got[i], w)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 90, 7 * time.Millisecond},
		{ms(5, 1, 3), 50, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 90, 9 * time.Millisecond},
		{ms(1, 2, 3), 100, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		got := Percentile(tt.in, tt.p)
		assert.Equal(t, tt.want, got, "%v p%v", tt.in, tt.p)
	}
}
