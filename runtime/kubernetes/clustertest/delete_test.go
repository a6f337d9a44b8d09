package clustertest

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/systems"
)

// podDeleteScenario deletes one of two order pods under load through the gateway. It is
// kept here, not in the catalog: the catalog runs on every runtime, and local and docker
// refuse delete. Its checks are replica-crash's, for a graceful failover.
const podDeleteScenario = `name: pod-delete
description: >-
  One of two order pods is deleted under load (SIGTERM, the grace period) and its
  Deployment replaces it; the other replica takes the traffic meanwhile.
system:
  design: designs/resilient.yaml
  replicas: {order: 2, product: 2}
  lease_ttl: 1s
seed: 3
load:
  rate: 40/s
  duration: 12s
  max_workers: 128
  timeout: 2s
  clients: 10
  mix: {browse: 30, view_order: 30, place_order: 40}
faults:
  - name: delete-order-1
    type: delete
    at: 3s
    for: 6s
    target: order-1
steady_state:
  - check: error_rate
    max: 1%
expect:
  during:
    delete-order-1:
      - check: fault_landed
      - check: failover
        service: order
        max_error_window: 2s
  overall:
    - check: consistency
      exactly_once: true
`

// Bounds of a pod delete with a second replica: the replacement is a pod of an image
// already on the node, and the survivor serves meanwhile.
const (
	deleteReadyBound  = 60 * time.Second
	deleteErrorWindow = 2 * time.Second // the scenario's own failover bound
	deleteErrorRate   = 0.02
)

// podSeen is what watching the cluster saw of one pod, at the moments the events came.
type podSeen struct {
	name            string
	first           time.Time
	deleting, ready time.Time // zero until seen
}

// podWatch watches the pods of the named instances of every run namespace.
type podWatch struct {
	mu   sync.Mutex
	pods map[string]map[types.UID]*podSeen // instance -> pod UID -> seen
}

func watchPods(ctx context.Context, t *testing.T, names ...string) (*podWatch, func()) {
	t.Helper()
	cs := kubeClient(t)
	w := &podWatch{pods: map[string]map[types.UID]*podSeen{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			wi, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{LabelSelector: lease.ManagedSelector})
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			for ev := range wi.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				w.see(p, ev.Type == watch.Deleted, names)
			}
			wi.Stop()
		}
	})
	return w, func() { cancel(); wg.Wait() }
}

