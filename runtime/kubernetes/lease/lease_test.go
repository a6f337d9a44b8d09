package lease

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

const testNS = "fl-run-1"

var epoch = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// newFake is a clientset holding the run's namespace, whose Deployments report one
// available replica as soon as they are created (there is no kubelet behind it).
func newFake(objs ...runtime.Object) *fake.Clientset {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS, UID: types.UID("uid-1"), Labels: NamespaceLabels("run-1")}}
	cs := fake.NewClientset(append([]runtime.Object{ns}, objs...)...)
	cs.PrependReactor("create", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		a.(k8stesting.CreateAction).GetObject().(*appsv1.Deployment).Status.AvailableReplicas = 1
		return false, nil, nil
	})
	return cs
}

// eventually polls cond on the real clock: the loops under test run in goroutines that
// react to the fake clock's steps.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func getLease(t *testing.T, cs *fake.Clientset) *coordinationv1.Lease {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(testNS).Get(context.Background(), LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestKeeperWritesAndRenewsLease(t *testing.T) {
	ctx := context.Background()
	cs := newFake()
	fc := clocktesting.NewFakeClock(epoch)
	k, err := Start(ctx, cs, testNS, "run-1", WithoutReaper(), WithTTL(6*time.Second), WithClock(fc))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop(ctx)
	l := getLease(t, cs)
	if got := deref(l.Spec.HolderIdentity); got != "run-1" {
		t.Errorf("holder = %q, want run-1", got)
	}
	if got := *l.Spec.LeaseDurationSeconds; got != 6 {
		t.Errorf("leaseDurationSeconds = %d, want 6", got)
	}
	if !l.Spec.RenewTime.Time.Equal(epoch) {
		t.Errorf("renewTime = %v, want %v", l.Spec.RenewTime.Time, epoch)
	}
	// One renewal every TTL/3: none before 2 s, one at 2 s, the next at 4 s.
	eventually(t, "renewal loop waiting on the clock", fc.HasWaiters)
	fc.Step(1900 * time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if n := k.Renewals(); n != 0 {
		t.Fatalf("renewals after 1.9s = %d, want 0", n)
	}
	for i, at := range []time.Duration{2 * time.Second, 4 * time.Second} {
		fc.SetTime(epoch.Add(at))
		eventually(t, "renewal", func() bool { return k.Renewals() == i+1 })
		if got := getLease(t, cs).Spec.RenewTime.Time; !got.Equal(epoch.Add(at)) {
			t.Errorf("renewTime after renewal %d = %v, want %v", i+1, got, epoch.Add(at))
		}
	}
	select {
	case <-k.Lost():
		t.Fatal("lease reported lost while renewals succeed")
	default:
	}
}

func TestKeeperReportsLostLease(t *testing.T) {
	ctx := context.Background()
	cs := newFake()
	fc := clocktesting.NewFakeClock(epoch)
	k, err := Start(ctx, cs, testNS, "run-1", WithoutReaper(), WithTTL(3*time.Second), WithClock(fc))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop(ctx)
	var failed atomic.Int32
	cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		failed.Add(1)
		return true, nil, apierrors.NewServiceUnavailable("etcd is gone")
	})
	eventually(t, "renewal ticker", fc.HasWaiters)
	for s := 1; s <= 2; s++ {
		fc.Step(time.Second)
		eventually(t, "failed renewal", func() bool { return failed.Load() == int32(s) })
		select {
		case <-k.Lost():
			t.Fatalf("lost after %ds of failed renewals, want only after the 3s TTL", s)
		default:
		}
	}
	fc.Step(time.Second)
	select {
	case <-k.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed after a whole TTL of failed renewals")
	}
	if err := k.Err(); !strings.Contains(err.Error(), "renew lease") {
		t.Errorf("Err() = %v, want a renew lease error", err)
	}
}

