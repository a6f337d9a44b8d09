package scenarios

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// problems parses src with the real fault registry and validates it against the
// reference topology, returning every message.
func problems(t *testing.T, src string) []string {
	t.Helper()
	s, err := Parse("x.yaml", []byte(src))
	if s == nil {
		require.Error(t, err)
		var out []string
		for _, e := range err.(ErrorList) {
			out = append(out, e.Error())
		}
		return out
	}
	var out []string
	for _, e := range s.Validate(SystemShape{}) {
		out = append(out, e.Error())
	}
	return out
}

// TestHugeDurationsAreRefused: at: 2562047h fits an int64 of nanoseconds, so it parsed,
// and at + for wrapped around to a negative end that no "ends after the load" check
// caught; the run then waited for the injection forever. A ramp summed the same way.
func TestHugeDurationsAreRefused(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{
			name: "fault at",
			src: minimal + `faults:
  - {name: f, type: crash, at: 2562047h, for: 5s, target: order}
`,
			want: `x.yaml:8:32: faults[0].at: duration "2562047h" is longer than 24h0m0s`,
		},
		{
			name: "fault for",
			src: minimal + `faults:
  - {name: f, type: crash, at: 1s, for: 2562047h, target: order}
`,
			want: `x.yaml:8:41: faults[0].for: duration "2562047h" is longer than 24h0m0s`,
		},
		{
			name: "ramp step",
			src: `name: t
description: a ramp whose steps wrap around
load:
  ramp:
    - {rate: 10/s, for: 2562047h}
    - {rate: 10/s, for: 2562047h}
  duration: 10s
  mix: {browse: 1}
`,
			want: `x.yaml:5:25: load.ramp[0].for: duration "2562047h" is longer than 24h0m0s`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := problems(t, tc.src)
			require.NotEmpty(t, got, "a duration that wraps around must not validate")
			assert.Contains(t, got[0], tc.want)
			assert.Contains(t, got[0], "(hint: ")
		})
	}
}

// TestFaultEndSaturates: End never wraps around to before the start.
func TestFaultEndSaturates(t *testing.T) {
	f := FaultSpec{At: Duration(1 << 62), For: Duration(1 << 62)}
	assert.Greater(t, f.End(), f.At)
}

// TestNegativeDurationHint: the hint fits the field. A negative latency is not a start
// time; a negative at is.
func TestNegativeDurationHint(t *testing.T) {
	got := problems(t, minimal+`faults:
  - {name: f, type: latency, at: 1s, for: 2s, target: gateway->product, latency: -5ms}
  - {name: g, type: crash, at: -1s, for: 2s, target: order}
`)
	require.Len(t, got, 2, "%q", got)
	assert.Equal(t, `x.yaml:8:82: faults[0].latency: duration "-5ms" is negative (hint: a duration is a length of time, 0 or more, such as 200ms)`, got[0])
	assert.Equal(t, `x.yaml:9:32: faults[1].at: duration "-1s" is negative (hint: at counts from load start (0 = load start) and cannot be negative)`, got[1])
}

// TestLongNamesAreRefused: the name becomes a directory name; 300 characters validated
// and then failed at mkdir.
func TestLongNamesAreRefused(t *testing.T) {
	cases := []struct {
		name string
		n    int
		ok   bool
	}{
		{"at the limit", MaxNameLength, true},
		{"one over", MaxNameLength + 1, false},
		{"300", 300, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.Repeat("a", tc.n)
			got := problems(t, strings.Replace(minimal, "name: t", "name: "+name, 1))
			if tc.ok {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1)
			assert.Contains(t, got[0], "x.yaml:1:7: name is")
			assert.Contains(t, got[0], "characters long, more than 64 (hint: use at most 64 characters")
		})
	}
	t.Run("compare variant", func(t *testing.T) {
		got := problems(t, minimal+`compare:
  - {name: a, design: designs/a.yaml}
  - {name: `+strings.Repeat("b", 100)+`, design: designs/b.yaml}
`)
		require.Len(t, got, 1)
		assert.Contains(t, got[0], "x.yaml:9:12: compare[1]: name is 100 characters long, more than 64")
	})
}

// TestLinkFaultOnMissingEdge: both ends exist, but merchant never calls product, so no
// proxy sits there; validate must say so, not the run after the system started.
func TestLinkFaultOnMissingEdge(t *testing.T) {
	cases := []struct {
		target string
		want   string // empty: valid
	}{
		{"gateway->product", ""},
		{"order->product-1", ""},
		{"order->merchant", ""},
		{"balancer->order", ""},
		{"gateway-1->registry", ""},
		{"product->broker", ""},
		{"order->balancer-1", ""},
		{"merchant->product", `x.yaml:8:70: faults[0]: no link merchant->product: merchant does not call product, so no proxy sits there (hint: merchant calls balancer, broker, registry; product is called by balancer, gateway, order)`},
		{"order->gateway", `x.yaml:8:70: faults[0]: no link order->gateway: order does not call gateway, so no proxy sits there (hint: order calls balancer, broker, merchant, product, registry)`},
		{"registry->broker", `no link registry->broker: registry does not call broker, so no proxy sits there (hint: registry calls none; broker is called by`},
		{"order-1->product", `no link order-1->product: order-1 is not a caller of its own (hint: the instances of order share one link to product; write order->product)`},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			got := problems(t, minimal+`faults:
  - {name: f, type: latency, at: 1s, for: 2s, latency: 50ms, target: `+tc.target+`}
`)
			if tc.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "%q", got)
			assert.Contains(t, got[0], tc.want)
		})
	}
}

