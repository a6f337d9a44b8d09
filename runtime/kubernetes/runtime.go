// Package kubernetes is a runtime.Runtime on a Kubernetes cluster, through its API
// server only (client-go): every run gets a namespace of its own, labelled with the run
// id; each Spec becomes a Deployment of one pod, a Service named after it (and one per
// alias), and a ConfigMap and a Secret holding its files. Readiness is the pod's own
// readiness probe. Process faults go through the API server as well: crash and pause
// signal the component from inside its pod (the pod shares one process namespace, so the
// component is not its pid 1) through a signaler kept running in each ready container
// (an exec'd faultline signal --serve, so that a fault lands when the timeline fires
// it); a crashed component, which the kubelet starts again at once, waits in its new
// container until the crash is healed; delete removes the pod for its Deployment to
// replace, and the harness reaches every port through the API server's port-forward, so
// the cluster may be remote.
//
// New holds a Lease in the namespace and starts a reaper beside the run (package lease):
// if the harness dies, the reaper deletes the namespace once the Lease expires; LeaseLost
// tells the harness when it can no longer renew it. Close stops both, deletes the
// namespace, kills its pods at once and waits until it is gone; Clean deletes the
// namespaces a killed run left.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
	"github.com/faultline-dev/faultline/runtime/wait"
)

// Defaults; each has an Option.
const (
	// DefaultGrace is the pods' termination grace period, as on the other runtimes.
	DefaultGrace = 3 * time.Second
	// DefaultStartTimeout bounds a readiness wait.
	DefaultStartTimeout = 90 * time.Second
	// DefaultVolumeRoot is the node directory under which run volumes live.
	DefaultVolumeRoot = "/var/lib/faultline/volumes"
)

// opTimeout bounds single API calls made without a caller's context (Kill, Pause), and
// the removal of a namespace whose Lease could not be started.
const opTimeout = 30 * time.Second

// ErrLeaseLost is why a run whose runtime closed LeaseLost must stop: its Lease could not
// be renewed for a whole TTL, so its reaper may be deleting the namespace under it.
var ErrLeaseLost = errors.New("run lease lost")

// Runtime runs every Spec as a one-pod Deployment in the run's namespace.
type Runtime struct {
	runID        string
	image        string
	grace        time.Duration
	startTimeout time.Duration
	volumeRoot   string
	log          *slog.Logger
	kubeconfig   string
	kubeContext  string
	leaseOpts    []lease.Option

	cfg    *rest.Config
	cs     kubernetes.Interface
	ns     string
	keeper *lease.Keeper

	stopInformer chan struct{}
	pods         cache.SharedIndexInformer
	// changed is closed and replaced whenever a pod of the run changes, waking waiters.
	changedMu sync.Mutex
	changed   chan struct{}

	mu     sync.Mutex
	procs  map[string]*Process
	closed bool
	fw     *forwarders
}

var (
	_ runtime.Runtime       = (*Runtime)(nil)
	_ runtime.Lister        = (*Runtime)(nil)
	_ runtime.Containerized = (*Runtime)(nil)
)

// Option configures a Runtime.
type Option func(*Runtime)

// WithRunID names the run; its namespace is NamespaceFor(id) and everything carries the id
// in LabelRun. The default is random.
func WithRunID(id string) Option { return func(r *Runtime) { r.runID = id } }

// WithImage is the image of specs whose Container.Image is empty.
func WithImage(ref string) Option { return func(r *Runtime) { r.image = ref } }

// WithKubeconfig is the kubeconfig file; empty follows KUBECONFIG and then
// ~/.kube/config, as kubectl does.
func WithKubeconfig(path string) Option { return func(r *Runtime) { r.kubeconfig = path } }

// WithContext picks a context of the kubeconfig other than its current one.
func WithContext(name string) Option { return func(r *Runtime) { r.kubeContext = name } }

