package lease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/faultline-dev/faultline/runtime/images"
	"github.com/faultline-dev/faultline/runtime/wait"
)

// reaperStartTimeout bounds the wait for the reaper's pod: an image pull from a slow
// registry is the long part.
const reaperStartTimeout = 2 * time.Minute

var labelValue = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)

// RunLabelValue is runID as a label value: itself when it is one, else (too long, or a
// character a label refuses) a readable prefix and a hash of the whole id.
func RunLabelValue(runID string) string {
	if labelValue.MatchString(runID) {
		return runID
	}
	sum := sha256.Sum256([]byte(runID))
	var prefix []byte
	for i := 0; i < len(runID) && len(prefix) < 46; i++ {
		if c := runID[i]; c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			prefix = append(prefix, c)
		}
	}
	for len(prefix) > 0 && !isAlnum(prefix[0]) {
		prefix = prefix[1:]
	}
	for len(prefix) > 0 && !isAlnum(prefix[len(prefix)-1]) {
		prefix = prefix[:len(prefix)-1]
	}
	v := hex.EncodeToString(sum[:])[:16]
	if len(prefix) > 0 {
		v = string(prefix) + "-" + v
	}
	return v
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// runLabels are the labels of everything this package creates for runID; the runtime's
// namespace carries the same.
func runLabels(runID string) map[string]string {
	return map[string]string{LabelManaged: "true", LabelRun: RunLabelValue(runID)}
}

// NamespaceLabels are the labels a run's namespace needs for Stale to find it.
func NamespaceLabels(runID string) map[string]string { return runLabels(runID) }

// clusterName names the reaper's ClusterRole and ClusterRoleBinding of namespace.
func clusterName(namespace string) string { return ReaperName + "-" + namespace }

// ReaperRules are what the reaper may do: read its Lease and kill the namespace's pods (a
// Role in the namespace), and delete its namespace (a ClusterRole limited to it by name).
func ReaperRules(namespace string) (inNamespace, cluster []rbacv1.PolicyRule) {
	return []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{LeaseName}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"deletecollection"}},
		},
		[]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"},
			ResourceNames: []string{namespace}, Verbs: []string{"delete"}}}
}

// startReaper creates the reaper's identity, rights and Deployment, and waits for its pod
// to run.
func startReaper(ctx context.Context, client kubernetes.Interface, namespace, runID string, cfg config) error {
	ns, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("start reaper: %w", err)
	}
	labels := runLabels(runID)
	meta := metav1.ObjectMeta{Name: ReaperName, Labels: labels}
	// The cluster-scoped pair belongs to the namespace: the garbage collector deletes them
	// once it is gone, however it went.
	owned := metav1.ObjectMeta{Name: clusterName(namespace), Labels: labels, OwnerReferences: []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "Namespace", Name: ns.Name, UID: ns.UID,
	}}}
	inNS, cluster := ReaperRules(namespace)
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ReaperName, Namespace: namespace}}
	create := []func() error{
		func() error {
			_, err := client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{ObjectMeta: meta, Rules: inNS}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: ReaperName}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: owned, Rules: cluster}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: owned, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterName(namespace)}}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := client.AppsV1().Deployments(namespace).Create(ctx, reaperDeployment(namespace, runID, cfg), metav1.CreateOptions{})
			return err
		},
	}
	for _, c := range create {
		if err := c(); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("start reaper: %w", err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, reaperStartTimeout)
	defer cancel()
	err = wait.Func(func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(namespace).Get(ctx, ReaperName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Status.AvailableReplicas >= 1, nil
	}).Every(200 * time.Millisecond).Wait(wctx)
	if err != nil {
		return fmt.Errorf("start reaper: wait for its pod: %w%s", err, podTrouble(ctx, client, namespace))
	}
	return nil
}

// podTrouble says why the reaper's pod is not running, when a container says so.
func podTrouble(ctx context.Context, client kubernetes.Interface, namespace string) string {
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + ReaperName})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		for _, s := range p.Status.ContainerStatuses {
			if w := s.State.Waiting; w != nil {
				return fmt.Sprintf(" (pod %s: %s: %s)", p.Name, w.Reason, w.Message)
			}
		}
	}
	return ""
}

func reaperDeployment(namespace, runID string, cfg config) *appsv1.Deployment {
	one := int32(1)
	sel := map[string]string{"app": ReaperName}
	podLabels := runLabels(runID)
	podLabels["app"] = ReaperName
	args := []string{"reap", "--kubernetes", "--namespace", namespace, "--lease", LeaseName,
		"--poll", cfg.poll.String(), "--ttl", cfg.ttl.String()}
	spec := corev1.PodSpec{
		ServiceAccountName: ReaperName,
		// Nothing to flush: the reaper's work is one API call.
		TerminationGracePeriodSeconds: new(int64),
		Containers: []corev1.Container{{
			Name: "reaper", Image: cfg.image, ImagePullPolicy: corev1.PullPolicy(cfg.pullPolicy),
			Command: []string{images.FaultlinePath}, Args: args,
		}},
	}
	if cfg.apiServer != "" {
		spec.Containers[0].Args = append(spec.Containers[0].Args, "--server", cfg.apiServer)
		spec.HostNetwork = true
		spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: ReaperName, Labels: runLabels(runID)},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels}, Spec: spec},
		},
	}
}

