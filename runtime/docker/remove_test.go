package docker

import (
	"context"
	"errors"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRemoveImage(t *testing.T) {
	_, toxi := requireImages(t)
	ctx := context.Background()
	p, err := newProvider(nil)
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	cli := p.Client()
	exists := func(ref string) bool {
		imgs, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", ref)})
		require.NoError(t, err)
		return len(imgs.Items) > 0
	}

	// A second tag of a built image stands in for a cached build, so the test removes
	// nothing another test still needs.
	tag := ToxiproxyImageRepo + ":remove-test-" + NewRunID()
	_, err = cli.ImageTag(ctx, client.ImageTagOptions{Source: toxi, Target: tag})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{}) })
	require.True(t, exists(tag))

	require.NoError(t, RemoveImage(ctx, tag))
	assert.False(t, exists(tag), "the tag is gone")
	assert.True(t, exists(toxi), "the image under its own tag stays")
	assert.NoError(t, RemoveImage(ctx, tag), "removing a missing image is not an error")
}

func TestIsRemovalInProgress(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("Error response from daemon: removal of container 3f2a is already in progress"), true},
		{errors.New("Error response from daemon: No such container: 3f2a"), false},
	} {
		if got := isRemovalInProgress(tc.err); got != tc.want {
			t.Errorf("isRemovalInProgress(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
