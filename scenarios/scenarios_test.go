package scenarios

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/bad")

// stubFaults stands in for the faults registry so that golden messages do not change when
// the fault layer rewords its own; its types mirror the real ones' shapes.
type stubFaults struct{}

func (stubFaults) Kinds() []string { return []string{"crash", "latency", "partition"} }

func (stubFaults) New(kind string) (any, error) {
	switch kind {
	case "latency":
		return &stubLatency{}, nil
	case "crash":
		return &stubCrash{}, nil
	case "partition":
		return &stubPartition{}, nil
	}
	return nil, fmt.Errorf("new fault: unknown kind %q", kind)
}

type stubLatency struct {
	Target  string        `yaml:"target"`
	Latency time.Duration `yaml:"latency"`
	Jitter  time.Duration `yaml:"jitter,omitempty"`
}

func (f *stubLatency) Validate() []error {
	var errs []error
	if !strings.Contains(f.Target, "->") {
		errs = append(errs, fmt.Errorf("target: want caller->callee, got %q", f.Target))
	}
	if f.Latency <= 0 {
		errs = append(errs, fmt.Errorf("latency: must be positive, got %s", f.Latency))
	}
	return errs
}

func (f *stubLatency) Targets() []string {
	from, to, ok := strings.Cut(f.Target, "->")
	if !ok {
		return nil
	}
	return []string{from, to}
}

type stubCrash struct {
	Target string `yaml:"target"`
}

func (f *stubCrash) Validate() []error {
	if f.Target == "" {
		return []error{errors.New("target: is required")}
	}
	return nil
}

func (f *stubCrash) Targets() []string { return []string{f.Target} }

type stubPartition struct {
	Groups [][]string `yaml:"groups"`
}

func (f *stubPartition) Targets() []string {
	var out []string
	for _, g := range f.Groups {
		out = append(out, g...)
	}
	return out
}

// TestBadFiles runs every malformed file through ValidateFile and compares the messages
// with testdata/bad/<name>.golden; run with -update after an intended change.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			errs := ValidateFile(file, SystemShape{}, WithFaultDecoder(stubFaults{}))
			require.NotEmpty(t, errs, "a bad file must produce at least one problem")
			var b strings.Builder
			for _, e := range errs {
				var se *Error
				require.ErrorAs(t, e, &se, "every problem is positioned")
				assert.Equal(t, file, se.File)
				b.WriteString(e.Error())
				b.WriteByte('\n')
			}
			got := b.String()
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "golden file missing; run go test ./scenarios -run TestBadFiles -update")
			assert.Equal(t, string(want), got)
		})
	}
}

// minimal is a valid scenario the table tests edit.
const minimal = `name: t
description: a minimal valid scenario for tests
load:
  rate: 10/s
  duration: 10s
  mix: {browse: 1}
`

func TestParseValid(t *testing.T) {
	src := minimal + `system:
  replicas: {order: 2}
  gateways: 2
  lease_ttl: 1s
  design:
    inventory: sync
faults:
  - name: slow
    type: latency
    at: 2s
    for: 3s
    target: gateway->order-2
    latency: 250ms
expect:
  during:
    slow:
      - check: latency
        percentile: p99
        max: 400ms
      - check: metric
        component: gateway-2
        metric: faultline_breaker_state
        labels: {caller: gateway}
        op: "<"
        value: 2
`
	s, err := Parse("ok.yaml", []byte(src), WithFaultDecoder(stubFaults{}))
	require.NoError(t, err)
	require.Empty(t, s.Validate(SystemShape{}))

	assert.Equal(t, Rate{Freq: 10, Per: time.Second}, s.Load.Rate)
	assert.Equal(t, 10*time.Second, s.Load.Duration.Std())
	assert.Equal(t, 2, s.System.ReplicasOf("order"))
	assert.Equal(t, 1, s.System.ReplicasOf("product"))
	require.NotNil(t, s.System.Design.Inline)
	assert.Empty(t, s.System.Design.Path)
	require.Len(t, s.Faults, 1)
	assert.Equal(t, &stubLatency{Target: "gateway->order-2", Latency: 250 * time.Millisecond}, s.Faults[0].Spec)
	assert.Equal(t, Duration(5*time.Second), s.Faults[0].End())
	during := s.Expect.During["slow"]
	require.Len(t, during, 2)
	assert.Equal(t, &LatencyCheck{Percentile: "p99", Max: Duration(400 * time.Millisecond)}, during[0].Spec)
	m, ok := during[1].Spec.(*MetricCheck)
	require.True(t, ok)
	require.NotNil(t, m.Value)
	assert.Equal(t, 2.0, *m.Value)
	assert.Equal(t, map[string]string{"caller": "gateway"}, m.Labels)
}