// WithClient uses cs and cfg instead of a kubeconfig (tests pass a fake clientset; exec
// and port-forward then fail, as they need a real API server).
func WithClient(cs kubernetes.Interface, cfg *rest.Config) Option {
	return func(r *Runtime) { r.cs, r.cfg = cs, cfg }
}

// WithGrace sets the pods' termination grace period, rounded up to whole seconds.
func WithGrace(d time.Duration) Option {
	return func(r *Runtime) {
		if d > 0 {
			r.grace = d
		}
	}
}

// WithStartTimeout bounds the readiness wait of Start and Restart.
func WithStartTimeout(d time.Duration) Option {
	return func(r *Runtime) {
		if d > 0 {
			r.startTimeout = d
		}
	}
}

// WithVolumeRoot is the node directory holding run volumes (see volumeSource).
func WithVolumeRoot(dir string) Option {
	return func(r *Runtime) {
		if dir != "" {
			r.volumeRoot = dir
		}
	}
}

// WithLogger receives the runtime's messages.
func WithLogger(l *slog.Logger) Option {
	return func(r *Runtime) {
		if l != nil {
			r.log = l
		}
	}
}

// WithLeaseOptions adds options to the run's Lease and reaper (lease.Start), after the
// runtime's own (the reaper runs the run's image, WithImage, pulled if not present; on a
// kubeconfig whose API server is a loopback address it reaches it from the node's
// network): a shorter TTL (lease.WithTTL), or lease.WithoutReaper where no pod can run.
func WithLeaseOptions(opts ...lease.Option) Option {
	return func(r *Runtime) { r.leaseOpts = append(r.leaseOpts, opts...) }
}

// WithLeaseTTL sets the run's Lease TTL (lease.WithTTL); 0 keeps lease.DefaultTTL, so
// that callers can pass a flag or a config field through as it is.
func WithLeaseTTL(d time.Duration) Option {
	return func(r *Runtime) {
		if d != 0 {
			r.leaseOpts = append(r.leaseOpts, lease.WithTTL(d))
		}
	}
}

// LoadConfig reads a kubeconfig the way kubectl does: path when set, else KUBECONFIG,
// else ~/.kube/config; context picks another context than the current one.
func LoadConfig(path, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// New connects to the cluster, creates the run's namespace and starts its Lease and
// reaper there (lease.Start); when those fail it deletes the namespace again. Call Close
// (even after a failed run) to delete it; a killed harness leaves it to the reaper, once
// the Lease expires, and to the next command.
func New(ctx context.Context, opts ...Option) (*Runtime, error) {
	r := &Runtime{
		grace: DefaultGrace, startTimeout: DefaultStartTimeout, volumeRoot: DefaultVolumeRoot,
		log: slog.New(slog.DiscardHandler), procs: map[string]*Process{}, changed: make(chan struct{}),
	}
	for _, o := range opts {
		o(r)
	}
	if r.runID == "" {
		r.runID = NewRunID()
	}
	if r.cs == nil {
		cfg, err := LoadConfig(r.kubeconfig, r.kubeContext)
		if err != nil {
			return nil, fmt.Errorf("create runtime: %w", err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("create runtime: %w", err)
		}
		r.cfg, r.cs = cfg, cs
	}
	// The reaper runs the run's image: one that is on no node would only show as a pod
	// that never starts, after the whole start timeout.
	if r.image != "" {
		if err := r.ImagesPresent(ctx, r.image); err != nil {
			return nil, fmt.Errorf("create runtime: %w", err)
		}
	}
	r.ns = NamespaceFor(r.runID)
	meta := metav1.ObjectMeta{Name: r.ns, Labels: lease.NamespaceLabels(r.runID), Annotations: map[string]string{lease.AnnotationRun: r.runID}}
	if _, err := r.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: meta}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", r.ns, err)
	}
	k, err := lease.Start(ctx, r.cs, r.ns, r.runID, r.leaseOptions()...)
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
		defer cancel()
		return nil, errors.Join(fmt.Errorf("create runtime: %w", err), deleteNamespace(dctx, r.cs, r.ns))
	}
	r.keeper = k
	r.stopInformer = make(chan struct{})
	f := informers.NewSharedInformerFactoryWithOptions(r.cs, 0, informers.WithNamespace(r.ns))
	r.pods = f.Core().V1().Pods().Informer()
	wake := func(any) { r.wake() }
	if _, err := r.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: wake, UpdateFunc: func(_, n any) { r.wake() }, DeleteFunc: wake,
	}); err != nil {
		return nil, errors.Join(fmt.Errorf("watch pods: %w", err), r.Close(context.WithoutCancel(ctx)))
	}
	f.Start(r.stopInformer)
	r.fw = newForwarders(r)
	return r, nil
}

