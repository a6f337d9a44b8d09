package explore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/scenarios"
)

const exploredYAML = `name: shop
description: a shop under load
system:
  design: designs/d.yaml
seed: 5
load:
  rate: 40/s
  duration: 30s
  mix: {browse: 1}
faults:
  - name: old-fault
    type: down
    at: 5s
    for: 5s
    target: api->db
steady_state:
  - check: error_rate
    max: 1%
expect:
  during:
    old-fault:
      - check: fault_landed
      - name: browse-fast
        check: latency
        percentile: p50
        max: 300ms
  overall:
    - check: throughput
      min: 90%
expect_failure:
  check: browse-fast
  explanation: scripted
`

func TestDeriveKeepsTheScenarioAndReplacesItsFaults(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "designs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "designs", "d.yaml"), []byte("name: d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "sub", "shop.yaml")
	c := Candidate{Kind: "latency", Target: Target{Kind: TargetLink, Name: "api->cache", From: "api", To: "cache"}}
	b, err := derive([]byte(exploredYAML), file, variant{
		name: "shop-latency-api-cache", description: "found", seed: 9,
		shape: Shape{Before: time.Second, Hold: 2 * time.Second, After: 3 * time.Second}, faults: []Candidate{c},
	})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenarios.Parse("derived.yaml", b)
	if err != nil {
		t.Fatalf("derived scenario does not parse: %v\n%s", err, b)
	}
	if sc.Name != "shop-latency-api-cache" || sc.Seed != 9 || sc.Load.Duration.Std() != 6*time.Second {
		t.Errorf("name, seed, duration: got %s, %d, %s; want shop-latency-api-cache, 9, 6s", sc.Name, sc.Seed, sc.Load.Duration.Std())
	}
	if got, want := sc.System.Design.Path, filepath.Join(dir, "designs", "d.yaml"); got != want {
		t.Errorf("design: got %s, want %s (found in a parent of the scenario's directory)", got, want)
	}
	if len(sc.Faults) != 1 {
		t.Fatalf("faults: got %d, want 1", len(sc.Faults))
	}
	f := sc.Faults[0]
	if f.Name != "latency-api-cache" || f.Type != "latency" || f.At.Std() != time.Second || f.For.Std() != 2*time.Second {
		t.Errorf("fault: got %s %s at %s for %s; want latency-api-cache latency at 1s for 2s", f.Name, f.Type, f.At.Std(), f.For.Std())
	}
	if sc.ExpectFailure != nil {
		t.Error("expect_failure kept: a scripted expected failure would hide what explore finds")
	}
	during := sc.Expect.During["latency-api-cache"]
	if len(during) != 1 || during[0].Name != "browse-fast" {
		t.Errorf("during checks of the new fault: got %+v, want only browse-fast (the load check; fault_landed was the old fault's)", during)
	}
	if _, ok := sc.Expect.During["old-fault"]; ok {
		t.Error("the old fault's during list is kept")
	}
	if len(sc.SteadyState) != 1 || len(sc.Expect.Overall) != 1 {
		t.Errorf("steady state and overall checks: got %d and %d, want 1 and 1", len(sc.SteadyState), len(sc.Expect.Overall))
	}
}

func TestDeriveRefusesARamp(t *testing.T) {
	src := strings.Replace(exploredYAML, "  rate: 40/s\n", "  ramp:\n    - {rate: 10/s, for: 5s}\n", 1)
	_, err := derive([]byte(src), "shop.yaml", variant{name: "x", shape: DefaultShape})
	if err == nil || !strings.Contains(err.Error(), "ramp") {
		t.Errorf("got %v, want an error about the ramp", err)
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"latency gateway->product":             "latency-gateway-product",
		"reset_peer order->broker + crash o-1": "reset-peer-order-broker-crash-o-1",
		"--x--":                                "x",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShapeValidate(t *testing.T) {
	for _, tc := range []struct {
		shape Shape
		kinds []string
		want  string
	}{
		{DefaultShape, DefaultKinds, ""},
		{Shape{Before: time.Second, Hold: 2 * time.Second, After: time.Second}, []string{"down", "crash"}, ""},
		{Shape{Before: time.Second, Hold: 2 * time.Second, After: time.Second}, []string{"latency"}, "too short to measure a latency"},
		{Shape{Before: 0, Hold: 3 * time.Second, After: time.Second}, []string{"down"}, "must all be positive"},
	} {
		err := tc.shape.Validate(tc.kinds)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v %v: got %v, want nil", tc.shape, tc.kinds, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v %v: got %v, want an error with %q", tc.shape, tc.kinds, err, tc.want)
		}
	}
}
