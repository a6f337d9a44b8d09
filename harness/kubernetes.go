package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/faultline-dev/faultline/result"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/scenarios"
	"github.com/faultline-dev/faultline/undo"
)

// Kubernetes configures runs on a Kubernetes cluster. Zero fields are found: the
// kubeconfig as kubectl finds it, the images as the ones built from this source tree and
// imported into the cluster's nodes (kubernetes.LocalImages).
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file; empty follows KUBECONFIG, else ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig's context; empty is its current one.
	Context string
	// Image holds the faultline binary at /faultline; Toxiproxy holds Toxiproxy's server.
	// Pushed with faultline images push, or imported into the nodes.
	Image, Toxiproxy string
	// Registry (HOST[:PORT][/PATH]) names the images Image and Toxiproxy leave empty as
	// faultline images push --registry Registry tags this source tree's (images.Ref);
	// empty names them as imported into the nodes (kubernetes.LocalImageHost).
	Registry string
	// VolumeRoot is the node directory holding run volumes (kubernetes.WithVolumeRoot).
	VolumeRoot string
	// ModuleRoot is the source tree local images are named from; empty asks the go
	// command from the working directory.
	ModuleRoot string
	// LeaseTTL is how long the run's Lease lives without renewal before its reaper
	// deletes the run's namespace (lease.DefaultTTL when 0; whole seconds, at least 3 s).
	LeaseTTL time.Duration
}

// WithKubernetes sets how runs on the kubernetes runtime reach their cluster and images.
func WithKubernetes(k Kubernetes) Option { return func(o *options) { o.kubernetes = k } }

// KubernetesImages fills in the image references k leaves empty with this source tree's
// images in k.Registry, or as imported into the nodes when it is empty
// (kubernetes.RegistryImages), so that a suite names them once.
func KubernetesImages(ctx context.Context, k Kubernetes) (Kubernetes, error) {
	if k.Image != "" && k.Toxiproxy != "" {
		return k, nil
	}
	fl, tp, err := kubernetes.RegistryImages(ctx, k.ModuleRoot, cmp.Or(k.Registry, kubernetes.LocalImageHost))
	if err != nil {
		return k, fmt.Errorf("name kubernetes images: %w", err)
	}
	if k.Image == "" {
		k.Image = fl
	}
	if k.Toxiproxy == "" {
		k.Toxiproxy = tp
	}
	return k, nil
}

// startKubernetes creates the run's namespace in d, records it for healing, and returns
// Toxiproxy's image. Images never pulled (kubernetes.LocalImageHost) must already be on a
// node: the run fails at once, saying so, instead of waiting for pods that cannot start.
func (r *runner) startKubernetes(ctx context.Context, d *containerRun) (string, error) {
	k, err := KubernetesImages(ctx, r.o.kubernetes)
	if err != nil {
		return "", err
	}
	kubeconfig := k.Kubeconfig
	if kubeconfig != "" {
		if kubeconfig, err = filepath.Abs(kubeconfig); err != nil {
			return "", fmt.Errorf("start kubernetes runtime: %w", err)
		}
	}
	runID := r.journal.Record().RunID
	// Recorded before the namespace exists: a harness killed right after creating it
	// still leaves the next command enough to delete it.
	if err := r.journal.RecordNamespace(undo.Namespace{Name: kubernetes.NamespaceFor(runID), Kubeconfig: kubeconfig, Context: k.Context}); err != nil {
		return "", err
	}
	r.journal.SetNamespaceCleaner(CleanKubernetes)
	rt, err := kubernetes.New(ctx, kubernetes.WithRunID(runID), kubernetes.WithKubeconfig(kubeconfig),
		kubernetes.WithContext(k.Context), kubernetes.WithImage(k.Image), kubernetes.WithLogger(r.o.log),
		kubernetes.WithStartTimeout(r.o.readyTimeout), kubernetes.WithVolumeRoot(k.VolumeRoot),
		kubernetes.WithLeaseTTL(k.LeaseTTL))
	if err != nil {
		return "", fmt.Errorf("start kubernetes runtime: %w", err)
	}
	d.rt = rt
	if err := rt.ImagesPresent(ctx, k.Image, k.Toxiproxy); err != nil {
		return "", fmt.Errorf("start kubernetes runtime: %w", err)
	}
	return k.Toxiproxy, nil
}

// leaseHolder is a runtime, or a system under test, that holds a lease on what it runs
// and may lose it: a Kubernetes runtime whose Lease could not be renewed for a whole TTL,
// so that its reaper may be deleting the run's namespace under the run.
type leaseHolder interface{ LeaseLost() <-chan struct{} }

var _ leaseHolder = (*kubernetes.Runtime)(nil)

// watchLease cancels the run (cancel, with kubernetes.ErrLeaseLost) as soon as its
// container runtime, its system or the Up it runs on (WithStarted) loses its lease: a run going on without it would
// judge a system being deleted. stop ends the watch.
func (r *runner) watchLease(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	holders := []any{r.sys}
	if r.docker != nil {
		holders = append(holders, r.docker.rt)
	}
	if r.o.started != nil {
		// A run on a system already up (WithStarted): its runtime's lease is the Up's.
		holders = append(holders, r.o.started)
	}
	return WatchLease(ctx, cancel, r.o.log, holders...)
}

