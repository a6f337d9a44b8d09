package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// DefaultStaleMargin is added to a Lease's TTL before the next command calls its run
// stale: renewTime is the harness's clock, which may be off from this one's.
const DefaultStaleMargin = 30 * time.Second

// MinStaleAge is the age below which a run namespace is never stale, whatever its Lease
// says or lacks: a run that has just created its namespace may not have written its
// Lease yet, and the namespace's creationTimestamp is the API server's clock, which may
// be off from this one's.
const MinStaleAge = DefaultTTL + DefaultStaleMargin

// ManagedSelector is the label selector of every run namespace (and of the reaper's
// cluster-scoped rights): Stale lists by it, and so does everything that looks for runs.
const ManagedSelector = LabelManaged + "=true"

// StaleRun is a run namespace whose harness stopped renewing its Lease.
type StaleRun struct {
	Namespace string
	RunID     string        // from the namespace's annotation, else its label
	Why       string        // "lease expired 1m2s ago", "no lease"
	Age       time.Duration // the namespace's age
}

// StaleOption configures Stale.
type StaleOption func(*staleConfig)

type staleConfig struct {
	margin time.Duration
	clock  clock.PassiveClock
}

// WithStaleMargin sets how long past its TTL a Lease must be before its run is stale
// (DefaultStaleMargin).
func WithStaleMargin(d time.Duration) StaleOption { return func(c *staleConfig) { c.margin = d } }

// WithStaleClock replaces the real clock (tests).
func WithStaleClock(cl clock.PassiveClock) StaleOption { return func(c *staleConfig) { c.clock = cl } }

// Stale lists the run namespaces (ManagedSelector, not already being deleted) at least
// MinStaleAge old whose Lease's renewTime is older than its TTL plus the margin, or that
// have no Lease (a harness killed between creating the namespace and its Lease). A
// namespace younger than MinStaleAge, or whose Lease is alive, is never listed, so a run
// of another machine in progress, even one that has just begun, is safe.
func Stale(ctx context.Context, client kubernetes.Interface, opts ...StaleOption) ([]StaleRun, error) {
	cfg := staleConfig{margin: DefaultStaleMargin, clock: clock.RealClock{}}
	for _, o := range opts {
		o(&cfg)
	}
	nss, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ManagedSelector})
	if err != nil {
		return nil, fmt.Errorf("list stale runs: %w", err)
	}
	now := cfg.clock.Now()
	var out []StaleRun
	for _, ns := range nss.Items {
		if ns.DeletionTimestamp != nil {
			continue
		}
		run := StaleRun{Namespace: ns.Name, RunID: ns.Annotations[AnnotationRun], Age: now.Sub(ns.CreationTimestamp.Time)}
		if run.RunID == "" {
			run.RunID = ns.Labels[LabelRun]
		}
		if run.Age < MinStaleAge {
			continue
		}
		l, err := client.CoordinationV1().Leases(ns.Name).Get(ctx, LeaseName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			run.Why = "no lease"
		case err != nil:
			return out, fmt.Errorf("list stale runs: read lease of %s: %w", ns.Name, err)
		default:
			ttl := DefaultTTL
			if d := l.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
				ttl = time.Duration(*d) * time.Second
			}
			renewed := l.CreationTimestamp.Time
			if r := l.Spec.RenewTime; r != nil {
				renewed = r.Time
			}
			past := now.Sub(renewed) - ttl
			if past < cfg.margin {
				continue
			}
			run.Why = fmt.Sprintf("lease expired %s ago", past.Round(time.Second))
		}
		out = append(out, run)
	}
	return out, nil
}

// DeleteRun deletes a run's namespace, kills its pods at once (KillPods), and deletes the
// reaper's cluster-scoped objects of it (the garbage collector would too, once the
// namespace is gone; a missing one is fine). It does not wait for the namespace to be
// gone: its controller finishes the job.
func DeleteRun(ctx context.Context, client kubernetes.Interface, namespace string) error {
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	var errs []error
	err := client.CoreV1().Namespaces().Delete(ctx, namespace, opts)
	switch {
	case err == nil:
		if err := KillPods(ctx, client, namespace); err != nil {
			errs = append(errs, err)
		}
	case !apierrors.IsNotFound(err):
		errs = append(errs, err)
	}
	if err := client.RbacV1().ClusterRoleBindings().Delete(ctx, clusterName(namespace), opts); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	if err := client.RbacV1().ClusterRoles().Delete(ctx, clusterName(namespace), opts); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete run namespace %s: %w", namespace, err)
	}
	return nil
}

// CleanStale deletes every namespace Stale lists and returns their names, with the
// reaper's cluster-scoped objects whose namespace no longer exists.
func CleanStale(ctx context.Context, client kubernetes.Interface, opts ...StaleOption) ([]string, error) {
	runs, err := Stale(ctx, client, opts...)
	var deleted []string
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range runs {
		if err := DeleteRun(ctx, client, r.Namespace); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, "namespace "+r.Namespace+" ("+r.Why+")")
	}
	orphans, err := deleteOrphans(ctx, client)
	deleted = append(deleted, orphans...)
	if err != nil {
		errs = append(errs, err)
	}
	return deleted, errors.Join(errs...)
}

// deleteOrphans deletes the reaper ClusterRoles and ClusterRoleBindings whose namespace
// is gone: the garbage collector's job, done here for a cluster that lacks one.
func deleteOrphans(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	sel := metav1.ListOptions{LabelSelector: ManagedSelector}
	gone := func(owners []metav1.OwnerReference) bool {
		i := slices.IndexFunc(owners, func(o metav1.OwnerReference) bool { return o.Kind == "Namespace" })
		if i < 0 {
			return false
		}
		ns, err := client.CoreV1().Namespaces().Get(ctx, owners[i].Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err) || err == nil && ns.UID != owners[i].UID
	}
	var out []string
	var errs []error
	bindings, err := client.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("delete orphaned reaper rights: %w", err)
	}
	for _, b := range bindings.Items {
		if gone(b.OwnerReferences) {
			if err := client.RbacV1().ClusterRoleBindings().Delete(ctx, b.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			} else {
				out = append(out, "clusterrolebinding "+b.Name)
			}
		}
	}
	roles, err := client.RbacV1().ClusterRoles().List(ctx, sel)
	if err != nil {
		return out, fmt.Errorf("delete orphaned reaper rights: %w", err)
	}
	for _, r := range roles.Items {
		if gone(r.OwnerReferences) {
			if err := client.RbacV1().ClusterRoles().Delete(ctx, r.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			} else {
				out = append(out, "clusterrole "+r.Name)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("delete orphaned reaper rights: %w", err)
	}
	return out, nil
}

// Leftovers names everything of Faultline's still in the cluster (ManagedSelector): run
// namespaces, terminating ones included, and the reapers' ClusterRoles and
// ClusterRoleBindings. After every run has ended it must be empty: CI checks it after a
// suite on a cluster.
func Leftovers(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	sel := metav1.ListOptions{LabelSelector: ManagedSelector}
	var out []string
	nss, err := client.CoreV1().Namespaces().List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list leftovers: %w", err)
	}
	for _, ns := range nss.Items {
		out = append(out, "namespace "+ns.Name)
	}
	roles, err := client.RbacV1().ClusterRoles().List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list leftovers: %w", err)
	}
	for _, r := range roles.Items {
		out = append(out, "clusterrole "+r.Name)
	}
	bindings, err := client.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return nil, fmt.Errorf("list leftovers: %w", err)
	}
	for _, b := range bindings.Items {
		out = append(out, "clusterrolebinding "+b.Name)
	}
	return out, nil
}
