package checks_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/scenarios"
)

// A kind a system's own package registers is unknown to a program that does not import
// that package: the scenario is refused on the check's line, with the kinds it does know
// as the hint, never decoded into something no evaluator judges. (This test binary
// imports no system; the reference system's consistency kind is registered by
// reference/consistency.)
func TestKindOfAnUnimportedSystemIsUnknown(t *testing.T) {
	require.NotContains(t, scenarios.CheckKinds(), "consistency")
	y := "name: unregistered\ndescription: a kind nobody registered here\nload:\n  rate: 10/s\n  duration: 5s\n  mix: {browse: 1}\n" +
		"expect:\n  overall:\n    - check: consistency\n      exactly_once: true\n"
	var err error
	sc, perr := scenarios.Parse("u.yaml", []byte(y))
	if perr != nil {
		err = perr
	} else {
		err = errors.Join(sc.Validate(scenarios.DefaultShape(sc.System))...)
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), `u.yaml:9:14: expect.overall[0].check: unknown check type "consistency" (hint: known types: breaker_closed`)
}
