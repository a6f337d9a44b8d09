package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunRuntimeFlags(t *testing.T) {
	tests := []struct {
		name, runtime, image string
		toxiproxy            string
		leaseTTL             time.Duration
		wantOpts             int
		wantErr              string
	}{
		{name: "the scenario decides", wantOpts: 0},
		{name: "an image for scenarios on docker", image: "faultline:abc", wantOpts: 1},
		{name: "local", runtime: "local", wantOpts: 1},
		{name: "an image is meaningless locally", runtime: "local", image: "faultline:abc", wantErr: "--image needs --runtime docker"},
		{name: "kubernetes with named images", runtime: "kubernetes", image: "reg.example/faultline:abc", toxiproxy: "reg.example/faultline-toxiproxy:def", wantOpts: 2},
		{name: "kubernetes with a lease ttl", runtime: "kubernetes", image: "reg.example/faultline:abc", toxiproxy: "reg.example/faultline-toxiproxy:def", leaseTTL: 15 * time.Second, wantOpts: 2},
		{name: "a lease ttl a Lease cannot hold", runtime: "kubernetes", image: "reg.example/faultline:abc", toxiproxy: "reg.example/faultline-toxiproxy:def", leaseTTL: 1500 * time.Millisecond, wantErr: "--kube-lease-ttl: lease ttl 1.5s: must be whole seconds, at least 3s"},
		{name: "unknown runtime", runtime: "nomad", wantErr: `--runtime "nomad": want local, docker or kubernetes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := runRuntimeFlags{runtime: tt.runtime, image: tt.image, kube: kubeFlags{toxiproxyImage: tt.toxiproxy, leaseTTL: tt.leaseTTL}}
			got, err := f.options(context.Background(), io.Discard)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Equal(t, 3, exitCode(err), "a usage error")
				return
			}
			require.NoError(t, err)
			assert.Len(t, got, tt.wantOpts)
		})
	}
}
