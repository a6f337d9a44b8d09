package kubernetes

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"

	"github.com/faultline-dev/faultline/runtime/kubernetes/lease/leasetest"
)

// reaperReady is a clientset whose Deployments report one available replica once
// created, as the reaper's does on a cluster (lease.Start waits for it).
func reaperReady() *fake.Clientset {
	cs := newClientset()
	cs.PrependReactor("create", "deployments", func(a k8stesting.Action) (bool, kruntime.Object, error) {
		a.(k8stesting.CreateAction).GetObject().(*appsv1.Deployment).Status.AvailableReplicas = 1
		return false, nil, nil
	})
	return cs
}

// The run's namespace and objects carry the lease package's keys, so that lease.Stale
// (and with it faultline clean --kubernetes) finds a dead run of this runtime by them.
func TestRunIsLabelledWithTheLeaseKeys(t *testing.T) {
	// Not a label value: too long, and a character labels refuse.
	runID := "20261203T120000Z-" + strings.Repeat("replica-crash-", 5) + "/x"
	r := newFake(t, WithRunID(runID), WithStartTimeout(5*time.Second))
	ctx := context.Background()
	ns, err := r.cs.CoreV1().Namespaces().Get(ctx, r.ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lease.NamespaceLabels(runID) {
		if ns.Labels[k] != v {
			t.Errorf("namespace label %s = %q, want %q", k, ns.Labels[k], v)
		}
	}
	if got := ns.Annotations[lease.AnnotationRun]; got != runID {
		t.Errorf("namespace annotation %s = %q, want the run id", lease.AnnotationRun, got)
	}
	kubelet(t, r, true)
	if _, err := r.Start(ctx, testSpec()); err != nil {
		t.Fatal(err)
	}
	d, err := r.cs.AppsV1().Deployments(r.ns).Get(ctx, "order-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []map[string]string{d.Labels, d.Spec.Template.Labels} {
		if l[lease.LabelManaged] != "true" || l[lease.LabelRun] != lease.RunLabelValue(runID) || l["dev.faultline.name"] != "order-1" {
			t.Errorf("labels %v: want %s=true, %s=%s and dev.faultline.name=order-1", l, lease.LabelManaged, lease.LabelRun, lease.RunLabelValue(runID))
		}
	}
	if got := d.Annotations[lease.AnnotationRun]; got != runID {
		t.Errorf("deployment annotation %s = %q, want the run id", lease.AnnotationRun, got)
	}
	// An hour on, the Lease is long expired: the next command's Stale finds the run.
	stale, err := lease.Stale(ctx, r.cs, lease.WithStaleClock(clocktesting.NewFakePassiveClock(time.Now().Add(time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 1 || stale[0].Namespace != r.ns || stale[0].RunID != runID {
		t.Errorf("lease.Stale() = %+v, want the run's namespace %s with run id %s", stale, r.ns, runID)
	}
}

// New starts the run's Lease and reaper once the namespace exists: the reaper runs the
// run's image, pulled if not present, and dials a loopback API server from the node's
// network; WithLeaseOptions comes last.
func TestNewStartsLeaseAndReaper(t *testing.T) {
	tests := []struct {
		name, host string
		server     string // the reaper's --server, "" for none
	}{
		{"loopback api server", "https://127.0.0.1:6443", "https://127.0.0.1:6443"},
		{"localhost without a scheme", "localhost:6443", "https://localhost:6443"},
		{"ipv6 loopback", "https://[::1]:6443", "https://[::1]:6443"},
		{"a remote api server: in-cluster address", "https://k8s.example:6443", ""},
		{"a node's address is not loopback", "https://10.245.0.1:6443", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cs := reaperReady()
			r, err := New(ctx, WithClient(cs, &rest.Config{Host: tt.host}), WithRunID("run-1"), WithImage("reg.example/faultline:abc"),
				WithLeaseOptions(lease.WithTTL(5*time.Second)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close(context.Background()) })
			l, err := cs.CoordinationV1().Leases(r.ns).Get(ctx, lease.LeaseName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the run's lease: %v", err)
			}
			if h := l.Spec.HolderIdentity; h == nil || *h != "run-1" || *l.Spec.LeaseDurationSeconds != 5 {
				t.Errorf("lease holder %v ttl %d, want run-1 and WithLeaseOptions' 5 s", h, *l.Spec.LeaseDurationSeconds)
			}
			d, err := cs.AppsV1().Deployments(r.ns).Get(ctx, lease.ReaperName, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("the reaper: %v", err)
			}
			pod := d.Spec.Template.Spec
			c := pod.Containers[0]
			if c.Image != "reg.example/faultline:abc" || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("reaper image %s pull %s, want the run's image, IfNotPresent", c.Image, c.ImagePullPolicy)
			}
			server := ""
			if i := slices.Index(c.Args, "--server"); i >= 0 && i+1 < len(c.Args) {
				server = c.Args[i+1]
			}
			if server != tt.server || pod.HostNetwork != (tt.server != "") {
				t.Errorf("reaper --server %q host network %t, want %q and %t", server, pod.HostNetwork, tt.server, tt.server != "")
			}
		})
	}
}

// A Lease that cannot be started leaves no namespace behind.
func TestNewDeletesNamespaceWhenLeaseFails(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*fake.Clientset)
		opts  []Option
		want  string
	}{
		{"no image for the reaper", func(*fake.Clientset) {}, nil, "reaper image"},
		{"the lease refused", func(cs *fake.Clientset) {
			cs.PrependReactor("create", "leases", func(k8stesting.Action) (bool, kruntime.Object, error) {
				return true, nil, apierrors.NewForbidden(coordinationv1.Resource("leases"), lease.LeaseName, errors.New("no"))
			})
		}, []Option{WithImage("img")}, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := reaperReady()
			tt.setup(cs)
			_, err := New(context.Background(), append([]Option{WithClient(cs, nil), WithRunID("run-1")}, tt.opts...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New() = %v, want an error saying %q", err, tt.want)
			}
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), NamespaceFor("run-1"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("namespace after a failed New: %v, want not found", err)
			}
		})
	}
}

