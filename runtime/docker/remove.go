package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// RemoveImage removes the faultline-managed image tag (one BuildImage or
// BuildToxiproxyImage returned), so that the next build is a cold one: what `faultline
// bench startup --cold` measures. An image that is already gone is not an error; one that
// a container still uses is, and so is an image this package did not build.
func RemoveImage(ctx context.Context, tag string) error {
	p, err := newProvider(nil)
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	cli := p.Client()
	info, err := cli.ImageInspect(ctx, tag)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect image %s: %w", tag, err)
	}
	if info.Config == nil || info.Config.Labels[LabelManaged] != "true" {
		return fmt.Errorf("remove image %s: not built by faultline (no %s label)", tag, LabelManaged)
	}
	if _, err := cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove image %s: %w", tag, err)
	}
	return nil
}
