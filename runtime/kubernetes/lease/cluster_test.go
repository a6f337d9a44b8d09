package lease

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/internal/k8scluster"
	"github.com/faultline-dev/faultline/runtime/images"
	"github.com/faultline-dev/faultline/undo"
)

// One real cluster serves every test of this file, started by the first that needs it
// and stopped by TestMain: a start costs 10-30 s on the shared machine.
var shared struct {
	once     sync.Once
	err      error
	c        *k8scluster.Cluster
	dir      string
	reg      *httptest.Server
	manifest sync.Once
	// pulls counts the registry's manifest requests: a pod that was pulled made some.
	pulls    atomic.Int32
	imported string // the faultline image imported into containerd (imagePullPolicy Never)
	pushed   string // the same binary's image pushed to the loopback registry
	digest   string // its manifest digest
	bin      string // the static faultline binary the images hold
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop cluster:", err)
			code = 1
		}
		if left := k8scluster.Leftovers(shared.dir); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "left on the machine after the cluster's Stop:", left)
			code = 1
		}
		os.RemoveAll(shared.dir)
	}
	if shared.reg != nil {
		shared.reg.Close()
	}
	os.Exit(code)
}

func testCluster(t *testing.T) *k8scluster.Cluster {
	t.Helper()
	if err := k8scluster.Supported(""); err != nil {
		t.Skipf("no test cluster here: %v", err)
	}
	shared.once.Do(func() { shared.err = startShared() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.c
}

func startShared() error {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// A real OCI registry on loopback; containerd (on the host's network) pulls from it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	shared.reg = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			shared.pulls.Add(1)
		}
		reg.ServeHTTP(w, r)
	})}}
	shared.reg.Start()
	host := ln.Addr().String()
	// A label makes the pushed image another image than the imported one (another config
	// digest): pulled after an import of the very same image under another name, the
	// imported name was no longer found by the kubelet (ErrImageNeverPull) in one run.
	pushed, err := images.Push(ctx, host+"/faultline", []images.Recipe{images.Faultline}, images.Insecure(),
		images.WithLabels(map[string]string{"dev.faultline.test": "pushed"}))
	if err != nil {
		return err
	}
	shared.pushed, shared.digest = pushed[0].Ref, pushed[0].Digest
	img, err := k8scluster.LocalImage(ctx, images.Faultline)
	if err != nil {
		return err
	}
	shared.imported = img.Ref
	root, err := images.ModuleRoot(ctx, "go")
	if err != nil {
		return err
	}
	shared.bin = filepath.Join(root, "bin", images.Faultline.Binary)
	if shared.dir, err = os.MkdirTemp("", "fl-lease-k8s-"); err != nil {
		return err
	}
	shared.c, err = k8scluster.Start(ctx, shared.dir, k8scluster.Options{
		Images: []k8scluster.Image{img}, Registries: []string{host}, Log: os.Stderr})
	return err
}

func adminConfig(t *testing.T, c *k8scluster.Cluster) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// harnessSA is the ServiceAccount deploy/kubernetes/rbac.yaml binds.
const harnessSA = "system:serviceaccount:faultline-system:faultline"

// asHarness is cfg impersonating the manifest's ServiceAccount: every call then has
// exactly the manifest's rights.
func asHarness(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: harnessSA,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:faultline-system", "system:authenticated"}}
	return cfg
}

