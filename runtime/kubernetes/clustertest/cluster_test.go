package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/system"
	"github.com/faultline-dev/faultline/system/containers"
	"github.com/faultline-dev/faultline/systems"
)

// kubeClient is a clientset of the test cluster.
func kubeClient(t *testing.T) k8s.Interface {
	t.Helper()
	cfg, err := kubernetes.LoadConfig(cluster.Kubeconfig, "")
	require.NoError(t, err)
	cs, err := kubernetes.NewClientset(cfg)
	require.NoError(t, err)
	return cs
}

// TestUpAndProcessFaults starts the reference system on the cluster as faultline up does,
// then crashes, pauses and deletes components through the API server and sees each
// come back; Stop leaves none of the system's pods, and the namespace goes.
func TestUpAndProcessFaults(t *testing.T) {
	needCluster(t)
	ctx := t.Context()
	began := time.Now()
	dir := t.TempDir()
	runID := kubernetes.NewRunID()
	ns := kubernetes.NamespaceFor(runID)
	sys, err := containers.StartKubernetes(ctx, system.Spec{Dir: dir}, containers.Kubernetes{
		Kubeconfig: cluster.Kubeconfig, Image: faultlineImage, VolumeRoot: volumeRoot, RunID: runID,
	})
	if err != nil {
		dumpLogs(t, filepath.Join(dir, "logs"))
	}
	require.NoError(t, err)
	t.Logf("up on kubernetes: ready in %s (%d components)", time.Since(began).Round(time.Millisecond), len(sys.Components()))
	stopped := false
	defer func() {
		if !stopped {
			_ = sys.Stop(context.Background())
		}
	}()
	get := func(url string) int {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	comp := func(name string) system.Component {
		for _, c := range sys.Components() {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no component %s", name)
		return system.Component{}
	}

	require.Equal(t, http.StatusOK, get(comp("gateway-1").AdminURL()+"/readyz"), "gateway through the port-forward")

	// crash: the kubelet restarts the container in place at once, but the component in it
	// stays down until the crash is healed (Restart), as on the other runtimes. A
	// client's open connection ends with the process, as a direct one would: by the time
	// Kill returns, not a second later when the kubelet's port-forward lets go of it.
	ended := openConn(t, comp("order-2").AdminURL())
	killed := time.Now()
	require.NoError(t, sys.Kill("order-2"))
	select {
	case <-ended:
	default:
		t.Error("a connection to order-2 was still open when Kill returned")
	}
	cs := kubeClient(t)
	restarted := func() bool {
		pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelName + "=order-2"})
		if err != nil || len(pods.Items) != 1 {
			return false
		}
		for _, c := range pods.Items[0].Status.ContainerStatuses {
			if c.RestartCount > 0 && c.State.Running != nil {
				return true
			}
		}
		return false
	}
	require.Eventually(t, restarted, 30*time.Second, 100*time.Millisecond, "the kubelet starts order-2's container again")
	held := time.Now()
	for time.Since(held) < 3*time.Second {
		require.False(t, sys.Running("order-2"), "order-2 runs again before the crash was healed")
		require.NotEqual(t, http.StatusOK, get(comp("order-2").AdminURL()+"/readyz"), "a held order-2 answers")
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, sys.Restart(ctx, "order-2"))
	assert.True(t, sys.Running("order-2"))
	assert.Equal(t, http.StatusOK, get(comp("order-2").AdminURL()+"/readyz"), "order-2 answers once the crash is healed")
	t.Logf("crash: order-2 ready again %s after SIGKILL (held %s)", time.Since(killed).Round(time.Millisecond), time.Since(held).Round(time.Millisecond))

	// pause: the component answers nothing until resumed, and stays the same run.
	require.NoError(t, sys.Pause("product-2"))
	assert.Eventually(t, func() bool { return !sys.Healthy(ctx, "product-2") }, 10*time.Second, 100*time.Millisecond, "a paused product-2 answers no health check")
	st, err := comp("product-2").Process.(runtime.Inspector).State(ctx)
	require.NoError(t, err)
	assert.True(t, st.Paused && st.Running, "state %+v", st)
	require.NoError(t, sys.Resume("product-2"))
	assert.Eventually(t, func() bool { return sys.Healthy(ctx, "product-2") }, 10*time.Second, 100*time.Millisecond, "product-2 answers again once resumed")

	// delete: the Deployment replaces the pod; the forwarded address stays valid.
	del, ok := runtime.As[kubernetes.Deleter](comp("merchant-2").Process)
	require.True(t, ok, "a kubernetes process can be deleted")
	deleted := time.Now()
	require.NoError(t, del.Delete(ctx))
	t.Logf("delete: merchant-2's replacement pod ready %s after the delete", time.Since(deleted).Round(time.Millisecond))
	require.NoError(t, sys.WaitReady(ctx, "merchant-2"))

	require.NoError(t, sys.Stop(ctx))
	stopped = true
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: lease.SystemPods})
	require.NoError(t, err)
	assert.Empty(t, pods.Items, "the system's pods left after Stop")
	_, gone := nsGone(t, ns, time.Now(), namespaceGoneBound)
	t.Logf("namespace gone %.1fs after Stop", gone.Seconds())
}

