package kubernetes

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	ktesting "k8s.io/client-go/testing"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
)

// kubelet plays the part of a node for a fake clientset: it makes the pod of every
// Deployment and reports it running and ready, as a kubelet would.
func kubelet(t *testing.T, r *Runtime, ready bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		made := map[string]bool{}
		for ctx.Err() == nil {
			ds, err := r.cs.AppsV1().Deployments(r.ns).List(ctx, metav1.ListOptions{})
			if err == nil {
				for _, d := range ds.Items {
					if made[d.Name] {
						continue
					}
					made[d.Name] = true
					pod := &corev1.Pod{
						ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-abc", Namespace: r.ns, Labels: d.Spec.Template.Labels, CreationTimestamp: metav1.Now()},
						Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
							Name: ContainerName, Ready: ready, ContainerID: "containerd://1",
							State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
						}}},
					}
					_, _ = r.cs.CoreV1().Pods(r.ns).Create(ctx, pod, metav1.CreateOptions{})
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// newClientset is a fake clientset that deletes collections of pods by label, as the API
// server does (the fake's own tracker keeps them): lease.KillPods relies on it.
func newClientset(objs ...k8sruntime.Object) *fake.Clientset {
	cs := fake.NewClientset(objs...)
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	cs.PrependReactor("delete-collection", "pods", func(a ktesting.Action) (bool, k8sruntime.Object, error) {
		dc := a.(ktesting.DeleteCollectionAction)
		sel := dc.GetListRestrictions().Labels
		list, err := cs.Tracker().List(pods, corev1.SchemeGroupVersion.WithKind("Pod"), dc.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		for _, p := range list.(*corev1.PodList).Items {
			if sel == nil || sel.Matches(labels.Set(p.Labels)) {
				if err := cs.Tracker().Delete(pods, p.Namespace, p.Name); err != nil {
					return true, nil, err
				}
			}
		}
		return true, nil, nil
	})
	return cs
}

func newFake(t *testing.T, opts ...Option) *Runtime {
	t.Helper()
	return newFakeOn(t, newClientset(), opts...)
}

// newFakeOn is newFake on cs, whose reactors are set before the runtime's informers run.
func newFakeOn(t *testing.T, cs *fake.Clientset, opts ...Option) *Runtime {
	t.Helper()
	// No reaper: a fake clientset runs no pod (TestNewStartsLeaseAndReaper has one).
	r, err := New(context.Background(), append([]Option{WithClient(cs, nil), WithRunID("20261203T120000Z-test-1"),
		WithLeaseOptions(lease.WithoutReaper())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func TestStartAndClose(t *testing.T) {
	r := newFake(t, WithStartTimeout(5*time.Second))
	ns, err := r.cs.CoreV1().Namespaces().Get(context.Background(), r.ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("run namespace: %v", err)
	}
	if ns.Labels[lease.LabelRun] != "20261203T120000Z-test-1" || ns.Labels[lease.LabelManaged] != "true" {
		t.Errorf("namespace labels %v, want the run id and managed", ns.Labels)
	}
	kubelet(t, r, true)
	s := testSpec()
	s.Container.HostPorts = nil
	p, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Running() {
		t.Error("Running() = false after a ready start")
	}
	for _, name := range []string{"order-1", "order"} {
		if _, err := r.cs.CoreV1().Services(r.ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
	}
	if _, err := r.cs.CoreV1().Secrets(r.ns).Get(context.Background(), "order-1-files", metav1.GetOptions{}); err != nil {
		t.Errorf("secret: %v", err)
	}
	addr, err := p.(runtime.HostPorter).HostPort(9090)
	if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("HostPort(9090) = %q, %v; want a loopback address", addr, err)
	}
	if _, err := r.Start(context.Background(), s); err == nil {
		t.Error("a second Start of order-1 succeeded")
	}
	st, err := p.(runtime.Inspector).State(context.Background())
	if err != nil || !st.Running || st.Paused {
		t.Errorf("State() = %+v, %v; want running, not paused", st, err)
	}

	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.cs.CoreV1().Namespaces().Get(context.Background(), r.ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace after Close: %v, want not found", err)
	}
	if _, err := r.Start(context.Background(), testSpec()); !errors.Is(err, runtime.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	// The forwarder is gone with the runtime.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("forwarder %s still listens after Close", addr)
	}
}

// Close returns once the system's pods are gone, leaving a namespace still being
// deleted to its controller; pods that do not go make it fail at its deadline.
func TestCloseEndsThePodsNotTheNamespace(t *testing.T) {
	tests := []struct {
		name     string
		podsStay bool
		wantErr  string
	}{
		{name: "pods killed, namespace terminating"},
		{name: "pods that stay", podsStay: true, wantErr: "wait for the pods of namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := newClientset()
			// As the API server does: a namespace with content is first marked, and
			// goes only once its controller has emptied it.
			cs.PrependReactor("delete", "namespaces", func(a ktesting.Action) (bool, k8sruntime.Object, error) {
				ns, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("namespaces"), "", a.(ktesting.DeleteAction).GetName())
				if err != nil {
					return true, nil, err
				}
				n := ns.(*corev1.Namespace).DeepCopy()
				now := metav1.Now()
				n.DeletionTimestamp = &now
				return true, nil, cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("namespaces"), n, "")
			})
			if tt.podsStay {
				cs.PrependReactor("delete-collection", "pods", func(ktesting.Action) (bool, k8sruntime.Object, error) {
					return true, nil, nil
				})
			}
			r := newFakeOn(t, cs)
			kubelet(t, r, true)
			if _, err := r.Start(context.Background(), testSpec()); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := r.Close(ctx)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Close() = %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Close() = %v", err)
			}
			pods, err := cs.CoreV1().Pods(r.ns).List(context.Background(), metav1.ListOptions{})
			if err != nil || len(pods.Items) != 0 {
				t.Errorf("pods after Close: %d, %v; want none", len(pods.Items), err)
			}
			ns, err := cs.CoreV1().Namespaces().Get(context.Background(), r.ns, metav1.GetOptions{})
			if err != nil || ns.DeletionTimestamp == nil {
				t.Errorf("namespace after Close: %v, %v; want it there and being deleted", ns, err)
			}
		})
	}
}

func TestStartWaitsForReadiness(t *testing.T) {
	r := newFake(t, WithStartTimeout(time.Second))
	kubelet(t, r, false) // running, never ready
	_, err := r.Start(context.Background(), testSpec())
	if err == nil || !strings.Contains(err.Error(), "ready") {
		t.Fatalf("Start of a never-ready pod = %v, want a readiness timeout", err)
	}
}

func TestStartFailsOnMissingImage(t *testing.T) {
	r := newFake(t, WithStartTimeout(10*time.Second))
	go func() {
		for {
			ds, _ := r.cs.AppsV1().Deployments(r.ns).List(context.Background(), metav1.ListOptions{})
			if ds != nil && len(ds.Items) > 0 {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: "order-1-x", Namespace: r.ns, Labels: ds.Items[0].Spec.Template.Labels},
					Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
						Name:  ContainerName,
						State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "image not present"}},
					}}},
				}
				_, _ = r.cs.CoreV1().Pods(r.ns).Create(context.Background(), pod, metav1.CreateOptions{})
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	began := time.Now()
	_, err := r.Start(context.Background(), testSpec())
	if err == nil || !strings.Contains(err.Error(), "ErrImageNeverPull") {
		t.Fatalf("Start = %v, want the pod's image error", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Start failed after %s, want at once (not at the start timeout)", took)
	}
}

