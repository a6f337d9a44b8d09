package reports

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/result"
)

// A check whose awaited moment never came has no figure to show; a skipped one neither.
func TestFigureTextNeverObserved(t *testing.T) {
	tests := []struct {
		c    result.Check
		want string
	}{
		{result.Check{Never: true, Figure: -1, Op: "<=", Threshold: 3, Unit: "s"}, "never observed vs <= 3 s"},
		{result.Check{Skipped: true}, "not evaluated"},
		{result.Check{Figure: 3.5, Op: "<=", Threshold: 3, Unit: "s"}, "3.5 s vs <= 3 s"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, figureVsBound(tt.c))
	}
}
