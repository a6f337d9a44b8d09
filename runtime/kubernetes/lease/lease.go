// Package lease is a Kubernetes run's dead-man: the same promise as the Docker reaper
// (nothing of a SIGKILLed run survives it for long), kept inside the cluster so that it
// holds when the harness's machine is gone too.
//
// The harness calls Start once the run's namespace exists. Start writes a
// coordination.k8s.io/v1 Lease (LeaseName) in the namespace, held by the run id and
// renewed every TTL/3, and starts a reaper there: a Deployment of one pod running
// Faultline's own image (`faultline reap --kubernetes --namespace NS`, see Reap) under a
// ServiceAccount that may read that Lease, delete that namespace and its pods, and
// nothing else.
// When the Lease has not been renewed for its TTL — the harness was killed, or lost the
// cluster — the reaper deletes the namespace, and with it everything the run created,
// then kills the namespace's pods at once (KillPods) rather than wait for their grace.
//
// Deleting a namespace is cluster-scoped, so the reaper's right to do it is a ClusterRole
// limited by resourceNames to its namespace, bound by a ClusterRoleBinding. Those two are
// cluster-scoped and would outlive the namespace, so both carry an owner reference to the
// namespace itself: the cluster's garbage collector deletes them once the namespace is
// gone, whoever deleted it (the reaper, the harness, a user with kubectl). Keeper.Stop
// deletes them at once, for a caller that keeps the namespace.
//
// The reaper judges expiry on its own clock: it notes when it last saw the Lease change
// and waits one TTL from there, as client-go's leader election does, so a harness whose
// clock is off from the cluster's is never reaped early. It learns the TTL from the Lease.
//
// For the next faultline command, Stale lists the run namespaces (ManagedSelector) older
// than MinStaleAge whose Lease expired by more than a margin or vanished, and DeleteRun
// deletes one; the undo journal records the namespace so that the next command deletes a
// run whose harness it knows is dead without waiting for anything.
//
// Everything here needs the rights in Rules (deploy/kubernetes/rbac.yaml grants them).
package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

const (
	// LeaseName is the run's Lease in its namespace.
	LeaseName = "faultline-run"
	// ReaperName names the reaper's Deployment, ServiceAccount, Role and RoleBinding in the
	// namespace; its ClusterRole and ClusterRoleBinding are ReaperName-<namespace>.
	ReaperName = "faultline-reaper"
	// LabelManaged marks everything Faultline creates in a cluster (the Docker runtime's
	// label key); Stale lists namespaces by it.
	LabelManaged = "dev.faultline.managed"
	// LabelRun carries the run id (RunLabelValue of it) on the namespace and on the
	// reaper's objects.
	LabelRun = "dev.faultline.run"
	// AnnotationRun carries the whole run id, which a label value may be too short for.
	AnnotationRun = "dev.faultline.run"
	// DefaultTTL is how long the Lease lives without renewal: long enough for an API server
	// hiccup or a stop-the-world pause of the harness, short enough that a killed run's
	// faults do not outlive it by much.
	DefaultTTL = 15 * time.Second
	// DefaultReaperPoll is how often the reaper reads the Lease.
	DefaultReaperPoll = time.Second
)

// Keeper renews a run's Lease until Stop. It is safe for concurrent use.
type Keeper struct {
	client    kubernetes.Interface
	namespace string
	runID     string
	cfg       config

	cancel context.CancelFunc
	done   chan struct{} // closed when the renewal loop ended
	lost   chan struct{} // closed when renewals failed for a whole TTL
	mu     sync.Mutex
	err    error // the last renewal error
	renews int
	once   sync.Once
}

// Start writes the run's Lease into namespace (which must exist), starts renewing it,
// and starts the reaper (unless WithoutReaper), returning once the reaper's pod runs.
// On error whatever it created is deleted again.
func Start(ctx context.Context, client kubernetes.Interface, namespace, runID string, opts ...Option) (k *Keeper, err error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("start lease: %w", errors.Join(errs...))
	}
	if namespace == "" || runID == "" {
		return nil, errors.New("start lease: namespace and run id are required")
	}
	k = &Keeper{client: client, namespace: namespace, runID: runID, cfg: cfg,
		done: make(chan struct{}), lost: make(chan struct{})}
	if err := k.writeLease(ctx); err != nil {
		return nil, fmt.Errorf("start lease: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k.cancel = cancel
	go k.renewLoop(rctx)
	defer func() {
		if err != nil {
			err = errors.Join(err, k.Stop(context.WithoutCancel(ctx)))
			k = nil
		}
	}()
	if cfg.reaper {
		if err := startReaper(ctx, client, namespace, runID, cfg); err != nil {
			return k, fmt.Errorf("start lease: %w", err)
		}
	}
	return k, nil
}

// writeLease creates the Lease, or takes over one of the same holder (a retried Start).
func (k *Keeper) writeLease(ctx context.Context) error {
	now := metav1.NewMicroTime(k.cfg.clock.Now())
	ttl := int32(k.cfg.ttl / time.Second)
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Labels: runLabels(k.runID), Annotations: map[string]string{AnnotationRun: k.runID}},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: &k.runID, LeaseDurationSeconds: &ttl, AcquireTime: &now, RenewTime: &now,
		},
	}
	_, err := k.client.CoordinationV1().Leases(k.namespace).Create(ctx, l, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		old, gerr := k.client.CoordinationV1().Leases(k.namespace).Get(ctx, LeaseName, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("write lease: %w", gerr)
		}
		if h := old.Spec.HolderIdentity; h == nil || *h != k.runID {
			return fmt.Errorf("write lease: %s/%s is held by %q, not this run", k.namespace, LeaseName, deref(h))
		}
		old.Spec = l.Spec
		_, err = k.client.CoordinationV1().Leases(k.namespace).Update(ctx, old, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write lease: %w", err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// renewLoop renews every TTL/3, so two renewals may fail before the Lease expires.
func (k *Keeper) renewLoop(ctx context.Context) {
	defer close(k.done)
	every := k.cfg.ttl / 3
	lastOK := k.cfg.clock.Now()
	t := k.cfg.clock.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		err := k.renew(ctx)
		k.mu.Lock()
		k.err = err
		if err == nil {
			k.renews++
			lastOK = k.cfg.clock.Now()
		}
		k.mu.Unlock()
		if err != nil && ctx.Err() == nil && k.cfg.clock.Since(lastOK) >= k.cfg.ttl {
			k.once.Do(func() { close(k.lost) })
		}
	}
}

// renew sets the Lease's renewTime to now; the reaper sees the change.
func (k *Keeper) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.ttl/3)
	defer cancel()
	leases := k.client.CoordinationV1().Leases(k.namespace)
	l, err := leases.Get(ctx, LeaseName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if h := l.Spec.HolderIdentity; h == nil || *h != k.runID {
		return fmt.Errorf("renew lease: held by %q, not this run", deref(h))
	}
	now := metav1.NewMicroTime(k.cfg.clock.Now())
	l.Spec.RenewTime = &now
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	return nil
}