// Close stops the Lease and removes the reaper before it deletes the namespace (a reaper
// that saw the Lease go would race it), then kills the pods at once.
func TestCloseStopsLeaseBeforeDeletingNamespace(t *testing.T) {
	cs := reaperReady()
	r, err := New(context.Background(), WithClient(cs, nil), WithRunID("run-1"), WithImage("img"))
	if err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, a := range cs.Actions() {
		res := a.GetResource().Resource
		switch {
		case a.GetVerb() == "delete" && (res == "deployments" || res == "leases" || res == "namespaces"):
			order = append(order, "delete "+res)
		case a.GetVerb() == "delete-collection" && res == "pods":
			order = append(order, "kill pods")
			if g := a.(k8stesting.DeleteCollectionActionImpl).DeleteOptions.GracePeriodSeconds; g == nil || *g != 0 {
				t.Errorf("pods deleted with grace period %v, want 0", g)
			}
		}
	}
	if want := []string{"delete deployments", "delete leases", "delete namespaces", "kill pods"}; !slices.Equal(order, want) {
		t.Errorf("Close's calls %q, want %q", order, want)
	}
	select {
	case <-r.LeaseLost():
		t.Error("LeaseLost closed by a Close")
	default:
	}
}

// LeaseLost closes once renewals have failed for a whole TTL, not before.
func TestLeaseLost(t *testing.T) {
	cs := reaperReady()
	// Every renewal fails (a reactor added before New: the fake's reactors are not safe
	// to add while its clients run).
	cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, kruntime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	fc := clocktesting.NewFakeClock(time.Now())
	r, err := New(context.Background(), WithClient(cs, nil), WithRunID("run-1"),
		WithLeaseOptions(lease.WithoutReaper(), lease.WithTTL(3*time.Second), lease.WithClock(fc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	step := func() {
		t.Helper()
		// Wait for the renewal loop's ticker before stepping the clock past it.
		deadline := time.Now().Add(5 * time.Second)
		for !fc.HasWaiters() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		fc.Step(time.Second)
	}
	step()
	step()
	select {
	case <-r.LeaseLost():
		t.Fatal("LeaseLost closed 2 s into a 3 s TTL")
	case <-time.After(100 * time.Millisecond):
	}
	step()
	select {
	case <-r.LeaseLost():
	case <-time.After(5 * time.Second):
		t.Fatal("LeaseLost not closed after a whole TTL of failed renewals")
	}
}

// Every call the runtime makes to start a run, a component and close it is one the
// harness's rights (lease.HarnessRules, deploy/kubernetes/rbac.yaml) allow.
func TestHarnessRulesCoverRuntimeCalls(t *testing.T) {
	cs := reaperReady()
	r, err := New(context.Background(), WithClient(cs, nil), WithRunID("run-1"), WithImage("img"), WithStartTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	kubelet(t, r, true)
	s := testSpec()
	s.Container.HostPorts = nil
	if _, err := r.Start(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	leasetest.Covered(t, "the runtime", lease.HarnessRules(), cs.Actions(), false)
}

// WithLeaseTTL passes a flag through: 0 is the default TTL, anything else the Lease's.
func TestWithLeaseTTL(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want int
	}{{0, 0}, {5 * time.Second, 1}} {
		var r Runtime
		WithLeaseTTL(tc.ttl)(&r)
		if got := len(r.leaseOpts); got != tc.want {
			t.Errorf("WithLeaseTTL(%v): %d lease options, want %d", tc.ttl, got, tc.want)
		}
	}
}
