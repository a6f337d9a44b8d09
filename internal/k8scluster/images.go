package k8scluster

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/faultline-dev/faultline/runtime/images"
)

// ImageHost prefixes the names of images imported without a registry, so they can never
// be mistaken for (or pulled from) Docker Hub.
const ImageHost = "faultline.local"

// pauseRecipe is the sandbox image: a static binary that sleeps (pause/).
var pauseRecipe = images.Recipe{Repo: "faultline-pause", Package: "./internal/k8scluster/pause", Binary: "pause-static", Path: "/pause"}

// LocalImage builds r's binary in this module and returns its image named
// faultline.local/<repo>:<binary hash>, ready for Options.Images.
func LocalImage(ctx context.Context, r images.Recipe) (Image, error) {
	root, err := images.ModuleRoot(ctx, "go")
	if err != nil {
		return Image{}, err
	}
	bin, sum, err := images.Build(ctx, "go", root, r, nil)
	if err != nil {
		return Image{}, err
	}
	img, err := images.Image(r, bin, nil)
	if err != nil {
		return Image{}, err
	}
	return Image{Ref: ImageHost + "/" + r.Repo + ":" + sum, Image: img}, nil
}

// PauseImage is the pause image the cluster's containerd pins as its sandbox image.
func PauseImage(ctx context.Context) (Image, error) { return LocalImage(ctx, pauseRecipe) }

func writeTarball(path string, imgs []Image) error {
	refs := make(map[name.Reference]v1.Image, len(imgs))
	for _, im := range imgs {
		tag, err := name.NewTag(im.Ref)
		if err != nil {
			return fmt.Errorf("write images: %w", err)
		}
		refs[tag] = im.Image
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write images: %w", err)
	}
	defer f.Close()
	if err := tarball.MultiRefWrite(refs, f); err != nil {
		return fmt.Errorf("write images: %w", err)
	}
	return f.Close()
}