// Lost is closed when renewals have failed for a whole TTL: the reaper may be deleting
// the namespace, and the run should stop.
func (k *Keeper) Lost() <-chan struct{} { return k.lost }

// Err is the last renewal's error (nil after a successful one).
func (k *Keeper) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Renewals counts the successful renewals so far.
func (k *Keeper) Renewals() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.renews
}

// Stop stops renewing and removes the reaper and the Lease, the reaper first so that it
// never sees the Lease go, and the reaper's cluster-scoped ClusterRole and binding. The
// namespace stays: it is the caller's (DeleteRun deletes it with the rest). Stop is
// idempotent.
func (k *Keeper) Stop(ctx context.Context) error {
	if k == nil {
		return nil
	}
	k.cancel()
	<-k.done
	var errs []error
	if err := deleteReaper(ctx, k.client, k.namespace); err != nil {
		errs = append(errs, err)
	}
	err := k.client.CoordinationV1().Leases(k.namespace).Delete(ctx, LeaseName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete lease: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop lease: %w", err)
	}
	return nil
}

// Option configures Start.
type Option func(*config)

type config struct {
	ttl        time.Duration
	clock      clock.WithTicker
	reaper     bool
	image      string
	pullPolicy string
	apiServer  string
	poll       time.Duration
}

func defaults() config {
	return config{ttl: DefaultTTL, clock: clock.RealClock{}, reaper: true, poll: DefaultReaperPoll}
}

// Validate lists every problem with the configuration at once.
func (c config) Validate() []error {
	var errs []error
	if err := CheckTTL(c.ttl); err != nil {
		errs = append(errs, err)
	}
	if c.reaper && c.image == "" {
		errs = append(errs, errors.New("reaper image: required (WithImage), or WithoutReaper"))
	}
	if c.poll <= 0 || c.poll > c.ttl/2 {
		errs = append(errs, fmt.Errorf("reaper poll %v: must be positive and at most half the ttl", c.poll))
	}
	switch c.pullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		errs = append(errs, fmt.Errorf("image pull policy %q: want Always, IfNotPresent or Never", c.pullPolicy))
	}
	return errs
}

// CheckTTL says what is wrong with d as a Lease's TTL (WithTTL), nil when nothing is.
func CheckTTL(d time.Duration) error {
	if d < 3*time.Second || d%time.Second != 0 {
		return fmt.Errorf("lease ttl %v: must be whole seconds, at least 3s (a Lease counts in seconds and is renewed every ttl/3)", d)
	}
	return nil
}

// WithTTL sets how long the Lease lives without renewal (DefaultTTL): whole seconds, at
// least 3 s.
func WithTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithClock replaces the real clock (tests).
func WithClock(cl clock.WithTicker) Option { return func(c *config) { c.clock = cl } }

// WithImage is the reaper's image: Faultline's own (runtime/images.Faultline), as the
// cluster names it.
func WithImage(ref string) Option { return func(c *config) { c.image = ref } }

// WithImagePullPolicy sets the reaper's imagePullPolicy (the cluster's default when
// empty; Never for images imported straight into the node).
func WithImagePullPolicy(p string) Option { return func(c *config) { c.pullPolicy = p } }

// WithoutReaper keeps the Lease without a reaper: the next command's Stale still finds
// the run once its Lease expires.
func WithoutReaper() Option { return func(c *config) { c.reaper = false } }

// WithReaperAPIServer makes the reaper talk to the API server at url instead of the
// in-cluster address, on the node's network: for a cluster whose API server listens on
// the node's loopback only and has no endpoints behind the kubernetes Service (the local
// test cluster).
func WithReaperAPIServer(url string) Option { return func(c *config) { c.apiServer = url } }

// WithReaperPoll sets how often the reaper reads the Lease (DefaultReaperPoll).
func WithReaperPoll(d time.Duration) Option { return func(c *config) { c.poll = d } }