// WatchLease is the one watch of a lease on a cluster, for a run and for whatever keeps a
// system up until it is interrupted (faultline up, a console): it calls cancel with
// kubernetes.ErrLeaseLost as soon as one of holders that holds a lease on what it runs
// (a LeaseLost method: a kubernetes.Runtime, a system on one) loses it, since its reaper
// may be deleting the run's namespace. Other holders are ignored. stop ends the watch;
// ctx ending ends it too.
func WatchLease(ctx context.Context, cancel context.CancelCauseFunc, log *slog.Logger, holders ...any) (stop func()) {
	var lost []<-chan struct{}
	for _, h := range holders {
		if l, ok := h.(leaseHolder); ok {
			if ch := l.LeaseLost(); ch != nil {
				lost = append(lost, ch)
			}
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, ch := range lost {
		wg.Go(func() {
			select {
			case <-ch:
				log.Error("the run's lease is lost: stopping", "err", kubernetes.ErrLeaseLost)
				cancel(kubernetes.ErrLeaseLost)
			case <-done:
			case <-ctx.Done():
			}
		})
	}
	return sync.OnceFunc(func() { close(done); wg.Wait() })
}

// leaseLost records a run ended by the loss of its lease (ctx's cause): verdict error,
// whatever was measured so far, and returns the run's error; nil when ctx did not end so.
func (r *runner) leaseLost(ctx context.Context) error {
	if ctx.Err() == nil || !errors.Is(context.Cause(ctx), kubernetes.ErrLeaseLost) {
		return nil
	}
	r.res.Verdict, r.res.Reason = result.Error, kubernetes.ErrLeaseLost.Error()
	r.res.Hint = "the harness could not renew the run's Lease on the cluster for a whole TTL (cluster unreachable or overloaded), " +
		"so its reaper may be deleting the run's namespace; the run was stopped and healed as far as the cluster answered"
	return fmt.Errorf("run scenario: %w", kubernetes.ErrLeaseLost)
}

// CleanKubernetes ends a run's recorded namespaces, each on the cluster it recorded, and
// names them: the namespace cleaner of a Kubernetes run's undo record. Each is deleted and
// its pods killed; it returns once none of their pods is left (kubernetes.EndNamespace),
// leaving the namespaces, already being deleted, to their controller: waiting for them
// too took some 5 s of every run's end.
func CleanKubernetes(ctx context.Context, runID string, nss []undo.Namespace) ([]string, error) {
	var out []string
	var errs []error
	for _, ns := range nss {
		cfg, err := kubernetes.LoadConfig(ns.Kubeconfig, ns.Context)
		if err != nil {
			errs = append(errs, fmt.Errorf("clean kubernetes run %s: %w", runID, err))
			continue
		}
		cs, err := kubernetes.NewClientset(cfg)
		if err != nil {
			errs = append(errs, fmt.Errorf("clean kubernetes run %s: %w", runID, err))
			continue
		}
		if err := kubernetes.EndNamespace(ctx, cs, ns.Name); err != nil {
			errs = append(errs, fmt.Errorf("clean kubernetes run %s: %w", runID, err))
			continue
		}
		out = append(out, "namespace "+ns.Name)
	}
	return out, errors.Join(errs...)
}

// kubernetesRefused are the fault kinds a run on Kubernetes refuses, with the reason.
var kubernetesRefused = map[string]string{
	"disconnect": "the harness does not control a cluster's pod network: taking a pod off it needs a NetworkPolicy, " +
		"which only some network plugins enforce (the bridge plugin does not), and a policy a plugin ignores would pass silently; " +
		"cut the component's links with partition instead",
	"crash_loop": "the kubelet restarts a killed container by itself, after a back-off it doubles at every crash (10 s, 20 s, 40 s …), " +
		"so the loop's own kill-and-restart timing cannot be kept; use crash, restart or delete",
}

// controllerRefused are the fault kinds refused on a runtime with no controller that
// replaces a deleted instance (local processes, Docker containers), with the reason: a
// delete there would be a crash nobody heals, or a restart under another name.
var controllerRefused = map[string]string{
	"delete": "delete needs a controller that replaces the deleted instance: only the kubernetes runtime has one " +
		"(the instance's Deployment); use crash or restart",
}

// RefusedFaults returns the fault kinds runtime rt refuses, each with the reason, for
// scenarios.SystemShape.RefusedFaults: validation then refuses them where the file says
// so, before any run.
func RefusedFaults(rt string) map[string]string {
	if rt == "kubernetes" {
		return kubernetesRefused
	}
	return controllerRefused
}

// RuntimeProblems returns the faults of sc that runtime rt refuses, each naming its place
// in the scenario and the reason; nil when there are none.
func RuntimeProblems(sc *scenarios.Scenario, rt string) []error {
	refused := RefusedFaults(rt)
	var errs []error
	for i, f := range sc.Faults {
		if why, ok := refused[f.Type]; ok {
			errs = append(errs, fmt.Errorf("faults[%d] (%s): not available on %s: %s", i, f.Type, rt, why))
		}
	}
	return errs
}

// KubernetesRefused lists the fault kinds refused on Kubernetes, sorted, for help texts.
func KubernetesRefused() []string {
	var out []string
	for k := range kubernetesRefused {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
