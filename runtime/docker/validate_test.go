package docker

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/runtime"
)

func TestValidateSpec(t *testing.T) {
	base := func() runtime.Spec {
		return runtime.Spec{Name: "order-1", Command: BinaryPath, Container: &runtime.ContainerSpec{
			Image: "faultline:abc", Ports: []int{8080}, Ready: &runtime.HTTPReady{Port: 8080, Path: "/readyz"},
		}}
	}
	tests := []struct {
		name   string
		change func(*runtime.Spec)
		want   []string
	}{
		{"valid", func(*runtime.Spec) {}, nil},
		{"no container part uses the defaults", func(s *runtime.Spec) { s.Container = nil }, nil},
		{"name with a space", func(s *runtime.Spec) { s.Name = "order 1" }, []string{`name "order 1" is not a valid docker name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)`}},
		{"bad port and unpublished ready port", func(s *runtime.Spec) { s.Container.Ports = []int{0} }, []string{
			"container: ports[0] 0 is not a TCP port", "container: ready port 8080 is not in ports",
		}},
		{"ready path", func(s *runtime.Spec) { s.Container.Ready.Path = "readyz" }, []string{`container: ready path "readyz" does not start with '/'`}},
		{"mounts", func(s *runtime.Spec) {
			s.Container.Mounts = []runtime.Mount{
				{Target: "/data"},
				{Volume: "v", HostPath: "/srv", Target: "/data"},
				{HostPath: "srv", Target: "data"},
				{Volume: "bad/name", Target: "/data"},
			}
		}, []string{
			"container: mounts[0] has neither volume nor host path",
			`container: mounts[1] has both volume "v" and host path "/srv"`,
			`container: mounts[2] host path "srv" is not absolute`,
			`container: mounts[2] target "data" is not absolute`,
			`container: volume "bad/name" is not a valid docker name`,
		}},
		{"files and aliases", func(s *runtime.Spec) {
			s.Container.Files = []runtime.File{{Target: "config.json"}, {Target: "/config/"}}
			s.Container.Aliases = []string{"-order"}
		}, []string{
			`container: files[0] target "config.json" is not an absolute file path`,
			`container: files[1] target "/config/" is not an absolute file path`,
			`container: alias "-order" is not a valid docker name`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.change(&s)
			var got []string
			for _, err := range validate(s) {
				got = append(got, err.Error())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLabelFilter(t *testing.T) {
	tests := []struct {
		run  string
		want []string
	}{
		{"", []string{LabelManaged + "=true"}},
		{"r1", []string{LabelManaged + "=true", LabelRun + "=r1"}},
	}
	for _, tt := range tests {
		var got []string
		for v := range labelFilter(tt.run)["label"] {
			got = append(got, v)
		}
		assert.ElementsMatch(t, tt.want, got, "run %q", tt.run)
	}
}