func TestClean(t *testing.T) {
	cs := newClientset()
	for _, run := range []string{"run-a", "run-b"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: NamespaceFor(run), Labels: lease.NamespaceLabels(run)}}
		if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	other := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := Clean(context.Background(), cs, "run-a")
	if err != nil || len(got) != 1 || got[0] != "namespace faultline-run-a" {
		t.Fatalf("Clean(run-a) = %v, %v; want namespace faultline-run-a", got, err)
	}
	list, _ := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	var left []string
	for _, ns := range list.Items {
		left = append(left, ns.Name)
	}
	if strings.Join(left, ",") != "faultline-run-b,someone-elses" {
		t.Errorf("namespaces left %v, want run-b's and the unmanaged one", left)
	}
}

func TestImagesPresent(t *testing.T) {
	r := newFake(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Images: []corev1.ContainerImage{
		{Names: []string{"faultline.local/faultline:aaa"}},
	}}}
	if _, err := r.cs.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		refs    []string
		missing string
	}{
		{"imported", []string{"faultline.local/faultline:aaa"}, ""},
		{"from a registry: the kubelet pulls it", []string{"registry.example/faultline:bbb"}, ""},
		{"local and absent", []string{"faultline.local/faultline:aaa", "faultline.local/faultline-toxiproxy:ccc"}, "faultline.local/faultline-toxiproxy:ccc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.ImagesPresent(context.Background(), tt.refs...)
			switch {
			case tt.missing == "" && err != nil:
				t.Errorf("ImagesPresent() = %v, want nil", err)
			case tt.missing != "" && (err == nil || !strings.Contains(err.Error(), tt.missing)):
				t.Errorf("ImagesPresent() = %v, want %s missing", err, tt.missing)
			}
		})
	}
}