// leaseOptions are the options of the run's lease.Start: the reaper runs the run's image
// (pulled when the node lacks it), and talks to a loopback API server from the node's
// network; then WithLeaseOptions'.
func (r *Runtime) leaseOptions() []lease.Option {
	opts := []lease.Option{lease.WithImage(r.image), lease.WithImagePullPolicy(string(corev1.PullIfNotPresent))}
	if r.cfg != nil {
		if server, ok := loopbackServer(r.cfg.Host); ok {
			opts = append(opts, lease.WithReaperAPIServer(server))
		}
	}
	return append(opts, r.leaseOpts...)
}

// loopbackServer returns host as a URL when it names a loopback address: an API server
// the harness reaches on its own machine's loopback (a local cluster's, or a tunnel's)
// has no address a pod's network leads to, so the reaper runs on the node's network and
// dials it there, which holds when the node is that machine (the local test cluster).
func loopbackServer(host string) (string, bool) {
	if host == "" {
		return "", false
	}
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return "", false
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", false
	}
	return u.String(), true
}

// LeaseLost is closed when the run's Lease could not be renewed for a whole TTL (the
// cluster unreachable, the Lease taken): the reaper may be deleting the namespace, and
// the run should stop (ErrLeaseLost).
func (r *Runtime) LeaseLost() <-chan struct{} {
	if r.keeper == nil {
		return nil
	}
	return r.keeper.Lost()
}

// wake tells every waiter that a pod changed.
func (r *Runtime) wake() {
	r.changedMu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.changedMu.Unlock()
}

// changes returns a channel closed at the next pod change.
func (r *Runtime) changes() <-chan struct{} {
	r.changedMu.Lock()
	defer r.changedMu.Unlock()
	return r.changed
}

// podsOf lists the pods of instance name from the informer's cache, newest first.
func (r *Runtime) podsOf(name string) []*corev1.Pod {
	var out []*corev1.Pod
	sel := labels.SelectorFromSet(selector(r.runID, name))
	for _, o := range r.pods.GetStore().List() {
		if p, ok := o.(*corev1.Pod); ok && sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	return out
}

// NewRunID returns a short random run id.
func NewRunID() string { return "r" + shortHash(time.Now().String())[:8] }

// RunID is the id everything of this runtime is labelled with.
func (r *Runtime) RunID() string { return r.runID }

// Namespace is the run's namespace.
func (r *Runtime) Namespace() string { return r.ns }

// Network is the run's namespace: its Services are the names components dial.
func (r *Runtime) Network() string { return r.ns }

// Client is the clientset the runtime talks to the cluster with.
func (r *Runtime) Client() kubernetes.Interface { return r.cs }

// Start creates s's ConfigMap, Secret, Services and Deployment and returns once its pod
// runs (and, with Container.Ready, its readiness probe passes). The container's
// environment is s.Env plus FAULTLINE_BIND_ANY=1; ports are reached from the harness
// through the API server (HostPort).
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (runtime.Process, error) {
	if errs := validate(s); len(errs) > 0 {
		return nil, fmt.Errorf("start %s: validate spec: %w", s.Name, errors.Join(errs...))
	}
	s = s.ContainerClone()
	if s.Container.Image == "" {
		s.Container.Image = r.image
	}
	if s.Container.Image == "" {
		return nil, fmt.Errorf("start %s: no image (set Spec.Container.Image or WithImage)", s.Name)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", s.Name, runtime.ErrClosed)
	}
	if _, exists := r.procs[s.Name]; exists {
		r.mu.Unlock()
		return nil, fmt.Errorf("start %s: an instance with this name exists", s.Name)
	}
	p := newProcess(r, s)
	r.procs[s.Name] = p
	r.mu.Unlock()
	if err := p.create(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	return p, nil
}

// Processes lists every instance started, in name order.
func (r *Runtime) Processes() []runtime.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]runtime.Process, 0, len(r.procs))
	for _, n := range slices.Sorted(maps.Keys(r.procs)) {
		out = append(out, r.procs[n])
	}
	return out
}