// deleteReaper removes the reaper's Deployment (first, so that it stops watching) and its
// rights, the cluster-scoped ones included.
func deleteReaper(ctx context.Context, client kubernetes.Interface, namespace string) error {
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	var errs []error
	for _, del := range []func() error{
		func() error { return client.AppsV1().Deployments(namespace).Delete(ctx, ReaperName, opts) },
		func() error { return client.RbacV1().ClusterRoleBindings().Delete(ctx, clusterName(namespace), opts) },
		func() error { return client.RbacV1().ClusterRoles().Delete(ctx, clusterName(namespace), opts) },
		func() error { return client.RbacV1().RoleBindings(namespace).Delete(ctx, ReaperName, opts) },
		func() error { return client.RbacV1().Roles(namespace).Delete(ctx, ReaperName, opts) },
		func() error { return client.CoreV1().ServiceAccounts(namespace).Delete(ctx, ReaperName, opts) },
	} {
		if err := del(); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete reaper: %w", err)
	}
	return nil
}

// ReapConfig configures Reap.
type ReapConfig struct {
	Namespace string
	Lease     string        // LeaseName when empty
	TTL       time.Duration // until the Lease says otherwise; DefaultTTL when 0
	Poll      time.Duration // DefaultReaperPoll when 0
	Clock     clock.WithTicker
	Log       *slog.Logger
}

// Validate lists every problem with the configuration at once.
func (c ReapConfig) Validate() []error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("namespace: required"))
	}
	if c.TTL < 0 || c.Poll < 0 {
		errs = append(errs, errors.New("ttl and poll: must not be negative"))
	}
	return errs
}

// Reap is the reaper's loop, run in the namespace's reaper pod: it reads the Lease every
// Poll, and once it has seen no change for the Lease's TTL (counted on its own clock
// from the last change it saw) it deletes the namespace, then kills its pods (KillPods),
// and returns nil. It returns
// ctx's error when ctx ends first. An API error counts as no change: a harness that
// cannot reach the cluster cannot heal its faults either.
func Reap(ctx context.Context, client kubernetes.Interface, c ReapConfig) error {
	if errs := c.Validate(); len(errs) > 0 {
		return fmt.Errorf("reap: %w", errors.Join(errs...))
	}
	if c.Lease == "" {
		c.Lease = LeaseName
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Poll == 0 {
		c.Poll = DefaultReaperPoll
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	w := watcher{ttl: c.TTL, lastChange: c.Clock.Now()}
	t := c.Clock.NewTicker(c.Poll)
	defer t.Stop()
	for {
		l, err := client.CoordinationV1().Leases(c.Namespace).Get(ctx, c.Lease, metav1.GetOptions{})
		if err != nil && ctx.Err() == nil {
			c.Log.Warn("read lease", "namespace", c.Namespace, "err", err)
		}
		if w.observe(l, err, c.Clock.Now()) {
			c.Log.Info("lease expired: deleting the namespace", "namespace", c.Namespace,
				"holder", w.holder, "unchanged_for", c.Clock.Since(w.lastChange).Round(time.Millisecond).String(), "ttl", w.ttl.String())
			if err := deleteNamespace(ctx, client, c.Namespace, c.Clock, c.Poll); err != nil {
				return err
			}
			// The namespace first: terminating, it takes no new pod from a controller.
			if err := KillPods(ctx, client, c.Namespace); err != nil {
				// The namespace controller deletes them all the same, each with its grace
				// period (and it may have taken this pod's Role first).
				c.Log.Warn("kill pods", "namespace", c.Namespace, "err", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		}
	}
}

// watcher tells expiry from what the reaper saw of the Lease.
type watcher struct {
	ttl        time.Duration
	seen       string // the version last seen: resourceVersion and renewTime
	holder     string
	lastChange time.Time
}

// observe notes one read of the Lease (err from the read) at now and reports whether it
// has expired: unchanged (or unreadable) for a whole TTL since the last change seen.
func (w *watcher) observe(l *coordinationv1.Lease, err error, now time.Time) bool {
	if err == nil && l != nil {
		if d := l.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
			w.ttl = time.Duration(*d) * time.Second
		}
		v := l.ResourceVersion
		if r := l.Spec.RenewTime; r != nil {
			v += "/" + strconv.FormatInt(r.UnixMicro(), 10)
		}
		if v != w.seen {
			w.seen, w.lastChange, w.holder = v, now, deref(l.Spec.HolderIdentity)
		}
	}
	return now.Sub(w.lastChange) >= w.ttl
}

// SystemPods selects every pod of a run's namespace but the reaper's: the system's.
const SystemPods = "app!=" + ReaperName

// KillPods deletes every pod of namespace but the reaper's with no grace period, in one
// call (pods deletecollection): the namespace controller would give each its own, and a
// component that outlives its harness keeps serving, and its faults keep acting, until it
// is gone. Called once the namespace is being deleted, so no controller replaces them.
func KillPods(ctx context.Context, client kubernetes.Interface, namespace string) error {
	zero := int64(0)
	err := client.CoreV1().Pods(namespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: SystemPods})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kill pods of %s: %w", namespace, err)
	}
	return nil
}

// deleteNamespace deletes the namespace, retrying until the API server takes the
// request (or says it is already gone).
func deleteNamespace(ctx context.Context, client kubernetes.Interface, namespace string, cl clock.Clock, every time.Duration) error {
	bg := metav1.DeletePropagationBackground
	for {
		err := client.CoreV1().Namespaces().Delete(ctx, namespace, metav1.DeleteOptions{PropagationPolicy: &bg})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return fmt.Errorf("delete namespace %s: %w", namespace, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete namespace %s: %w (last: %w)", namespace, ctx.Err(), err)
		case <-cl.After(every):
		}
	}
}
