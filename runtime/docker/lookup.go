package docker

import (
	"context"
	"fmt"
)

// ImageExists reports, as an error, that the engine does not hold image: nothing can be
// pulled on the machines Faultline runs on, so a missing image is a mistake to name before
// a run starts, with what to do about it.
func ImageExists(ctx context.Context, image string) error {
	p, err := newProvider(nil)
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	found, err := hasImage(ctx, p.Client(), image)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("find image %s: not on this machine, and images are never pulled (build it locally, or use build: with host binaries)", image)
	}
	return nil
}