// applyManifest creates what deploy/kubernetes/rbac.yaml holds, as an admin would.
func applyManifest(t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	shared.manifest.Do(func() {
		b, err := os.ReadFile(manifestPath)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, doc := range bytes.Split(b, []byte("\n---\n")) {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatal(err)
			}
			switch meta.Kind {
			case "ClusterRole":
				var o rbacv1.ClusterRole
				err = yaml.UnmarshalStrict(doc, &o)
				if err == nil {
					_, err = admin.RbacV1().ClusterRoles().Create(ctx, &o, metav1.CreateOptions{})
				}
			case "ClusterRoleBinding":
				var o rbacv1.ClusterRoleBinding
				err = yaml.UnmarshalStrict(doc, &o)
				if err == nil {
					_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &o, metav1.CreateOptions{})
				}
			case "Namespace":
				var o corev1.Namespace
				err = yaml.UnmarshalStrict(doc, &o)
				if err == nil {
					_, err = admin.CoreV1().Namespaces().Create(ctx, &o, metav1.CreateOptions{})
				}
			case "ServiceAccount":
				var o corev1.ServiceAccount
				err = yaml.UnmarshalStrict(doc, &o)
				if err == nil {
					_, err = admin.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, &o, metav1.CreateOptions{})
				}
			default:
				err = fmt.Errorf("unexpected kind %q", meta.Kind)
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("apply %s: %v", manifestPath, err)
			}
		}
	})
}

// createRunNamespace creates a run's namespace as the runtime does: labelled, the run id
// annotated.
func createRunNamespace(ctx context.Context, cs kubernetes.Interface, name, runID string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: NamespaceLabels(runID), Annotations: map[string]string{AnnotationRun: runID}}}, metav1.CreateOptions{})
	return err
}

// waitGone polls until get says not found, and returns how long that took.
func waitGone(ctx context.Context, t *testing.T, what string, get func(context.Context) error) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		err := get(ctx)
		if apierrors.IsNotFound(err) {
			return time.Since(began)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still there after %.1fs (last: %v)", what, time.Since(began).Seconds(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func nsGetter(cs kubernetes.Interface, ns string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return err
	}
}