func TestStartRefusesLeaseOfAnotherRun(t *testing.T) {
	other := "run-0"
	cs := newFake(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: testNS},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &other}})
	_, err := Start(context.Background(), cs, testNS, "run-1", WithoutReaper())
	if err == nil || !strings.Contains(err.Error(), `held by "run-0"`) {
		t.Fatalf("Start over another run's lease: err = %v, want held by run-0", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want []string
	}{
		{"defaults with an image", []Option{WithImage("img")}, nil},
		{"no image", nil, []string{"reaper image"}},
		{"no reaper needs no image", []Option{WithoutReaper()}, nil},
		{"ttl too short, fractional, bad policy, poll too slow", []Option{WithImage("i"), WithTTL(2500 * time.Millisecond), WithImagePullPolicy("Sometimes"), WithReaperPoll(2 * time.Second)},
			[]string{"lease ttl", "reaper poll", "image pull policy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults()
			for _, o := range tt.opts {
				o(&cfg)
			}
			var got []string
			for _, e := range cfg.Validate() {
				got = append(got, strings.SplitN(e.Error(), ":", 2)[0])
			}
			for i := range got {
				for _, w := range tt.want {
					if strings.HasPrefix(got[i], w) {
						got[i] = w
					}
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStartCreatesReaperAndStopRemovesIt(t *testing.T) {
	ctx := context.Background()
	cs := newFake()
	k, err := Start(ctx, cs, testNS, "run-1", WithImage("reg.example/faultline:abc"), WithImagePullPolicy("Always"), WithTTL(9*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	d, err := cs.AppsV1().Deployments(testNS).Get(ctx, ReaperName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "reg.example/faultline:abc" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("reaper image %s %s, want reg.example/faultline:abc Always", c.Image, c.ImagePullPolicy)
	}
	if got, want := strings.Join(c.Args, " "), "reap --kubernetes --namespace "+testNS+" --lease "+LeaseName+" --poll 1s --ttl 9s"; got != want {
		t.Errorf("reaper args = %q, want %q", got, want)
	}
	if d.Spec.Template.Spec.ServiceAccountName != ReaperName || d.Spec.Template.Spec.HostNetwork {
		t.Errorf("reaper pod: service account %q, hostNetwork %v; want %q, false", d.Spec.Template.Spec.ServiceAccountName, d.Spec.Template.Spec.HostNetwork, ReaperName)
	}
	cr, err := cs.RbacV1().ClusterRoles().Get(ctx, ReaperName+"-"+testNS, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].ResourceNames, []string{testNS}) || !slices.Equal(cr.Rules[0].Verbs, []string{"delete"}) {
		t.Errorf("reaper ClusterRole rules = %+v, want delete on namespace %s only", cr.Rules, testNS)
	}
	crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, ReaperName+"-"+testNS, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for kind, owners := range map[string][]metav1.OwnerReference{"ClusterRole": cr.OwnerReferences, "ClusterRoleBinding": crb.OwnerReferences} {
		if len(owners) != 1 || owners[0].Kind != "Namespace" || owners[0].Name != testNS || owners[0].UID != "uid-1" {
			t.Errorf("%s owners = %+v, want the namespace %s (uid-1): the garbage collector removes it with the namespace", kind, owners, testNS)
		}
	}
	if err := k.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for what, err := range map[string]error{
		"deployment":         get(cs.AppsV1().Deployments(testNS).Get(ctx, ReaperName, metav1.GetOptions{})),
		"lease":              get(cs.CoordinationV1().Leases(testNS).Get(ctx, LeaseName, metav1.GetOptions{})),
		"clusterrole":        get(cs.RbacV1().ClusterRoles().Get(ctx, ReaperName+"-"+testNS, metav1.GetOptions{})),
		"clusterrolebinding": get(cs.RbacV1().ClusterRoleBindings().Get(ctx, ReaperName+"-"+testNS, metav1.GetOptions{})),
		"role":               get(cs.RbacV1().Roles(testNS).Get(ctx, ReaperName, metav1.GetOptions{})),
		"serviceaccount":     get(cs.CoreV1().ServiceAccounts(testNS).Get(ctx, ReaperName, metav1.GetOptions{})),
	} {
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s after Stop: err = %v, want not found", what, err)
		}
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, testNS, metav1.GetOptions{}); err != nil {
		t.Errorf("Stop deleted the caller's namespace: %v", err)
	}
}

func get[T any](_ T, err error) error { return err }

func TestReaperOnLoopbackAPIServerUsesHostNetwork(t *testing.T) {
	cfg := defaults()
	WithImage("i")(&cfg)
	WithReaperAPIServer("https://127.0.0.1:6443")(&cfg)
	spec := reaperDeployment(testNS, "run-1", cfg).Spec.Template.Spec
	if !spec.HostNetwork || !slices.Contains(spec.Containers[0].Args, "https://127.0.0.1:6443") {
		t.Errorf("hostNetwork %v, args %q; want true and --server https://127.0.0.1:6443", spec.HostNetwork, spec.Containers[0].Args)
	}
}

func TestRunLabelValue(t *testing.T) {
	long := "20261203T120000Z-" + strings.Repeat("very-long-scenario-", 4) + "12345"
	tests := []struct{ in, want string }{
		{"20261203T120000Z-dependency-latency-4242", "20261203T120000Z-dependency-latency-4242"},
		{long, "20261203T120000Z-very-long-scenario-very-long-" + hash16(long)},
		{"run/with space", "runwithspace-" + hash16("run/with space")},
		{"-x-", "x-" + hash16("-x-")},
	}
	for _, tt := range tests {
		got := RunLabelValue(tt.in)
		if got != tt.want {
			t.Errorf("RunLabelValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !labelValue.MatchString(got) {
			t.Errorf("RunLabelValue(%q) = %q is not a label value", tt.in, got)
		}
	}
}

func hash16(s string) string {
	v := RunLabelValue(s)
	return v[len(v)-16:]
}

func TestWatcherObserve(t *testing.T) {
	ttl := int32(5)
	lease := func(rv string, renew time.Time) *coordinationv1.Lease {
		r := metav1.NewMicroTime(renew)
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv},
			Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &ttl, RenewTime: &r}}
	}
	skewed := epoch.Add(-time.Hour) // the harness's clock an hour behind the reaper's
	type obs struct {
		at      time.Duration
		l       *coordinationv1.Lease
		err     error
		expired bool
	}
	tests := []struct {
		name string
		seq  []obs
	}{
		{"renewed every 2s never expires", []obs{
			{0, lease("1", epoch), nil, false}, {2 * time.Second, lease("2", epoch.Add(2*time.Second)), nil, false},
			{4 * time.Second, lease("3", epoch.Add(4*time.Second)), nil, false}, {8 * time.Second, lease("4", epoch.Add(8*time.Second)), nil, false}}},
		{"unchanged for the TTL expires", []obs{
			{0, lease("1", epoch), nil, false}, {4900 * time.Millisecond, lease("1", epoch), nil, false}, {5 * time.Second, lease("1", epoch), nil, true}}},
		{"a harness clock an hour off is judged by changes, not by its renewTime", []obs{
			{0, lease("1", skewed), nil, false}, {3 * time.Second, lease("2", skewed.Add(3*time.Second)), nil, false}, {7 * time.Second, lease("2", skewed.Add(3*time.Second)), nil, false},
			{8 * time.Second, lease("2", skewed.Add(3*time.Second)), nil, true}}},
		{"an unreadable lease is no renewal", []obs{
			{0, lease("1", epoch), nil, false}, {3 * time.Second, nil, errors.New("connection refused"), false}, {5 * time.Second, nil, errors.New("connection refused"), true}}},
		{"a deleted lease is no renewal", []obs{
			{0, lease("1", epoch), nil, false}, {5 * time.Second, nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), LeaseName), true}}},
		{"never seen: the default TTL from the start", []obs{
			{DefaultTTL - time.Millisecond, nil, errors.New("forbidden"), false}, {DefaultTTL, nil, errors.New("forbidden"), true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := watcher{ttl: DefaultTTL, lastChange: epoch}
			for i, o := range tt.seq {
				if got := w.observe(o.l, o.err, epoch.Add(o.at)); got != o.expired {
					t.Fatalf("observation %d at %v: expired = %v, want %v", i, o.at, got, o.expired)
				}
			}
		})
	}
}

func TestReapDeletesNamespaceOnlyAfterTTLWithoutRenewal(t *testing.T) {
	ctx := context.Background()
	ttl, holder := int32(3), "run-1"
	renewed := metav1.NewMicroTime(epoch)
	cs := newFake(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: testNS},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &ttl, RenewTime: &renewed}})
	var reads atomic.Int32
	cs.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		reads.Add(1)
		return false, nil, nil
	})
	fc := clocktesting.NewFakeClock(epoch)
	rc, cancel := context.WithCancel(ctx)
	defer cancel()
	reaped := make(chan error, 1)
	go func() {
		reaped <- Reap(rc, cs, ReapConfig{Namespace: testNS, Poll: 500 * time.Millisecond, Clock: fc})
	}()
	nsExists := func() bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, testNS, metav1.GetOptions{})
		return err == nil
	}
	want := int32(1)
	eventually(t, "first read", func() bool { return reads.Load() == want })
	tick := func(renew bool) {
		t.Helper()
		if renew {
			l := getLease(t, cs)
			r := metav1.NewMicroTime(fc.Now())
			l.Spec.RenewTime = &r
			if _, err := cs.CoordinationV1().Leases(testNS).Update(ctx, l, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			want++ // getLease's own read
		}
		fc.Step(500 * time.Millisecond)
		want++
		eventually(t, "the reaper's read after a tick", func() bool { return reads.Load() == want })
	}
	// 10 s of a live harness renewing every half second: never reaped.
	for range 20 {
		tick(true)
	}
	if !nsExists() {
		t.Fatal("namespace deleted while its lease was renewed")
	}
	// The harness dies: 2.5 s without renewal is within the 3 s TTL...
	for range 5 {
		tick(false)
	}
	if !nsExists() {
		t.Fatal("namespace deleted before the lease's 3s TTL")
	}
	// ...3 s is not.
	fc.Step(500 * time.Millisecond)
	select {
	case err := <-reaped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reaper did not return after the TTL")
	}
	if nsExists() {
		t.Fatal("namespace still there after the reaper returned")
	}
}

