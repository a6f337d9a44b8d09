package explore

import (
	"os"
	"path/filepath"
	"testing"

	// The reference system registers its shape: validation below is `faultline validate`'s.
	_ "github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/scenarios"
)

// A minimal scenario derived from a catalog scenario, with any kind explore aims on the
// reference system, is one `faultline validate` accepts (it validates the file against
// the default system's shape, as the command does).
func TestMinimalScenariosOfTheReferenceSystemValidate(t *testing.T) {
	link := func(from, to string) Target {
		return Target{Kind: TargetLink, Name: from + "->" + to, From: from, To: to}
	}
	inst := func(name string) Target { return Target{Kind: TargetInstance, Name: name} }
	cands := []Candidate{
		{Kind: "latency", Target: link("gateway", "product")},
		{Kind: "timeout", Target: link("product", "registry")},
		{Kind: "down", Target: link("order", "merchant")},
		{Kind: "reset_peer", Target: link("order", "broker")},
		{Kind: "partition", Target: link("product", "broker")},
		{Kind: "crash", Target: inst("order-1")},
		{Kind: "pause", Target: inst("gateway-1")},
	}
	for _, file := range []string{"../scenarios/baseline.yaml", "../scenarios/compare/cascading-failure.yaml"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cands {
			for _, faults := range [][]Candidate{{c}, {c, cands[0]}} {
				b, err := derive(src, file, variant{name: "derived", description: "d", seed: 3, shape: DefaultShape,
					faults: faults, design: "../designs/no-breaker.yaml"})
				if err != nil {
					t.Fatalf("%s %s: %v", file, c.Key(), err)
				}
				if len(faults) == 2 && c == cands[0] {
					continue
				}
				out := filepath.Join(t.TempDir(), "derived.yaml")
				if err := os.WriteFile(out, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if errs := scenarios.ValidateFile(out, scenarios.SystemShape{}); len(errs) > 0 {
					t.Errorf("%s with %d fault(s), first %s: validate: %v\n%s", file, len(faults), c.Key(), errs, b)
				}
			}
		}
	}
}