// The harness's lease and reaper work with exactly the manifest's rights, and the reaper
// runs from an image the cluster pulled from a registry (imagePullPolicy Always).
func TestClusterHarnessRightsSufficeAndReaperPullsFromRegistry(t *testing.T) {
	c := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := clientFor(t, adminConfig(t, c))
	applyManifest(t, admin)
	h := clientFor(t, asHarness(adminConfig(t, c)))
	if _, err := h.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing nodes as the harness: err = %v, want forbidden (is the impersonation in effect?)", err)
	}
	const ns, runID = "fl-lease-rbac", "20261203T120000Z-rbac-1"
	if err := createRunNamespace(ctx, h, ns, runID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DeleteRun(context.Background(), admin, ns) })
	pullsBefore := shared.pulls.Load()
	began := time.Now()
	k, err := Start(ctx, h, ns, runID, WithImage(shared.pushed), WithImagePullPolicy("Always"),
		WithReaperAPIServer(c.Server), WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	started := time.Since(began)
	if n := shared.pulls.Load() - pullsBefore; n == 0 {
		t.Error("the registry served no manifest: the reaper's image was not pulled from it")
	}
	pods, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + ReaperName})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("reaper pods: %v %v", pods, err)
	}
	p := pods.Items[0]
	if st := p.Status.ContainerStatuses; len(st) != 1 || !st[0].Ready || !strings.HasSuffix(st[0].ImageID, shared.digest) {
		t.Errorf("reaper container status %+v: want Ready, image id ending %s", st, shared.digest)
	}
	if pol := p.Spec.Containers[0].ImagePullPolicy; pol != corev1.PullAlways {
		t.Errorf("pull policy %s, want Always", pol)
	}
	// Renewed as the harness, and a live run is never stale.
	deadline := time.Now().Add(10 * time.Second)
	for k.Renewals() < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if k.Renewals() < 2 || k.Err() != nil {
		t.Fatalf("renewals %d, last error %v; want 2 within 10s", k.Renewals(), k.Err())
	}
	stale, err := Stale(ctx, h, WithStaleMargin(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stale {
		if s.Namespace == ns {
			t.Errorf("a live run listed as stale: %+v", s)
		}
	}
	if err := k.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := DeleteRun(ctx, h, ns); err != nil {
		t.Fatal(err)
	}
	gone := waitGone(ctx, t, "namespace "+ns, nsGetter(admin, ns))
	t.Logf("figures: Start with the reaper pulled from the loopback registry %.1fs; namespace gone %.1fs after DeleteRun", started.Seconds(), gone.Seconds())
}

const helperEnv = "FAULTLINE_LEASE_HELPER"

// A harness SIGKILLed while it holds the Lease: its reaper deletes the namespace within
// TTL + 10 s with no command run, and the garbage collector the reaper's cluster-scoped
// rights after it.
func TestClusterSIGKILLedHarnessNamespaceGoneWithinTTL(t *testing.T) {
	c := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := clientFor(t, adminConfig(t, c))
	applyManifest(t, admin)
	const ns, ttl = "fl-lease-kill", 5 * time.Second
	t.Cleanup(func() { DeleteRun(context.Background(), admin, ns) })
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperHarness$")
	child.Env = append(os.Environ(), helperEnv+"="+strings.Join([]string{c.Kubeconfig, ns, shared.imported, c.Server, ttl.String()}, ","))
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	sc := bufio.NewScanner(out)
	holding := false
	for !holding && sc.Scan() {
		holding = sc.Text() == "harness: holding "+ns
		t.Log(sc.Text())
	}
	if !holding {
		child.Wait()
		t.Fatal("the harness process ended before it held its lease")
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	child.Wait()
	gone := waitGone(ctx, t, "namespace "+ns, nsGetter(admin, ns))
	if limit := ttl + 10*time.Second; gone > limit {
		t.Errorf("namespace gone %.1fs after the SIGKILL, want within TTL + 10 s = %v", gone.Seconds(), limit)
	}
	for _, kind := range []string{"clusterrole", "clusterrolebinding"} {
		waitGone(ctx, t, kind+" "+clusterName(ns), func(ctx context.Context) error {
			var err error
			if kind == "clusterrole" {
				_, err = admin.RbacV1().ClusterRoles().Get(ctx, clusterName(ns), metav1.GetOptions{})
			} else {
				_, err = admin.RbacV1().ClusterRoleBindings().Get(ctx, clusterName(ns), metav1.GetOptions{})
			}
			return err
		})
	}
	rights := time.Since(killed)
	t.Logf("figures: SIGKILL -> namespace gone %.1fs (lease TTL %v, reaper poll %v); reaper's ClusterRole and binding collected %.1fs after the kill",
		gone.Seconds(), ttl, DefaultReaperPoll, rights.Seconds())
}

// TestHelperHarness is the harness TestClusterSIGKILLedHarnessNamespaceGoneWithinTTL
// kills: with the manifest's rights it creates its run namespace, holds the Lease with
// a reaper, says so and waits.
func TestHelperHarness(t *testing.T) {
	env := os.Getenv(helperEnv)
	if env == "" {
		t.Skip("helper process of TestClusterSIGKILLedHarnessNamespaceGoneWithinTTL")
	}
	f := strings.Split(env, ",")
	kubeconfig, ns, image, server := f[0], f[1], f[2], f[3]
	ttl, err := time.ParseDuration(f[4])
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	h := clientFor(t, asHarness(cfg))
	ctx := context.Background()
	runID := "20261203T120000Z-kill-" + fmt.Sprint(os.Getpid())
	if err := createRunNamespace(ctx, h, ns, runID); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, h, ns, runID, WithImage(image), WithImagePullPolicy("Never"), WithReaperAPIServer(server), WithTTL(ttl)); err != nil {
		t.Fatal(err)
	}
	fmt.Println("harness: holding " + ns)
	select {}
}

// The next command deletes a dead run's namespace: by its undo record at once (the
// faultline binary's pre-run hook, here `faultline version`), and by its label once its
// Lease has expired (`faultline clean --kubernetes`'s CleanStale).
func TestClusterNextCommandDeletesStaleRun(t *testing.T) {
	c := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := clientFor(t, adminConfig(t, c))
	dead := func(ns string) (created time.Time) {
		t.Helper()
		runID := "20261203T120000Z-" + ns
		created = time.Now()
		if err := createRunNamespace(ctx, admin, ns, runID); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { DeleteRun(context.Background(), admin, ns) })
		k, err := Start(ctx, admin, ns, runID, WithoutReaper(), WithTTL(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		k.cancel() // the harness dies: no renewal, no Stop
		<-k.done
		return created
	}

	t.Run("by the undo record", func(t *testing.T) {
		const ns = "fl-lease-undo"
		dead(ns)
		undoDir := t.TempDir()
		sleeper := exec.Command("sleep", "0.01")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		harness, err := undo.Identify(sleeper.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		sleeper.Wait()
		rec := fmt.Sprintf(`{"version": %d, "run_id": "r-%s", "runtime": "kubernetes", "harness": {"name": "harness", "pid": %d, "start": %d},
			"namespaces": [{"name": %q, "kubeconfig": %q}]}`, undo.Version, ns, harness.PID, harness.Start, ns, c.Kubeconfig)
		if err := os.WriteFile(filepath.Join(undoDir, "r-"+ns+".json"), []byte(rec), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, shared.bin, "version")
		cmd.Env = append(os.Environ(), undo.DirEnv+"="+undoDir)
		began := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("faultline version: %v: %s", err, out)
		}
		took := time.Since(began)
		if !strings.Contains(string(out), "deleted namespace "+ns) {
			t.Errorf("faultline version said %q, want it to report the deleted namespace %s", out, ns)
		}
		if left, _ := undo.Pending(undoDir); len(left) > 0 {
			t.Errorf("undo record kept: %v", left)
		}
		gone := waitGone(ctx, t, "namespace "+ns, nsGetter(admin, ns))
		t.Logf("figures: the next command (faultline version) healed the record in %.1fs, namespace gone %.1fs later", took.Seconds(), gone.Seconds())
	})

	t.Run("by label once the lease expired and the namespace is MinStaleAge old", func(t *testing.T) {
		const ns = "fl-lease-stale"
		created := dead(ns)
		margin := time.Second
		// Only namespaces count: reaper rights a deleted namespace of another test left
		// for the garbage collector may be swept too.
		namespaces := func(all []string) (out []string) {
			for _, s := range all {
				if strings.HasPrefix(s, "namespace ") {
					out = append(out, s)
				}
			}
			return out
		}
		if got, err := CleanStale(ctx, admin, WithStaleMargin(margin)); err != nil || len(namespaces(got)) > 0 {
			t.Fatalf("CleanStale before the lease expired = %q, %v; want no namespace", got, err)
		}
		time.Sleep(3*time.Second + margin + 500*time.Millisecond)
		// Expired, but the namespace is young: a run that has just begun looks the same.
		if got, err := CleanStale(ctx, admin, WithStaleMargin(margin)); err != nil || len(namespaces(got)) > 0 {
			t.Fatalf("CleanStale once the lease expired, the namespace %.0fs old = %q, %v; want no namespace before %v",
				time.Since(created).Seconds(), got, err, MinStaleAge)
		}
		// MinStaleAge later, by a clock set there rather than by sleeping through it (45 s
		// of this package's time): the namespace's creationTimestamp and the Lease's
		// renewTime are still the API server's, only the reading is moved.
		// creationTimestamp counts whole seconds and is set after the request left.
		later := clocktesting.NewFakePassiveClock(created.Add(MinStaleAge + 2*time.Second))
		all, err := CleanStale(ctx, admin, WithStaleMargin(margin), WithStaleClock(later))
		if err != nil {
			t.Fatal(err)
		}
		got := namespaces(all)
		if len(got) != 1 || !strings.HasPrefix(got[0], "namespace "+ns+" (lease expired") {
			t.Errorf("CleanStale() = %q, want namespace %s with its expired lease", got, ns)
		}
		waitGone(ctx, t, "namespace "+ns, nsGetter(admin, ns))
	})
}