// TestPartitionThatCutsNothing: groups that share no link validated and then failed at
// injection ("no link crosses the groups").
func TestPartitionThatCutsNothing(t *testing.T) {
	cases := []struct {
		groups string
		want   string
	}{
		{"[[order], [broker]]", ""},
		{"[[gateway], [merchant, product, order]]", ""},
		{"[[order-1], [product]]", ""}, // decided with the running instances
		{"[[registry], [broker]]", `x.yaml:8:57: faults[0]: no link crosses the groups [[registry] [broker]], so the partition would cut nothing`},
		{"[[merchant], [product]]", `no link crosses the groups [[merchant] [product]]`},
	}
	for _, tc := range cases {
		t.Run(tc.groups, func(t *testing.T) {
			got := problems(t, minimal+`faults:
  - {name: f, type: partition, at: 1s, for: 2s, groups: `+tc.groups+`}
`)
			if tc.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "%q", got)
			assert.Contains(t, got[0], tc.want)
		})
	}
}

// TestPartitionThatCutsNothingInACustomTopology: a custom topology's declared links are
// its edges, so the same check applies.
func TestPartitionThatCutsNothingInACustomTopology(t *testing.T) {
	head := `name: p
description: d
topology:
  components:
    - {name: web, command: httpd, ports: [http]}
    - {name: api, command: httpd, ports: [http], replicas: 2}
    - {name: db, command: httpd, ports: [http]}
  links: [{from: client, to: web}, {from: web, to: api}]
load: {rate: 1/s, duration: 5s, mix: {a: 1}, targets: [{name: a, url: "http://{{.Addr \"web\" \"http\"}}/"}]}
faults:
`
	cases := []struct{ groups, want string }{
		{"[[web], [api]]", ""},
		{"[[web], [api-1]]", ""},
		{"[[web], [db]]", "no link crosses the groups [[web] [db]]"},
		{"[[api], [db]]", "no link crosses the groups [[api] [db]]"},
	}
	for _, tc := range cases {
		t.Run(tc.groups, func(t *testing.T) {
			got := problems(t, head+"  - {name: f, type: partition, at: 1s, for: 1s, groups: "+tc.groups+"}\n")
			if tc.want == "" {
				assert.Empty(t, got)
				return
			}
			require.Len(t, got, 1, "%q", got)
			assert.Contains(t, got[0], tc.want)
		})
	}
}

// TestServiceOf: only a numbered instance belongs to a service named apart from it, so a
// check or fault on service "api" never reads "api-gateway".
func TestServiceOf(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"product-2", "product"},
		{"order-10", "order"},
		{"api-gateway", "api-gateway"},
		{"gateway", "gateway"},
		{"api-", "api-"},
		{"-2", "-2"},
		{"a-+2", "a-+2"},
		{"my-api-3", "my-api"},
	} {
		if got := ServiceOf(tc.name); got != tc.want {
			t.Errorf("ServiceOf(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRefusedFaultsAtTheirType: a fault kind the runtime cannot carry out was refused only
// once the run started; validate now refuses it at the fault's type line, with the reason
// as the hint, whatever the system's shape, and leaves other kinds alone.
func TestRefusedFaultsAtTheirType(t *testing.T) {
	src := minimal + `faults:
  - name: gone
    type: delete
    at: 1s
    for: 2s
    target: order-1
  - {name: slow, type: latency, at: 1s, for: 2s, latency: 50ms, target: gateway->product}
`
	s, err := Parse("x.yaml", []byte(src))
	require.NoError(t, err)
	cases := []struct {
		name  string
		shape SystemShape
		want  []string
	}{
		{"nothing refused", SystemShape{}, nil},
		{"delete refused", SystemShape{RefusedFaults: map[string]string{"delete": "no controller replaces it"}, Runtime: "local"},
			[]string{`x.yaml:9:11: faults[0]: fault type "delete" is not available on local (hint: no controller replaces it)`}},
		{"another kind refused", SystemShape{RefusedFaults: map[string]string{"crash_loop": "kubelet back-off"}, Runtime: "kubernetes"}, nil},
		{"no runtime named", SystemShape{RefusedFaults: map[string]string{"delete": "why"}},
			[]string{`x.yaml:9:11: faults[0]: fault type "delete" is not available on this runtime (hint: why)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range s.Validate(tc.shape) {
				got = append(got, e.Error())
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
