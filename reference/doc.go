// Package reference is the reference system's adapter to the framework: everything the
// harness must know about the online shop under reference-services/ and nothing a user's
// own system needs. It holds the shop's user journeys for loadgen and the list of its
// proxied links that validation checks link faults against (registered with scenarios when
// this package is imported) and that the interposer creates. The framework packages
// (harness, checks, loadgen, faults, scenarios) name no service of the shop; they learn it
// from here.
package reference