// TestValidateTable checks single problems end to end: the message and its position.
func TestValidateTable(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{
			name: "fault beyond load",
			src: minimal + `faults:
  - {name: f, type: crash, at: 8s, for: 5s, target: order}
`,
			want: []string{`x.yaml:8:41: fault "f" ends at 13s (at 8s + for 5s), after the load stops at 10s (hint: end it by 10s or lengthen load.duration)`},
		},
		{
			name: "weights sum to zero",
			src:  strings.Replace(minimal, "{browse: 1}", "{browse: 0, place_order: 0}", 1),
			want: []string{`x.yaml:6:8: load.mix weights sum to 0 (hint: give at least one journey a positive weight)`},
		},
		{
			name: "during names no fault",
			src: minimal + `faults:
  - {name: slow, type: crash, at: 1s, for: 1s, target: order}
expect:
  during:
    slwo: []
`,
			want: []string{`x.yaml:11:5: expect.during: "slwo" names no fault (hint: did you mean "slow"?)`},
		},
		{
			name: "instance beyond replicas",
			src: minimal + `system: {replicas: {product: 2}}
faults:
  - {name: k, type: crash, at: 1s, for: 1s, target: product-3}
`,
			want: []string{`x.yaml:9:53: faults[0]: target "product-3" is not in the topology (hint: product has 2 instance(s), product-1 to product-2; raise system.replicas or system.gateways)`},
		},
		{
			name: "unknown check type lists known ones",
			src:  minimal + "steady_state:\n  - check: nope\n",
			want: []string{`x.yaml:8:12: steady_state[0].check: unknown check type "nope" (hint: known types: breaker_closed, breaker_opened, command, consistency, error_rate, failover, fallback_served, fault_landed, http_probe, latency, metric, throughput)`},
		},
		{
			name: "empty file",
			src:  "",
			want: []string{`x.yaml:1:1: file is empty (hint: start from a built-in scenario such as scenarios/baseline.yaml)`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			s, err := Parse("x.yaml", []byte(tc.src), WithFaultDecoder(stubFaults{}))
			if s == nil {
				require.Error(t, err)
				for _, e := range err.(ErrorList) {
					got = append(got, e.Error())
				}
			} else {
				for _, e := range s.Validate(SystemShape{}) {
					got = append(got, e.Error())
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestValidateCustomTopology shows that a caller's own topology replaces the reference one.
func TestValidateCustomTopology(t *testing.T) {
	src := minimal + `faults:
  - {name: k, type: crash, at: 1s, for: 1s, target: billing-2}
`
	s, err := Parse("x.yaml", []byte(src), WithFaultDecoder(stubFaults{}))
	require.NoError(t, err)
	assert.Empty(t, s.Validate(SystemShape{Services: map[string]int{"billing": 2}}))
	errs := s.Validate(SystemShape{})
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), `target "billing-2" is not in the topology`)
}

func TestLimits(t *testing.T) {
	t.Run("file size", func(t *testing.T) {
		s, err := Parse("big.yaml", make([]byte, MaxFileSize+1))
		assert.Nil(t, s)
		assert.EqualError(t, err, fmt.Sprintf("big.yaml: file is %d bytes, more than the limit of %d (hint: split the scenario or remove generated content)", MaxFileSize+1, MaxFileSize))
	})
	t.Run("faults", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(strings.Replace(minimal, "10s", "1000s", 1) + "faults:\n")
		for i := range MaxFaults + 5 {
			fmt.Fprintf(&b, "  - {name: f%d, type: crash, at: %ds, for: 1s, target: order}\n", i, i)
		}
		s, err := Parse("many.yaml", []byte(b.String()), WithFaultDecoder(stubFaults{}))
		require.NotNil(t, s)
		require.Error(t, err)
		assert.Equal(t, fmt.Sprintf("many.yaml:%d:5: faults: more than %d faults (hint: split the timeline into several scenarios)", 8+MaxFaults, MaxFaults), err.Error())
		assert.Len(t, s.Faults, MaxFaults+5, "the list keeps its length; only the excess is left undecoded")
	})
	t.Run("checks", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(minimal + "steady_state:\n")
		for range MaxChecks + 1 {
			b.WriteString("  - {check: error_rate, max: 1%}\n")
		}
		_, err := Parse("checks.yaml", []byte(b.String()))
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("more than %d checks", MaxChecks))
	})
	t.Run("alias bomb", func(t *testing.T) {
		// 1024 references to a list of 1024 strings: small on disk, a million values
		// once expanded, which the node budget refuses.
		strs := strings.TrimSuffix(strings.Repeat("x,", MaxListItems), ",")
		refs := strings.TrimSuffix(strings.Repeat("*a,", MaxListItems), ",")
		src := minimal + "faults:\n  - name: p\n    type: partition\n    at: 1s\n    for: 1s\n" +
			"    anchor: &a [" + strs + "]\n    groups: [" + refs + "]\n"
		_, err := Parse("bomb.yaml", []byte(src), WithFaultDecoder(stubFaults{}))
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("document expands to more than %d values", maxNodes))
	})
}

