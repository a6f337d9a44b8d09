package reference

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/checks"
)

func TestSagaState(t *testing.T) {
	for in, want := range map[string]string{
		"pending": checks.StatePending, "confirmed": checks.StateConfirmed, "rejected": checks.StateRejected,
		"released": checks.StateReleased, "": "", "lost-in-space": "lost-in-space",
	} {
		assert.Equal(t, want, SagaState(in), in)
	}
}
