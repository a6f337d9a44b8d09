package system

import (
	"testing"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
)

// clusterRuntime is a container runtime that is not Docker's (a cluster's nodes).
type clusterRuntime struct{ runtime.Runtime }

func (clusterRuntime) Network() string { return "faultline-r1" }

// engineRuntime is a container runtime that says whether its containers see this
// machine's files (Docker's, with a local or a remote engine).
type engineRuntime struct {
	clusterRuntime
	local bool
}

func (e engineRuntime) BindsHostFiles() bool { return e.local }

// wrapped is a runtime wrapper (the harness's undo recorder) offering only Unwrap.
type wrapped struct{ runtime.Runtime }

func (w wrapped) Unwrap() runtime.Runtime { return w.Runtime }

// Only a container runtime that says its containers see this machine's files
// (runtime.HostFiles) gets the harness's files bind-mounted: they are not on a cluster's
// nodes, whether or not a Docker engine runs on this machine.
func TestBindsHostFiles(t *testing.T) {
	t.Setenv("DOCKER_HOST", "") // an engine on this machine's default socket
	tests := []struct {
		name string
		rt   runtime.Runtime
		want bool
	}{
		{"local processes", local.New(), false},
		{"a cluster's containers", clusterRuntime{local.New()}, false},
		{"an engine on this machine", engineRuntime{clusterRuntime{local.New()}, true}, true},
		{"a remote engine", engineRuntime{clusterRuntime{local.New()}, false}, false},
		{"an engine on this machine, wrapped", wrapped{engineRuntime{clusterRuntime{local.New()}, true}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bindsHostFiles(tt.rt); got != tt.want {
				t.Errorf("bindsHostFiles() = %t, want %t", got, tt.want)
			}
		})
	}
}
