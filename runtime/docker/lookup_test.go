package docker

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestImageExistsNamesAMissingImageAndFindsABuiltOne(t *testing.T) {
	faultline, _ := requireImages(t)
	ctx := context.Background()
	require.NoError(t, ImageExists(ctx, faultline))
	err := ImageExists(ctx, "faultline-no-such-image:0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "find image faultline-no-such-image:0: not on this machine, and images are never pulled")
}
