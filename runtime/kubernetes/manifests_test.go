package kubernetes

import (
	"path"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
)

func TestNamespaceFor(t *testing.T) {
	long := strings.Repeat("a-very-long-scenario-name-", 4)
	tests := []struct {
		name, runID, want string
	}{
		{"run id lowercased, odd characters replaced", "20261203T120000Z-replica-crash-4242", "faultline-20261203t120000z-replica-crash-4242"},
		{"underscores and dots", "a_b.c", "faultline-a-b-c"},
		{"too long: cut and hashed", long, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NamespaceFor(tt.runID)
			if !dnsLabel.MatchString(got) || len(got) > 63 {
				t.Fatalf("NamespaceFor(%q) = %q: not a namespace name", tt.runID, got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("NamespaceFor(%q) = %q, want %q", tt.runID, got, tt.want)
			}
		})
	}
	if a, b := NamespaceFor(long+"1"), NamespaceFor(long+"2"); a == b {
		t.Errorf("two long run ids share namespace %q", a)
	}
}

func testSpec() runtime.Spec {
	return runtime.Spec{
		Name: "order-1", Command: "/faultline", Args: []string{"serve", "--config", "/config/order-1.json"},
		Env:    []string{"A=1", "FAULTLINE_BIND_ANY=0"},
		Labels: map[string]string{"faultline.kind": "order", "faultline.dir": "/tmp/run"},
		Container: &runtime.ContainerSpec{
			Image: "faultline.local/faultline:abc", Ports: []int{9000, 9090},
			HostPorts: map[int]int{9090: 31090},
			Aliases:   []string{"order"},
			Mounts:    []runtime.Mount{{Volume: "data-order", Target: "/data/order"}},
			Files: []runtime.File{
				{Target: "/config/order-1.json", Content: []byte(`{}`), Mode: 0o600},
				{Target: "/config/design.yaml", Content: []byte("x: 1")},
			},
			Ready: &runtime.HTTPReady{Port: 9090, Path: "/readyz"},
		},
	}
}

func TestBuild(t *testing.T) {
	r := &Runtime{runID: "run-1", ns: "faultline-run-1", grace: 2500 * time.Millisecond, volumeRoot: "/var/lib/fl"}
	m := r.build(testSpec())

	d := m.Deployment
	if d.Name != "order-1" || d.Namespace != "faultline-run-1" || *d.Spec.Replicas != 1 {
		t.Errorf("deployment %s/%s replicas %d, want faultline-run-1/order-1 with 1", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	if got := d.Labels[lease.LabelRun]; got != "run-1" {
		t.Errorf("deployment run label = %q, want run-1", got)
	}
	if got, ok := d.Labels["faultline.dir"]; ok {
		t.Errorf("label faultline.dir = %q: a path is not a label value, want it an annotation only", got)
	}
	if got := d.Annotations["faultline.dir"]; got != "/tmp/run" {
		t.Errorf("annotation faultline.dir = %q, want /tmp/run", got)
	}
	pod := d.Spec.Template.Spec
	if pod.ShareProcessNamespace == nil || !*pod.ShareProcessNamespace {
		t.Error("pod does not share its process namespace: a signal from inside could not reach the component")
	}
	if got := *pod.TerminationGracePeriodSeconds; got != 3 {
		t.Errorf("grace = %d s, want 3 (2.5 s rounded up)", got)
	}
	c := pod.Containers[0]
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("pull policy %s, want IfNotPresent", c.ImagePullPolicy)
	}
	if c.Command[0] != "/faultline" || strings.Join(c.Args, " ") != "serve --config /config/order-1.json" {
		t.Errorf("command %v args %v", c.Command, c.Args)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["A"] != "1" || env[bindAnyEnv] != "0" || env[HoldEnv] != holdFile || len(c.Env) != 3 {
		t.Errorf("env %v: want A=1, the spec's FAULTLINE_BIND_ANY winning and the hold file", c.Env)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.IntValue() != 9090 {
		t.Errorf("readiness probe %+v, want GET :9090/readyz", p)
	}
	if !selectorMatches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("selector %v does not match the template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	// The hold of a crash outlives the container (the kubelet's restart) and not the pod.
	if hv := vols[mounts[holdDir].Name]; hv.EmptyDir == nil || path.Dir(holdFile) != holdDir {
		t.Errorf("hold volume %+v at %s, want an emptyDir holding %s", hv.VolumeSource, holdDir, holdFile)
	}
	data := vols[mounts["/data/order"].Name]
	if data.HostPath == nil || data.HostPath.Path != "/var/lib/fl/faultline-run-1/data-order" {
		t.Errorf("data volume %+v, want the node directory /var/lib/fl/faultline-run-1/data-order", data.VolumeSource)
	}
	key := vols[mounts["/config/order-1.json"].Name]
	if key.Secret == nil || key.Secret.SecretName != "order-1-files" || mounts["/config/order-1.json"].SubPath != "order-1.json" {
		t.Errorf("private file mounted from %+v, want the secret order-1-files", key.VolumeSource)
	}
	design := vols[mounts["/config/design.yaml"].Name]
	if design.ConfigMap == nil || design.ConfigMap.Name != "order-1-files" {
		t.Errorf("public file mounted from %+v, want the config map order-1-files", design.VolumeSource)
	}
	if m.Secret == nil || string(m.Secret.Data["file-0"]) != `{}` || m.ConfigMap == nil || string(m.ConfigMap.BinaryData["file-1"]) != "x: 1" {
		t.Errorf("secret %v / config map %v do not hold the files", m.Secret, m.ConfigMap)
	}

	var names []string
	for _, s := range m.Services {
		names = append(names, s.Name)
		if len(s.Spec.Ports) != 2 || !selectorMatches(s.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("service %s: ports %v selector %v", s.Name, s.Spec.Ports, s.Spec.Selector)
		}
		// A ClusterIP answers only once kube-proxy has programmed it, 1–2 s after a change:
		// a run's first connections, and those to a replaced pod, went into a black hole.
		if s.Spec.ClusterIP != corev1.ClusterIPNone || !s.Spec.PublishNotReadyAddresses {
			t.Errorf("service %s: clusterIP %q publishNotReady %v, want headless, publishing a starting pod", s.Name, s.Spec.ClusterIP, s.Spec.PublishNotReadyAddresses)
		}
	}
	if strings.Join(names, ",") != "order-1,order" {
		t.Errorf("services %v, want order-1 and its alias order", names)
	}
}

func selectorMatches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*runtime.Spec)
		want   string
	}{
		{"valid", func(*runtime.Spec) {}, ""},
		{"upper case name", func(s *runtime.Spec) { s.Name = "Order-1" }, "not a kubernetes service name"},
		{"host path", func(s *runtime.Spec) {
			s.Container.Mounts = []runtime.Mount{{HostPath: "/srv/data", Target: "/data"}}
		}, "not on the cluster's nodes"},
		{"bad alias", func(s *runtime.Spec) { s.Container.Aliases = []string{"my_alias"} }, "alias"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSpec()
			tt.mutate(&s)
			errs := validate(s)
			if tt.want == "" {
				if len(errs) > 0 {
					t.Fatalf("validate() = %v, want none", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Errorf("validate() = %v, want an error containing %q", errs, tt.want)
			}
		})
	}
}