func TestStale(t *testing.T) {
	now := epoch
	ttl := int32(15)
	ns := func(name string, age time.Duration, terminating bool) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: NamespaceLabels("run-" + name),
			Annotations: map[string]string{AnnotationRun: "run-" + name}, CreationTimestamp: metav1.NewTime(now.Add(-age))}}
		if terminating {
			n.DeletionTimestamp = &metav1.Time{Time: now}
		}
		return n
	}
	lease := func(namespace string, renewedAgo time.Duration) *coordinationv1.Lease {
		r := metav1.NewMicroTime(now.Add(-renewedAgo))
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: namespace},
			Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &ttl, RenewTime: &r}}
	}
	cs := fake.NewClientset(
		ns("live", time.Hour, false), lease("live", 5*time.Second),
		ns("in-margin", time.Hour, false), lease("in-margin", 15*time.Second+29*time.Second),
		ns("expired", time.Hour, false), lease("expired", 15*time.Second+31*time.Second),
		ns("young-no-lease", 10*time.Second, false),
		ns("old-no-lease", time.Minute, false),
		ns("terminating", time.Hour, true),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-ours", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))}},
	)
	runs, err := Stale(context.Background(), cs, WithStaleClock(clocktesting.NewFakePassiveClock(now)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.Namespace+" "+r.RunID+": "+r.Why)
	}
	slices.Sort(got)
	want := []string{"expired run-expired: lease expired 31s ago", "old-no-lease run-old-no-lease: no lease"}
	if !slices.Equal(got, want) {
		t.Errorf("Stale() = %q, want %q", got, want)
	}
}

