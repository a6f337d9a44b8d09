package runtime_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
)

// wrapped is a runtime wrapper of the kind a harness puts around a runtime (a recorder):
// it declares no capability of its own and unwraps to what it wraps.
type wrapped struct{ runtime.Runtime }

func (w wrapped) Unwrap() runtime.Runtime { return w.Runtime }

// containers declares the container capability on top of a local runtime, the way a
// container runtime does.
type containers struct{ runtime.Runtime }

func (containers) Network() string { return "run-net" }

// opaque wraps a runtime without offering Unwrap: its capabilities are hidden.
type opaque struct{ runtime.Runtime }

// TestAsRuntimeFindsDeclaredCapabilities: a capability is found on the runtime or through
// any depth of unwrapping wrappers, and never through a wrapper that does not unwrap.
func TestAsRuntimeFindsDeclaredCapabilities(t *testing.T) {
	loc := local.New()
	t.Cleanup(func() { _ = loc.Close(context.Background()) })
	ctr := containers{loc}
	tests := []struct {
		name          string
		rt            runtime.Runtime
		containerized bool
	}{
		{"local", loc, false},
		{"wrapped local", wrapped{loc}, false},
		{"container runtime", ctr, true},
		{"wrapped container runtime", wrapped{ctr}, true},
		{"twice wrapped container runtime", wrapped{wrapped{ctr}}, true},
		{"opaque wrapper", opaque{ctr}, false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, got := runtime.AsRuntime[runtime.Containerized](tt.rt)
			assert.Equal(t, tt.containerized, got)
			if got {
				assert.Equal(t, "run-net", c.Network())
			}
		})
	}
}

func TestLastLine(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 500)
	tests := []struct {
		name, content, want string
	}{
		{"missing file", "", ""},
		{"empty", "\n\n", ""},
		{"last of several", "starting\n{\"msg\":\"component failed\"}\nrun product-1: listen tcp: address already in use\n\n", "run product-1: listen tcp: address already in use"},
		{"no trailing newline", "a\nb", "b"},
		{"long line keeps its end", long + "END\n", "…" + long[103:] + "END"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint(i))
			if tt.name != "missing file" {
				require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o644))
			}
			assert.Equal(t, tt.want, runtime.LastLine(path))
		})
	}
}

// A runtime restarts from the Spec it kept: a caller changing its own copy afterwards
// must not change what a restart starts.
func TestCloneIsDeep(t *testing.T) {
	orig := runtime.Spec{
		Name: "a", Command: "x", Args: []string{"1"}, Env: []string{"K=V"}, Labels: map[string]string{"k": "v"},
		Container: &runtime.ContainerSpec{
			Ports: []int{80}, HostPorts: map[int]int{80: 8080}, Aliases: []string{"b"},
			Mounts: []runtime.Mount{{Volume: "v", Target: "/v"}}, Files: []runtime.File{{Target: "/f"}},
			Ready: &runtime.HTTPReady{Port: 80, Path: "/readyz"},
		},
	}
	c := orig.Clone()
	c.Args[0], c.Env[0], c.Labels["k"] = "changed", "K=changed", "changed"
	c.Container.Ports[0], c.Container.HostPorts[80], c.Container.Aliases[0] = 1, 1, "changed"
	c.Container.Mounts[0].Target, c.Container.Files[0].Target, c.Container.Ready.Path = "/x", "/x", "/x"
	c.Container.Image = "changed"

	want := runtime.Spec{
		Name: "a", Command: "x", Args: []string{"1"}, Env: []string{"K=V"}, Labels: map[string]string{"k": "v"},
		Container: &runtime.ContainerSpec{
			Ports: []int{80}, HostPorts: map[int]int{80: 8080}, Aliases: []string{"b"},
			Mounts: []runtime.Mount{{Volume: "v", Target: "/v"}}, Files: []runtime.File{{Target: "/f"}},
			Ready: &runtime.HTTPReady{Port: 80, Path: "/readyz"},
		},
	}
	if got := orig; !reflect.DeepEqual(got, want) {
		t.Errorf("original changed through its clone:\ngot  %+v\nwant %+v", got, want)
	}

	if got := (runtime.Spec{Name: "p"}).Clone().Container; got != nil {
		t.Errorf("Clone of a process spec: container %+v, want nil", got)
	}
	if got := (runtime.Spec{Name: "p"}).ContainerClone().Container; got == nil {
		t.Error("ContainerClone: container nil, want an empty one")
	}
}
