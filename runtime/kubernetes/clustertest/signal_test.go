package clustertest

import (
	"context"

	"testing"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/system"
	"github.com/faultline-dev/faultline/system/containers"
)

// BenchmarkPauseResume times a pause and a resume of one component of the reference
// system on the cluster: two signals, each from the harness to the component's process
// inside its pod. It is the delay by which a process fault (crash, pause) lands after
// the moment the timeline stamps it.
//
//	go test -run '^$' -bench PauseResume -benchtime 20x ./runtime/kubernetes/clustertest/
func BenchmarkPauseResume(b *testing.B) {
	if cluster == nil {
		b.Skip(skip)
	}
	sys, err := containers.StartKubernetes(b.Context(), system.Spec{Dir: b.TempDir()}, containers.Kubernetes{
		Kubeconfig: cluster.Kubeconfig, Image: faultlineImage, VolumeRoot: volumeRoot,
	})
	require.NoError(b, err)
	b.Cleanup(func() { _ = sys.Stop(context.Background()) })
	require.NoError(b, sys.WaitReady(b.Context(), "product-2"))
	for b.Loop() {
		require.NoError(b, sys.Pause("product-2"))
		require.NoError(b, sys.Resume("product-2"))
	}
}
