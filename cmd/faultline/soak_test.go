package main

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/result"
)

// An interrupted soak is aborted (exit 4), as ARCHITECTURE.md says of Ctrl-C; any other
// failure to soak is a harness error (exit 3).
func TestSoakErrExitCodes(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		want int
	}{
		{name: "interrupted", ctx: cancelled, want: 4},
		{name: "harness error", ctx: context.Background(), want: result.ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := soakErr(tt.ctx, errors.New("run soak: context canceled"))
			got := exitCode(err)
			assert.Equal(t, tt.want, got)
			assert.ErrorContains(t, err, "run soak: context canceled")
		})
	}
}
