package system

import (
	"testing"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
)

// clusterRuntime is a container runtime that is not Docker's (a cluster's nodes).
type clusterRuntime struct{ runtime.Runtime }

func (clusterRuntime) Network() string { return "faultline-r1" }

// A container runtime other than Docker's never gets the harness's files bind-mounted:
// they are not on a cluster's nodes, whether or not a Docker engine runs on this machine.
func TestBindsHostFiles(t *testing.T) {
	t.Setenv("DOCKER_HOST", "") // an engine on this machine's default socket
	tests := []struct {
		name string
		rt   runtime.Runtime
		want bool
	}{
		{"local processes", local.New(), false},
		{"a cluster's containers", clusterRuntime{local.New()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bindsHostFiles(tt.rt); got != tt.want {
				t.Errorf("bindsHostFiles() = %t, want %t", got, tt.want)
			}
		})
	}
}
