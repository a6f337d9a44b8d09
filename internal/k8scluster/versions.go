package k8scluster

import (
	"os"
	"path/filepath"
)

// The releases tools/k8s/build.sh builds; the cache directory is keyed by them so a new
// release never runs an old binary.
const (
	KubernetesVersion = "v1.37.2"
	ContainerdVersion = "v2.4.2"
	CNIVersion        = "v1.10.0"
)

// CacheKey names the directory under the cache that holds one set of binaries.
const CacheKey = "kubernetes-" + KubernetesVersion + "_containerd-" + ContainerdVersion + "_cni-" + CNIVersion

// DefaultCache is where tools/k8s/build.sh puts the binaries unless FAULTLINE_K8S_CACHE
// says otherwise: outside the clone, so every worktree shares one 30-minute build.
const DefaultCache = "/var/cache/faultline-k8s"

// BinDir is the directory of this release's binaries (cni/ below it).
func BinDir() string {
	cache := os.Getenv("FAULTLINE_K8S_CACHE")
	if cache == "" {
		cache = DefaultCache
	}
	return filepath.Join(cache, CacheKey)
}

// binaries are the files a cluster needs from BinDir.
var binaries = []string{
	"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet",
	"containerd", "containerd-shim-runc-v2", "ctr",
	"cni/bridge", "cni/host-local", "cni/loopback",
}
