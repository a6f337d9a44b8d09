// Package systems picks the system under test a scenario names: its own topology when it
// has one (package topology/run), the reference system otherwise (package reference).
// The harness runs whatever sut.System it is given and names neither; the commands and
// faultlinetest wire this choice in with harness.WithSystemFor(systems.For).
package systems

import (
	"github.com/faultline-dev/faultline/reference"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/sut"
	toporun "github.com/faultline-dev/faultline/topology/run"
)

// For returns a new system under test for one run of sc. command and args are the
// faultline executable the reference system's processes are re-executed from on the
// local runtime (empty: this executable with "serve").
func For(sc *scenarios.Scenario, command string, args ...string) sut.System {
	if sc.HasTopology() {
		return toporun.New(sc)
	}
	return reference.New(sc, command, args...)
}