// see records what an event shows of p: a pod removed counts as deleting from then at
// the latest.
func (w *podWatch) see(p *corev1.Pod, removed bool, names []string) {
	inst := p.Labels[kubernetes.LabelName]
	if !slices.Contains(names, inst) {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pods[inst] == nil {
		w.pods[inst] = map[types.UID]*podSeen{}
	}
	s := w.pods[inst][p.UID]
	if s == nil {
		s = &podSeen{name: p.Name, first: now}
		w.pods[inst][p.UID] = s
	}
	if (p.DeletionTimestamp != nil || removed) && s.deleting.IsZero() {
		s.deleting = now
	}
	if podReady(p) && s.ready.IsZero() && s.deleting.IsZero() {
		s.ready = now
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// replacement finds, of inst's pods, the one seen being deleted and a pod first seen no
// earlier that became ready; it returns how long from the delete's event to the new
// pod's ready event.
func (w *podWatch) replacement(inst string) (old, repl *podSeen, took time.Duration, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// The run's end deletes every pod with its namespace: the delete's is the first.
	for _, s := range w.pods[inst] {
		if !s.deleting.IsZero() && (old == nil || s.deleting.Before(old.deleting)) {
			old = s
		}
	}
	if old == nil {
		return nil, nil, 0, false
	}
	for _, s := range w.pods[inst] {
		if s != old && !s.ready.IsZero() && !s.first.Before(old.first) {
			repl = s
		}
	}
	if repl == nil {
		return old, nil, 0, false
	}
	return old, repl, repl.ready.Sub(old.deleting), true
}

func (w *podWatch) uids(inst string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pods[inst])
}

// errorWindow is the time from the first to the last failed client request (by their
// ends) from the fault's injection until 5 s after its heal, on the run's clock; 0 when
// none failed. It counts the requests that ended from the injection on and their failures
// (what the delete can have caused), and the failures before it.
func errorWindow(t *testing.T, dir string, f result.Fault) (window time.Duration, failedAround, failedSince, since, failedBefore int) {
	t.Helper()
	r, err := history.Open(filepath.Join(dir, harness.HistoryFile))
	require.NoError(t, err)
	defer r.Close()
	from, to := f.Injected.Std(), f.Healed.Std()+5*time.Second
	var first, last time.Duration
	for ev, err := range r.Events() {
		require.NoError(t, err)
		req, ok := ev.AsRequest()
		if !ok || req.Cut {
			continue
		}
		end := req.End()
		if end < from {
			if req.Failed() {
				failedBefore++
			}
			continue
		}
		since++
		if !req.Failed() {
			continue
		}
		failedSince++
		if end > to {
			continue
		}
		if failedAround == 0 {
			first, last = end, end
		}
		first, last = min(first, end), max(last, end)
		failedAround++
	}
	return last - first, failedAround, failedSince, since, failedBefore
}

// TestPodDeleteScenario: the scenario of TestPodDeleteUnderLoad is valid for the reference
// system and runs on kubernetes only (checked without a cluster).
func TestPodDeleteScenario(t *testing.T) {
	sc, err := scenarios.Parse("pod-delete.yaml", []byte(podDeleteScenario))
	require.NoError(t, err)
	assert.Empty(t, sc.Validate(scenarios.SystemShape{}))
	assert.Empty(t, harness.RuntimeProblems(sc, "kubernetes"), "delete is a kubernetes fault")
	assert.NotEmpty(t, harness.RuntimeProblems(sc, "local"), "local has no controller to replace a pod")
}

// TestPodDeleteUnderLoad deletes one of two order pods under load through the gateway
// (the delete fault) and measures what a client sees: the error window around the delete,
// and the time until the Deployment's replacement pod is ready. The fault must land (a
// pod with a new UID), the replacement be ready within a minute, and the load's errors
// stay within the failover bound a second replica allows.
func TestPodDeleteUnderLoad(t *testing.T) {
	needCluster(t)
	sc, err := scenarios.Parse("pod-delete.yaml", []byte(podDeleteScenario))
	require.NoError(t, err)

	watch, stopWatch := watchPods(t.Context(), t, "order-1", "order-2")
	dir := t.TempDir()
	res, err := harness.Run(t.Context(), sc,
		harness.WithSystemFor(systems.For), harness.WithDir(dir),
		harness.WithRuntime("kubernetes"),
		harness.WithKubernetes(harness.Kubernetes{
			Kubeconfig: cluster.Kubeconfig, Image: faultlineImage, Toxiproxy: toxiproxyImage, VolumeRoot: volumeRoot,
		}),
		harness.WithReadyTimeout(2*time.Minute))
	stopWatch()
	require.NoError(t, err, "reason: %s", res.Reason)
	t.Logf("pod-delete on kubernetes: %s %s", res.Verdict, res.Reason)
	for _, c := range res.Checks {
		t.Logf("  check %s passed=%t: %s", c.Name, c.Passed, c.Message)
	}

	require.Len(t, res.Faults, 1)
	f := res.Faults[0]
	require.NotNil(t, f.Effect, "the delete measured")
	t.Logf("  fault %s: landed=%t measured %.2f %s: %s", f.Name, f.Effect.Landed, f.Effect.Measured, f.Effect.Unit, f.Effect.Detail)
	assert.Empty(t, f.HealError)
	window, around, failed, total, before := errorWindow(t, dir, f)
	old, repl, podTook, replaced := watch.replacement("order-1")
	if replaced {
		t.Logf("  pods of order-1: %s deleted, %s ready %.2f s later (watched)", old.name, repl.name, podTook.Seconds())
	}
	t.Logf("figures: client-visible error window %.2f s (%d failed requests around the fault; %d of %d from the delete on; %d failed before it), replacement ready %.2f s after the delete (fault effect)",
		window.Seconds(), around, failed, total, before, f.Effect.Measured)

	// The fault landed: order-1's pod was replaced by one with a new UID, order-2's kept.
	assert.True(t, f.Effect.Landed, "the delete landed: %s", f.Effect.Detail)
	assert.True(t, replaced, "a pod of order-1 seen deleted and a new one ready")
	assert.GreaterOrEqual(t, watch.uids("order-1"), 2, "order-1 has a pod with a new UID")
	assert.Equal(t, 1, watch.uids("order-2"), "order-2's pod is untouched")
	// The replacement was ready within the bound.
	assert.Positive(t, f.Effect.Measured)
	assert.LessOrEqual(t, f.Effect.Measured, deleteReadyBound.Seconds(), "replacement ready within %s", deleteReadyBound)
	// A second replica keeps the errors short and few.
	require.Positive(t, total, "the load ran past the delete")
	assert.LessOrEqual(t, window, deleteErrorWindow, "client-visible error window")
	assert.LessOrEqual(t, float64(failed)/float64(total), deleteErrorRate, "error rate from the delete on")

	runNamespaceGoes(t, res.RunID)
}