func TestParseRate(t *testing.T) {
	cases := []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"50/s", Rate{50, time.Second}, true},
		{" 600 / 1m ", Rate{600, time.Minute}, true},
		{"5/100ms", Rate{5, 100 * time.Millisecond}, true},
		{"3000/m", Rate{3000, time.Minute}, true},
		{"0/s", Rate{0, time.Second}, true},
		{"50", Rate{}, false},
		{"50/fortnight", Rate{}, false},
		{"-1/s", Rate{}, false},
		{"1.5/s", Rate{}, false},
		{"5/0s", Rate{}, false},
	}
	for _, tc := range cases {
		got, err := ParseRate(tc.in)
		if !tc.ok {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	assert.InDelta(t, 50.0, Rate{3000, time.Minute}.PerSecond(), 1e-9)
}

func TestFraction(t *testing.T) {
	cases := []struct {
		in   string
		want Fraction
		ok   bool
	}{
		{"0.05", 0.05, true},
		{"5%", 0.05, true},
		{"100 %", 1, true},
		{"1", 1, true},
		{"150%", 0, false},
		{"-0.1", 0, false},
		{"lots", 0, false},
	}
	for _, tc := range cases {
		var s struct {
			V Fraction `yaml:"v"`
		}
		d := &decoder{file: "f"}
		n := mustNode(t, "v: "+tc.in)
		d.decodeStruct(n, reflectValue(&s), nil, 0, "", nil, nil)
		if !tc.ok {
			assert.NotEmpty(t, d.errs, tc.in)
			continue
		}
		require.Empty(t, d.errs, tc.in)
		assert.InDelta(t, float64(tc.want), float64(s.V), 1e-9, tc.in)
	}
}

func TestTopology(t *testing.T) {
	topo := DefaultShape(System{Replicas: map[string]int{"order": 2}, Gateways: 2})
	cases := []struct {
		target string
		ok     bool
	}{
		{"order", true}, {"order-1", true}, {"order-2", true}, {"order-3", false}, {"order-0", false},
		{"order-01", false}, {"gateway-2", true}, {"registry-1", true}, {"registry-2", false},
		{"balancer-1", true}, {"order->product", true}, {"gateway->order-2", true},
		{"order->order", false}, {"order->kafka", false}, {"kafka", false}, {"", false}, {"-1", false},
	}
	for _, tc := range cases {
		err := topo.CheckTarget(tc.target)
		assert.Equal(t, tc.ok, err == nil, "%q: %v", tc.target, err)
	}
}

func TestSuggest(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"durration", "duration", true},
		{"latncy", "latency", true},
		{"DURATION", "duration", true},
		{"zzz", "", false},
		{"x", "", false},
	}
	for _, tc := range cases {
		got, ok := suggest(tc.in, []string{"duration", "latency", "rate", "mix"})
		assert.Equal(t, tc.ok, ok, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	assert.Equal(t, 3, levenshtein("kitten", "sitting"))
}

func TestRegisterCheck(t *testing.T) {
	require.Error(t, RegisterCheck(CheckLatency, func() CheckSpec { return &LatencyCheck{} }), "duplicate kind")
	require.Error(t, RegisterCheck("", nil))
	require.NoError(t, RegisterCheck("test_custom", func() CheckSpec { return &ThroughputCheck{} }))
	assert.Contains(t, CheckKinds(), "test_custom")
	s, err := Parse("x.yaml", []byte(minimal+"steady_state:\n  - {check: test_custom, min: 50%}\n"))
	require.NoError(t, err)
	assert.Equal(t, &ThroughputCheck{Min: 0.5}, s.SteadyState[0].Spec)
}

// TestCommonKeysAreNotShadowed guards the two-step decoding: a check or fault type with
// an attribute named like a common key (name, type, at, for, check) could never receive
// it, because the common struct takes those keys first.
func TestCommonKeysAreNotShadowed(t *testing.T) {
	for _, kind := range CheckKinds() {
		spec, err := NewCheck(kind)
		require.NoError(t, err)
		for _, f := range fieldNames(reflect.TypeOf(spec)) {
			assert.NotContains(t, checkCommon, f, "check %s", kind)
		}
	}
	fd := DefaultFaultDecoder()
	for _, kind := range fd.Kinds() {
		spec, err := fd.New(kind)
		require.NoError(t, err)
		for _, f := range fieldNames(reflect.TypeOf(spec)) {
			assert.NotContains(t, faultCommon, f, "fault %s", kind)
		}
	}
}

// TestValidateGoValue covers scenarios built in Go rather than parsed: there are no
// positions, but every problem is still reported, and nothing panics.
func TestValidateGoValue(t *testing.T) {
	s := &Scenario{File: "go", Faults: []FaultSpec{{Name: "f", Type: "crash", For: Duration(time.Second), Spec: &stubCrash{Target: "nowhere"}}}}
	var got []string
	for _, e := range s.Validate(SystemShape{}) {
		got = append(got, e.Error())
	}
	assert.Equal(t, []string{
		"go: name is empty (hint: name it after what it shows, such as replica-crash)",
		"go: description is empty (hint: say what the scenario teaches and why; workshop teachers read it aloud)",
		"go: load has neither rate nor ramp (hint: add rate: 50/s, or ramp: [{rate: 10/s, for: 5s}, ...])",
		"go: load.duration must be above 0 (hint: such as 20s)",
		"go: load.mix is empty (hint: such as {browse: 60, view_order: 20, place_order: 20})",
		`go: faults[0]: target "nowhere" is not in the topology (hint: services are balancer, broker, gateway, merchant, order, product, registry, instances <service>-<n>)`,
	}, got)
	assert.Len(t, (*Scenario)(nil).Validate(SystemShape{}), 1)
}

// TestRealFaultsDecode decodes a fault through the real registry end to end, so a change
// of the faults package's attribute names shows up here.
func TestRealFaultsDecode(t *testing.T) {
	src := minimal + `faults:
  - name: slow
    type: latency
    at: 1s
    for: 2s
    target: gateway->product
    latency: 200ms
    jitter: 500ms
  - name: split
    type: partition
    at: 4s
    for: 2s
    groups: [[order], [broker, kafka]]
`
	s, err := Parse("real.yaml", []byte(src))
	require.NoError(t, err)
	var got []string
	for _, e := range s.Validate(SystemShape{}) {
		got = append(got, e.Error())
	}
	require.Len(t, got, 2, "%v", got)
	assert.True(t, strings.HasPrefix(got[0], "real.yaml:14:13: faults[0]: jitter: "), got[0])
	assert.Equal(t, `real.yaml:19:32: faults[1]: target "kafka" is not in the topology (hint: services are balancer, broker, gateway, merchant, order, product, registry, instances <service>-<n>)`, got[1])
}

// TestMergeKeys lets authors share attributes between checks with YAML anchors and <<.
func TestMergeKeys(t *testing.T) {
	src := minimal + `x-breaker: &gp {caller: gateway, dependency: product}
faults:
  - {name: f, type: crash, at: 1s, for: 2s, target: product}
expect:
  during:
    f:
      - {check: breaker_opened, <<: *gp, within: 1s}
      - check: breaker_closed
        <<: [*gp]
        dependency: merchant
        within: 2s
`
	s, err := Parse("m.yaml", []byte(src), WithFaultDecoder(stubFaults{}))
	require.Error(t, err, "x-breaker is an unknown top-level key")
	require.Len(t, err.(ErrorList), 1)
	during := s.Expect.During["f"]
	require.Len(t, during, 2)
	assert.Equal(t, &BreakerOpenedCheck{Caller: "gateway", Dependency: "product", Within: Duration(time.Second)}, during[0].Spec)
	assert.Equal(t, &BreakerClosedCheck{Caller: "gateway", Dependency: "merchant", Within: Duration(2 * time.Second)}, during[1].Spec, "explicit keys override merged ones")
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		spec CheckSpec
		want string
	}{
		{&LatencyCheck{}, CheckLatency},
		{&MetricCheck{}, CheckMetric},
		{&CommandCheck{}, CheckCommand},
		{nil, ""},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, KindOf(tt.spec), "%T", tt.spec)
	}
}