// openConn makes one request on a new connection to base and keeps the connection
// open; the channel is closed when the server's side of it ends.
func openConn(t *testing.T, base string) <-chan struct{} {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	c, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "GET /readyz HTTP/1.1\r\nHost: %s\r\n\r\n", u.Host)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = io.Copy(io.Discard, br)
	}()
	return ended
}

// dumpLogs shows the last lines of every log of a failed start.
func dumpLogs(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("%s (%d lines):\n%s", e.Name(), len(lines), strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
}

// TestRunLinkAndCrashFaults runs two catalog scenarios on the cluster through the one run
// pipeline: a latency fault on a link through the Toxiproxy pod, and a crash of one
// replica. Each fault lands, and nothing of either run is left on the cluster.
func TestRunLinkAndCrashFaults(t *testing.T) {
	needCluster(t)
	// Whether each scenario meets its own expectations on Kubernetes is logged, not
	// required: each has both passed and failed on the test cluster so far (see the
	// README's Kubernetes section), which is a finding to explain, not a bound to loosen.
	for _, name := range []string{"dependency-latency", "replica-crash"} {
		t.Run(name, func(t *testing.T) {
			sc, err := scenarios.Builtin(name)
			require.NoError(t, err)
			dir := t.TempDir()
			res, err := harness.Run(t.Context(), sc,
				harness.WithSystemFor(systems.For), harness.WithDir(dir),
				harness.WithRuntime("kubernetes"),
				harness.WithKubernetes(harness.Kubernetes{
					Kubeconfig: cluster.Kubeconfig, Image: faultlineImage, Toxiproxy: toxiproxyImage, VolumeRoot: volumeRoot,
				}),
				harness.WithReadyTimeout(2*time.Minute))
			require.NoError(t, err, "reason: %s", res.Reason)
			assert.Equal(t, "kubernetes", res.Runtime)
			t.Logf("%s on kubernetes: %s %s", name, res.Verdict, res.Reason)
			for _, c := range res.Checks {
				t.Logf("  check %s passed=%t: %s", c.Name, c.Passed, c.Message)
			}
			require.NotEmpty(t, res.Faults)
			for _, f := range res.Faults {
				require.NotNil(t, f.Effect, "fault %s measured", f.Name)
				t.Logf("  fault %s: landed=%t %s", f.Name, f.Effect.Landed, f.Effect.Detail)
				assert.True(t, f.Effect.Landed, "fault %s landed", f.Name)
			}
			assert.Contains(t, []result.Verdict{result.Passed, result.Failed, result.Invalid}, res.Verdict, "a judged run, reason: %s", res.Reason)
			runNamespaceGoes(t, res.RunID)
		})
	}
}