func TestCleanStaleDeletesNamespacesAndOrphanedRights(t *testing.T) {
	ctx := context.Background()
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	owned := func(name, ns, uid string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Labels: NamespaceLabels("r"), OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Namespace", Name: ns, UID: types.UID(uid)}}}
	}
	cs := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dead", UID: "u-dead", Labels: NamespaceLabels("dead"), CreationTimestamp: old}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "reused", UID: "u-new", Labels: map[string]string{"other": "x"}}},
		&rbacv1.ClusterRole{ObjectMeta: owned(ReaperName+"-gone", "gone", "u-gone")},
		&rbacv1.ClusterRoleBinding{ObjectMeta: owned(ReaperName+"-gone", "gone", "u-gone")},
		&rbacv1.ClusterRole{ObjectMeta: owned(ReaperName+"-reused", "reused", "u-old")},
		&rbacv1.ClusterRoleBinding{ObjectMeta: owned(ReaperName+"-dead", "dead", "u-dead")},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: HarnessClusterRole}},
	)
	got, err := CleanStale(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{"clusterrole " + ReaperName + "-gone", "clusterrole " + ReaperName + "-reused", "clusterrolebinding " + ReaperName + "-gone", "namespace dead (no lease)"}
	if !slices.Equal(got, want) {
		t.Errorf("CleanStale() = %q, want %q", got, want)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "dead", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace dead: err = %v, want deleted", err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, ReaperName+"-dead", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dead namespace's binding: err = %v, want deleted by DeleteRun", err)
	}
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx, HarnessClusterRole, metav1.GetOptions{}); err != nil {
		t.Errorf("the harness's own ClusterRole: %v, want kept", err)
	}
}

