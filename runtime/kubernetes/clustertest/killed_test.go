package clustertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline-dev/faultline/runtime/images"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
	"github.com/faultline-dev/faultline/undo"
)

// killedLeaseTTL is the killed runs' Lease TTL (--kube-lease-ttl): the default's.
const killedLeaseTTL = 15 * time.Second

// faultlineBin is the faultline binary the cluster's image holds (TestMain built it).
func faultlineBin(t *testing.T) string {
	t.Helper()
	root, err := images.ModuleRoot(t.Context(), "go")
	require.NoError(t, err)
	bin := filepath.Join(root, "bin", images.Faultline.Binary)
	_, err = os.Stat(bin)
	require.NoError(t, err, "the faultline binary of the cluster's image")
	return bin
}

// killedRun is a `faultline run --runtime kubernetes` started as a command of its own
// (its own process group, run directory and undo directory) and SIGKILLed once its
// components run.
type killedRun struct {
	namespace string
	undoDir   string
	killed    time.Time
}

// runAndKill starts `faultline run replica-crash --runtime kubernetes`, waits until the
// run directory's processes.json exists (every component started, the Lease renewed
// since), and SIGKILLs the run's process group.
func runAndKill(t *testing.T, bin string) killedRun {
	t.Helper()
	base := t.TempDir()
	dir, undoDir := filepath.Join(base, "run"), filepath.Join(base, "undo")
	logPath := filepath.Join(base, "run.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	defer logf.Close()
	cmd := exec.Command(bin, "run", "replica-crash", "--runtime", "kubernetes", "--kubeconfig", cluster.Kubeconfig,
		"--image", faultlineImage, "--toxiproxy-image", toxiproxyImage, "--dir", dir,
		"--kube-lease-ttl", killedLeaseTTL.String())
	cmd.Env = append(os.Environ(), undo.DirEnv+"="+undoDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killGroup := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	t.Cleanup(killGroup)
	showLog := func() {
		b, _ := os.ReadFile(logPath)
		t.Logf("faultline run's output:\n%s", b)
	}

	// The system starts in 10-30 s on the test cluster; 5 min bounds a loaded machine.
	began := time.Now()
	deadline := time.After(5 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(dir, "processes.json")); err == nil {
			break
		}
		select {
		case err := <-exited:
			showLog()
			t.Fatalf("faultline run ended (%v) before its components ran", err)
		case <-deadline:
			showLog()
			t.Fatal("processes.json not written within 5 min")
		case <-time.After(100 * time.Millisecond):
		}
	}
	paths, err := undo.Pending(undoDir)
	require.NoError(t, err)
	require.Len(t, paths, 1, "the run's undo record")
	rec, err := undo.Read(paths[0])
	require.NoError(t, err)
	require.Len(t, rec.Namespaces, 1, "the run's namespace in its undo record")
	ns := rec.Namespaces[0].Name
	require.Equal(t, kubernetes.NamespaceFor(rec.RunID), ns)
	t.Cleanup(func() { removeRunLeftovers(t, ns) })
	_, err = kubeClient(t).CoordinationV1().Leases(ns).Get(t.Context(), lease.LeaseName, metav1.GetOptions{})
	require.NoError(t, err, "the run's Lease")

	killGroup()
	killed := time.Now()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("faultline run still running 30 s after its SIGKILL")
	}
	t.Logf("run %s: components running %.1fs after the start; SIGKILLed", rec.RunID, killed.Sub(began).Seconds())
	return killedRun{namespace: ns, undoDir: undoDir, killed: killed}
}

