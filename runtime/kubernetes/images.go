package kubernetes

import (
	"context"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/faultline-dev/faultline/runtime/images"
)

// LocalImageHost prefixes the names of images imported into a cluster's nodes without a
// registry (the test cluster's): such a name is never pulled, so it must be on a node.
const LocalImageHost = "faultline.local"

// LocalRef is the name of recipe r's image made of the binary whose hash is sum, as it is
// imported into a cluster without a registry.
func LocalRef(r images.Recipe, sum string) string { return images.Ref(LocalImageHost, r, sum) }

// LocalImages builds faultline's and Toxiproxy's binaries from the source tree at root
// (empty: the module of the working directory) and returns the names their images have
// when imported without a registry. The build is the go command's: cached, so a second
// call costs a link check.
func LocalImages(ctx context.Context, root string) (faultline, toxiproxy string, err error) {
	return RegistryImages(ctx, root, LocalImageHost)
}

// RegistryImages builds faultline's and Toxiproxy's binaries from the source tree at root
// (empty: the module of the working directory) and returns their images' references in
// registry (HOST[:PORT][/PATH]) as faultline images push tags them (images.Ref): pushed
// from the same tree, they are the very images pushed.
func RegistryImages(ctx context.Context, root, registry string) (faultline, toxiproxy string, err error) {
	if root == "" {
		if root, err = images.ModuleRoot(ctx, "go"); err != nil {
			return "", "", err
		}
	}
	var refs []string
	for _, r := range []images.Recipe{images.Faultline, images.Toxiproxy} {
		_, sum, err := images.Build(ctx, "go", root, r, nil)
		if err != nil {
			return "", "", err
		}
		refs = append(refs, images.Ref(registry, r, sum))
	}
	return refs[0], refs[1], nil
}

// NewClientset is a clientset for cfg.
func NewClientset(cfg *rest.Config) (kubernetes.Interface, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to cluster: %w", err)
	}
	return cs, nil
}

// ImagesPresent checks that every image of refs that is never pulled (named under
// LocalImageHost) is on one of the cluster's nodes, as its kubelet reports; images from a
// registry are pulled by the kubelet and not checked.
func (r *Runtime) ImagesPresent(ctx context.Context, refs ...string) error {
	var local []string
	for _, ref := range refs {
		if strings.HasPrefix(ref, LocalImageHost+"/") {
			local = append(local, ref)
		}
	}
	if len(local) == 0 {
		return nil
	}
	nodes, err := r.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		// The harness's Role (lease.HarnessRules) does not read nodes: cluster-scoped, and
		// needed only for this early answer. A missing image then shows as its pod's
		// pull error instead.
		return nil
	}
	if err != nil {
		return fmt.Errorf("check images: list nodes: %w", err)
	}
	have := map[string]bool{}
	for _, n := range nodes.Items {
		for _, img := range n.Status.Images {
			for _, name := range img.Names {
				have[name] = true
			}
		}
	}
	var missing []string
	for _, ref := range local {
		if !have[ref] {
			missing = append(missing, ref)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("check images: %s not on any node of the cluster (import them into the nodes' container runtime, or push with faultline images push --registry and name them with --image and --toxiproxy-image)", strings.Join(missing, ", "))
	}
	return nil
}
