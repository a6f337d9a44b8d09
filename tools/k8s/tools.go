//go:build tools

// Package k8s pins the Kubernetes release whose binaries build.sh builds for the test
// cluster (internal/k8scluster); it is its own module so the main go.mod stays untouched.
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