// A namespace younger than MinStaleAge is spared whatever its Lease says: a run that has
// just created its namespace (and not yet its Lease) must not be deleted by another
// command's clean. One second older, no Lease or an expired one makes it stale, with any
// margin.
func TestStaleSparesYoungNamespaces(t *testing.T) {
	now := epoch
	ttl := int32(3)
	ns := func(name string, age time.Duration) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: NamespaceLabels("run-" + name),
			Annotations: map[string]string{AnnotationRun: "run-" + name}, CreationTimestamp: metav1.NewTime(now.Add(-age))}}
	}
	// Renewed when its namespace was made, 3 s TTL: expired long before MinStaleAge.
	expired := func(namespace string, age time.Duration) *coordinationv1.Lease {
		r := metav1.NewMicroTime(now.Add(-age))
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: LeaseName, Namespace: namespace},
			Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &ttl, RenewTime: &r}}
	}
	young, old := MinStaleAge-time.Second, MinStaleAge
	cs := fake.NewClientset(
		ns("young-no-lease", young),
		ns("young-expired", young), expired("young-expired", young),
		ns("old-no-lease", old),
		ns("old-expired", old), expired("old-expired", old),
	)
	for _, margin := range []time.Duration{DefaultStaleMargin, time.Second, 0} {
		runs, err := Stale(context.Background(), cs, WithStaleClock(clocktesting.NewFakePassiveClock(now)), WithStaleMargin(margin))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range runs {
			got = append(got, r.Namespace)
		}
		slices.Sort(got)
		if want := []string{"old-expired", "old-no-lease"}; !slices.Equal(got, want) {
			t.Errorf("margin %v: Stale() = %q, want %q (namespaces younger than %v spared)", margin, got, want, MinStaleAge)
		}
	}
	if MinStaleAge != DefaultTTL+30*time.Second {
		t.Errorf("MinStaleAge = %v, want the default TTL + 30 s", MinStaleAge)
	}
}

// podCollector makes the fake clientset's pods deletecollection delete the pods its
// label selector matches (the fake records the call and does nothing), and counts how
// many it deleted.
func podCollector(t *testing.T, cs *fake.Clientset) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	cs.PrependReactor("delete-collection", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		dc := a.(k8stesting.DeleteCollectionAction)
		sel := dc.GetListRestrictions().Labels
		obj, err := cs.Tracker().List(corev1.SchemeGroupVersion.WithResource("pods"), corev1.SchemeGroupVersion.WithKind("Pod"), dc.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		for _, p := range obj.(*corev1.PodList).Items {
			if sel.Matches(labels.Set(p.Labels)) {
				if err := cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), p.Namespace, p.Name); err != nil {
					return true, nil, err
				}
				n.Add(1)
			}
		}
		return true, nil, nil
	})
	return &n
}

