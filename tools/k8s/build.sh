#!/usr/bin/env bash
# Builds the single-node test cluster's binaries (internal/k8scluster) once into a cache
# outside the clone, keyed by the versions below: kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy and kubelet from this module's k8s.io/kubernetes, containerd
# v2 with its runc shim and ctr, and the CNI plugins. A complete key directory is skipped.
# Cold: ~30 min on 2 cores (kube-apiserver alone ~18 min); warm Go build cache: ~13 s a binary.
#
#   tools/k8s/build.sh            # build into ${FAULTLINE_K8S_CACHE:-/var/cache/faultline-k8s}/<key>
#   tools/k8s/build.sh --print-dir
#
# Keep these in step with internal/k8scluster (versions.go; a test compares them).
set -euo pipefail
KUBERNETES=v1.37.2
CONTAINERD=v2.4.2
CNI=v1.10.0
KEY="kubernetes-${KUBERNETES}_containerd-${CONTAINERD}_cni-${CNI}"
cache="${FAULTLINE_K8S_CACHE:-/var/cache/faultline-k8s}"
out="$cache/$KEY"
if [[ "${1:-}" == "--print-dir" ]]; then echo "$out"; exit 0; fi
if [[ -f "$out/.complete" ]]; then
  echo "k8s binaries present: $out"
  exit 0
fi
GO="${GO:-go}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$out/cni"
cd "$here"
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet; do
  s=$(date +%s)
  "$GO" build -mod=mod -trimpath -ldflags="-s -w" -o "$out/$c" "k8s.io/kubernetes/cmd/$c"
  echo "$c $(( $(date +%s) - s ))s"
done
s=$(date +%s)
# no_btrfs: the btrfs snapshotter needs C headers; the cluster uses the native snapshotter.
GOBIN="$out" "$GO" install -tags no_btrfs -trimpath -ldflags="-s -w" \
  "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD" \
  "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD"
echo "containerd $(( $(date +%s) - s ))s"
s=$(date +%s)
CGO_ENABLED=0 GOBIN="$out/cni" "$GO" install -trimpath -ldflags="-s -w" \
  "github.com/containernetworking/plugins/plugins/main/bridge@$CNI" \
  "github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI" \
  "github.com/containernetworking/plugins/plugins/main/loopback@$CNI" \
  "github.com/containernetworking/plugins/plugins/meta/portmap@$CNI"
echo "cni $(( $(date +%s) - s ))s"
touch "$out/.complete"
echo "k8s binaries built: $out"