// A run whose image was imported into no node is refused before anything is made: its
// reaper's pod would otherwise wait for the whole start timeout on a pull that cannot
// succeed. A harness not allowed to read nodes (the manifest's Role) is let through.
func TestNewChecksTheImageFirst(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Images: []corev1.ContainerImage{
		{Names: []string{"faultline.local/faultline:old"}},
	}}}
	tests := []struct {
		name      string
		image     string
		forbidden bool
		wantErr   string
	}{
		{name: "imported", image: "faultline.local/faultline:old"},
		{name: "on no node", image: "faultline.local/faultline:new", wantErr: "faultline.local/faultline:new not on any node"},
		{name: "from a registry", image: "registry.example/faultline:new"},
		{name: "nodes not readable", image: "faultline.local/faultline:new", forbidden: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset(node)
			if tt.forbidden {
				cs.PrependReactor("list", "nodes", func(ktesting.Action) (bool, k8sruntime.Object, error) {
					return true, nil, apierrors.NewForbidden(corev1.Resource("nodes"), "", errors.New("no"))
				})
			}
			r, err := New(context.Background(), WithClient(cs, nil), WithRunID("20261203T120000Z-img-1"), WithImage(tt.image),
				WithLeaseOptions(lease.WithoutReaper()))
			if err == nil {
				t.Cleanup(func() { _ = r.Close(context.Background()) })
			}
			nss, lerr := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
			if lerr != nil {
				t.Fatal(lerr)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New() = %v, want a runtime", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New() = %v, want an error containing %q", err, tt.wantErr)
			case tt.wantErr != "" && len(nss.Items) > 0:
				t.Errorf("namespaces %d, want none made for a refused run", len(nss.Items))
			}
		})
	}
}

// SignalExe is run against a real process started from a copy of sleep with a path of
// its own, so no other process of the machine can match.
func TestSignalExe(t *testing.T) {
	src, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	exe := filepath.Join(t.TempDir(), "component")
	copyFile(t, src, exe)
	cmd := exec.Command(exe, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	state := func() byte {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "stat"))
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) {
			return 0
		}
		return b[i+2]
	}
	waitState := func(want ...byte) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			s := state()
			for _, w := range want {
				if s == w {
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("process state %c, want one of %q", state(), want)
	}
	waitState('S', 'R')
	pids, err := SignalExe("/proc", exe, syscall.SIGSTOP)
	if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Fatalf("SignalExe(STOP) = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	waitState('T')
	if _, err := SignalExe("/proc", exe, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitState('S', 'R')
	if _, err := SignalExe("/proc", exe, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("process ended with %v, want SIGKILL", err)
	}
	if _, err := SignalExe("/proc", exe, syscall.SIGKILL); !errors.Is(err, ErrNoProcess) {
		t.Errorf("SignalExe with no such process = %v, want ErrNoProcess", err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// The exec executor writes stdout and stderr from two goroutines into one buffer; under
// -race an unlocked buffer fails this test (as it failed a cluster test in CI).
func TestLockedBufferTakesConcurrentWriters(t *testing.T) {
	var b lockedBuffer
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = b.Write([]byte("x"))
			}
		}()
	}
	wg.Wait()
	if got, want := len(b.String()), 200; got != want {
		t.Fatalf("len = %d, want %d", got, want)
	}
}

// controller plays a Deployment's controller and a kubelet for a fake clientset: every
// Deployment without a pod gets a new one, with a new UID, running and ready.
func controller(t *testing.T, r *Runtime) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		n := 0
		for ctx.Err() == nil {
			ds, err := r.cs.AppsV1().Deployments(r.ns).List(ctx, metav1.ListOptions{})
			pods, perr := r.cs.CoreV1().Pods(r.ns).List(ctx, metav1.ListOptions{})
			if err == nil && perr == nil {
				for _, d := range ds.Items {
					has := false
					for _, p := range pods.Items {
						has = has || p.Labels[LabelName] == d.Name
					}
					if has {
						continue
					}
					n++
					id := strconv.Itoa(n)
					pod := &corev1.Pod{
						ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-" + id, Namespace: r.ns, UID: types.UID("uid-" + id), Labels: d.Spec.Template.Labels, CreationTimestamp: metav1.Now()},
						Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
							Name: ContainerName, Ready: true, ContainerID: "containerd://" + id,
							State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
						}}},
					}
					_, _ = r.cs.CoreV1().Pods(r.ns).Create(ctx, pod, metav1.CreateOptions{})
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// TestDeleteReplacesThePod: Delete returns once a pod with a new UID is ready, and
// InstanceID names the pod by its UID before and after.
func TestDeleteReplacesThePod(t *testing.T) {
	r := newFake(t, WithStartTimeout(5*time.Second))
	controller(t, r)
	s := testSpec()
	s.Container.HostPorts = nil
	p, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := runtime.As[runtime.Replacer](p)
	if !ok {
		t.Fatal("a kubernetes process is not a runtime.Replacer")
	}
	before := d.InstanceID()
	if before == "" {
		t.Fatal("InstanceID() is empty for a running pod")
	}
	if err := d.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := d.InstanceID()
	if after == "" || after == before {
		t.Errorf("InstanceID() after Delete = %q, want a new UID (was %q)", after, before)
	}
	if !p.Running() {
		t.Error("Running() = false once the replacement is ready")
	}
	select {
	case <-p.Wait():
		t.Error("Wait() is closed once Delete returned: it still speaks of the deleted pod's run")
	default:
	}
}