// Once the Lease expires the reaper deletes the namespace first (no controller replaces
// a pod after that), then every pod in it but its own with no grace period, in one call.
func TestReapDeletesNamespaceThenKillsPods(t *testing.T) {
	reaperPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: ReaperName + "-x", Namespace: testNS, Labels: map[string]string{"app": ReaperName}}}
	component := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "order-1-x", Namespace: testNS, Labels: map[string]string{"dev.faultline.name": "order-1"}}}
	cs := newFake(reaperPod, component)
	killed := podCollector(t, cs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fc := clocktesting.NewFakeClock(epoch)
	reaped := make(chan error, 1)
	go func() {
		reaped <- Reap(ctx, cs, ReapConfig{Namespace: testNS, TTL: 3 * time.Second, Poll: time.Second, Clock: fc})
	}()
	// No Lease ever: expired once the TTL has passed on the reaper's clock.
	for {
		select {
		case err := <-reaped:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Millisecond):
			fc.Step(500 * time.Millisecond)
			continue
		}
		break
	}
	var order []string
	for _, a := range cs.Actions() {
		switch {
		case a.GetVerb() == "delete" && a.GetResource().Resource == "namespaces":
			order = append(order, "delete namespace")
		case a.GetVerb() == "delete-collection" && a.GetResource().Resource == "pods":
			order = append(order, "deletecollection pods")
			dc := a.(k8stesting.DeleteCollectionActionImpl)
			if g := dc.DeleteOptions.GracePeriodSeconds; g == nil || *g != 0 {
				t.Errorf("pods deleted with grace period %v, want 0", g)
			}
		}
	}
	if want := []string{"delete namespace", "deletecollection pods"}; !slices.Equal(order, want) {
		t.Errorf("reaper calls %q, want %q", order, want)
	}
	if killed.Load() != 1 {
		t.Errorf("%d pods killed, want 1 (the component, not the reaper)", killed.Load())
	}
	if _, err := cs.CoreV1().Pods(testNS).Get(context.Background(), reaperPod.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("the reaper's own pod: %v, want kept", err)
	}
}

// The next command's DeleteRun kills a dead run's pods at once, after its namespace.
func TestDeleteRunKillsPods(t *testing.T) {
	component := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "order-1-x", Namespace: testNS, Labels: map[string]string{"dev.faultline.name": "order-1"}}}
	cs := newFake(component)
	killed := podCollector(t, cs)
	if err := DeleteRun(context.Background(), cs, testNS); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, a := range cs.Actions() {
		if res := a.GetResource().Resource; res == "namespaces" || res == "pods" {
			order = append(order, a.GetVerb()+" "+res)
		}
	}
	if want := []string{"delete namespaces", "delete-collection pods"}; !slices.Equal(order, want) {
		t.Errorf("DeleteRun's calls %q, want %q", order, want)
	}
	if killed.Load() != 1 {
		t.Errorf("%d pods killed, want 1", killed.Load())
	}
}

// TestLeftovers names every managed namespace and reaper right, and nothing else: the
// check after a suite on a cluster must fail on one leftover and pass on a clean cluster.
func TestLeftovers(t *testing.T) {
	ctx := context.Background()
	managed := metav1.ObjectMeta{Labels: NamespaceLabels("r")}
	named := func(name string) metav1.ObjectMeta { m := managed; m.Name = name; return m }
	cases := []struct {
		name    string
		objects []runtime.Object
		want    []string
	}{
		{"clean cluster", []runtime.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: HarnessClusterRole}},
		}, nil},
		{"one of each left", []runtime.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
			&corev1.Namespace{ObjectMeta: named("faultline-r1")},
			&rbacv1.ClusterRole{ObjectMeta: named(ReaperName + "-faultline-r1")},
			&rbacv1.ClusterRoleBinding{ObjectMeta: named(ReaperName + "-faultline-r1")},
		}, []string{"namespace faultline-r1", "clusterrole " + ReaperName + "-faultline-r1", "clusterrolebinding " + ReaperName + "-faultline-r1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Leftovers(ctx, fake.NewClientset(tc.objects...))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Leftovers() = %q, want %q", got, tc.want)
			}
		})
	}
}
