package reference

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/reference/consistency"
)

func TestSagaState(t *testing.T) {
	for in, want := range map[string]string{
		"pending": consistency.StatePending, "confirmed": consistency.StateConfirmed, "rejected": consistency.StateRejected,
		"released": consistency.StateReleased, "": "", "lost-in-space": "lost-in-space",
	} {
		assert.Equal(t, want, SagaState(in), in)
	}
}