// removeRunLeftovers deletes what the test's runs may leave: the namespace (when the test
// failed) and its volumes' directory on the node, which no namespace deletion removes.
func removeRunLeftovers(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := kubeClient(t)
	if err := lease.DeleteRun(ctx, cs, ns); err != nil {
		t.Logf("delete namespace %s: %v", ns, err)
	}
	for ctx.Err() == nil {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = os.RemoveAll(filepath.Join(kubernetes.DefaultVolumeRoot, ns))
	_ = os.Remove(kubernetes.DefaultVolumeRoot) // only when no other run's is there
}

// namespaceGoneBound is how long after a run's end its namespace may still be there: its
// controller deletes it once the run has ended it (about 5 s on the test cluster).
const namespaceGoneBound = 30 * time.Second

// runNamespaceGoes checks that the namespace of a run that ended (its system's pods gone)
// is deleted by its controller within namespaceGoneBound.
func runNamespaceGoes(t *testing.T, runID string) {
	t.Helper()
	_, gone := nsGone(t, kubernetes.NamespaceFor(runID), time.Now(), namespaceGoneBound)
	t.Logf("namespace of run %s gone %.1fs after the run", runID, gone.Seconds())
}

// nsGone polls namespace ns every 100 ms until it is gone, and returns how long after
// since its deletion began (its deletionTimestamp was first seen) and it was gone. It
// fails the test when ns is still there bound after the call.
func nsGone(t *testing.T, ns string, since time.Time, bound time.Duration) (deleting, gone time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	cs := kubeClient(t)
	for {
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if deleting == 0 {
				deleting = time.Since(since)
			}
			return deleting, time.Since(since)
		case err == nil && n.DeletionTimestamp != nil && deleting == 0:
			deleting = time.Since(since)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("namespace %s still there %.1fs later (last: %v)", ns, time.Since(since).Seconds(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// A SIGKILLed `faultline run --runtime kubernetes`: its reaper deletes its namespace
// within the Lease's TTL + 10 s, with no command run.
func TestSIGKILLedRunNamespaceGoneWithinTTL(t *testing.T) {
	needCluster(t)
	run := runAndKill(t, faultlineBin(t))
	deleting, gone := nsGone(t, run.namespace, run.killed, 3*time.Minute)
	t.Logf("figures: SIGKILL -> namespace deleting %.1fs, gone %.1fs (lease TTL %v, renewed every %v, reaper poll %v)",
		deleting.Seconds(), gone.Seconds(), killedLeaseTTL, killedLeaseTTL/3, lease.DefaultReaperPoll)
	assert.LessOrEqual(t, gone, killedLeaseTTL+10*time.Second, "namespace gone within the lease TTL + 10 s")
}

// After a SIGKILLed run, the next command (faultline clean --kubernetes) deletes its
// namespace at once, by its undo record, and spares the namespace a live run has just
// created, which has no Lease yet.
func TestNextCommandHealsKilledRunAndSparesYoungNamespace(t *testing.T) {
	needCluster(t)
	bin := faultlineBin(t)
	run := runAndKill(t, bin)
	cs := kubeClient(t)
	ctx := t.Context()
	// A run that has just created its namespace and not yet its Lease.
	liveID := "20261203T160000Z-young-live-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	live := kubernetes.NamespaceFor(liveID)
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: live, Labels: lease.NamespaceLabels(liveID), Annotations: map[string]string{lease.AnnotationRun: liveID}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { removeRunLeftovers(t, live) })

	clean := exec.CommandContext(ctx, bin, "clean", "--kubernetes", "--kubeconfig", cluster.Kubeconfig)
	clean.Env = append(os.Environ(), undo.DirEnv+"="+run.undoDir)
	began := time.Now()
	out, err := clean.CombinedOutput()
	took := time.Since(began)
	require.NoError(t, err, "faultline clean --kubernetes: %s", out)
	t.Logf("faultline clean --kubernetes (%.1fs after the SIGKILL, took %.1fs):\n%s", began.Sub(run.killed).Seconds(), took.Seconds(), out)
	assert.Contains(t, string(out), "namespace "+run.namespace, "the killed run's namespace deleted by its undo record")
	left, err := undo.Pending(run.undoDir)
	require.NoError(t, err)
	assert.Empty(t, left, "the killed run's undo record healed")

	_, gone := nsGone(t, run.namespace, began, 2*time.Minute)
	t.Logf("figures: faultline clean -> the killed run's namespace gone %.1fs (its lease TTL %v had not expired)", gone.Seconds(), killedLeaseTTL)
	n, err := cs.CoreV1().Namespaces().Get(ctx, live, metav1.GetOptions{})
	require.NoError(t, err, "the live run's young namespace")
	assert.Nil(t, n.DeletionTimestamp, "the live run's young namespace is not being deleted")
	assert.NotContains(t, string(out), live)
}