// Close stops renewing the run's Lease and removes its reaper (first, so that it never
// sees the Lease go), deletes the run's namespace, kills its pods at once, and waits until
// the namespace is gone, with everything in it. Later Starts fail with runtime.ErrClosed.
// Calling Close twice is safe.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	procs := slices.Collect(maps.Values(r.procs))
	r.mu.Unlock()
	if already {
		return nil
	}
	for _, p := range procs {
		p.close()
	}
	if r.fw != nil {
		r.fw.close()
	}
	if r.stopInformer != nil {
		close(r.stopInformer)
	}
	var errs []error
	if err := r.keeper.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := EndNamespace(ctx, r.cs, r.ns); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close runtime %s: %w", r.runID, err)
	}
	return nil
}

// EndNamespace deletes a run's namespace ns, kills its pods at once (lease.KillPods: the
// namespace controller would give each its grace period, and the run is over) and waits
// until none of the system's pods is left: the system has ended. It does not wait for the
// namespace itself to go, which its controller finishes some 5 s later (the run's Lease
// and reaper are already gone, so nothing in it acts any more); deleteNamespace does. A
// namespace already gone is not an error. The run's Close and its undo record's cleaner
// both end their namespace with it.
func EndNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	bg := metav1.DeletePropagationBackground
	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	if err := lease.KillPods(ctx, cs, ns); err != nil {
		return err
	}
	return waitGone(ctx, fmt.Sprintf("the pods of namespace %s", ns), func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: lease.SystemPods})
		return err == nil && len(pods.Items) == 0, err
	})
}

// deleteNamespace ends ns (EndNamespace) and waits until the namespace is gone too.
func deleteNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	if err := EndNamespace(ctx, cs, ns); err != nil {
		return err
	}
	return waitGone(ctx, "namespace "+ns, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// waitGone polls gone every 200 ms (runtime/wait) until it says what is gone, or ctx ends;
// an error from it is retried (the API server may be briefly unreachable) and given as
// the last one if ctx ends.
func waitGone(ctx context.Context, what string, gone wait.Func) error {
	if err := gone.Every(200 * time.Millisecond).Wait(ctx); err != nil {
		return fmt.Errorf("wait for %s to go: %w", what, err)
	}
	return nil
}

// Clean deletes every namespace labelled with runID (every faultline namespace when runID
// is empty) and names what it deleted: the healing of a run whose harness died.
func Clean(ctx context.Context, cs kubernetes.Interface, runID string) ([]string, error) {
	sel := lease.ManagedSelector
	if runID != "" {
		sel += "," + lease.LabelRun + "=" + lease.RunLabelValue(runID)
	}
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list namespaces of run %s: %w", runID, err)
	}
	var out []string
	var errs []error
	for _, ns := range list.Items {
		if err := deleteNamespace(ctx, cs, ns.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, "namespace "+ns.Name)
	}
	return out, errors.Join(errs...)
}
