package lease

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/auth/rbac/validation"
	"sigs.k8s.io/yaml"

	"github.com/faultline-dev/faultline/runtime/kubernetes/lease/leasetest"
)

const manifestPath = "../../../deploy/kubernetes/rbac.yaml"

// manifestRules reads the harness's ClusterRole from the repository's manifest, and
// checks that the manifest binds it.
func manifestRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var rules []rbacv1.PolicyRule
	bound := false
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s: %v", manifestPath, err)
		}
		switch meta.Kind {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict(doc, &cr); err != nil {
				t.Fatalf("%s: ClusterRole: %v", manifestPath, err)
			}
			if cr.Name == HarnessClusterRole {
				rules = cr.Rules
			}
		case "ClusterRoleBinding":
			var crb rbacv1.ClusterRoleBinding
			if err := yaml.UnmarshalStrict(doc, &crb); err != nil {
				t.Fatalf("%s: ClusterRoleBinding: %v", manifestPath, err)
			}
			bound = bound || crb.RoleRef.Kind == "ClusterRole" && crb.RoleRef.Name == HarnessClusterRole
		}
	}
	if rules == nil {
		t.Fatalf("%s has no ClusterRole %s", manifestPath, HarnessClusterRole)
	}
	if !bound {
		t.Errorf("%s does not bind ClusterRole %s", manifestPath, HarnessClusterRole)
	}
	return rules
}

func TestManifestGrantsHarnessRules(t *testing.T) {
	if ok, missing := validation.Covers(manifestRules(t), HarnessRules()); !ok {
		t.Errorf("%s lacks rights the harness needs: %v", manifestPath, missing)
	}
}

// The harness grants the reaper its rights, which Kubernetes allows only to a user who
// holds them.
func TestHarnessHoldsWhatItGrantsTheReaper(t *testing.T) {
	inNS, cluster := ReaperRules(testNS)
	if ok, missing := validation.Covers(HarnessRules(), append(inNS, cluster...)); !ok {
		t.Errorf("HarnessRules lack what the reaper is granted: %v", missing)
	}
}

// Every API call this package makes for the harness is one HarnessRules allows: the
// calls are recorded, not listed by hand.
func TestHarnessRulesCoverEveryCall(t *testing.T) {
	ctx := context.Background()
	cs := newFake()
	k, err := Start(ctx, cs, testNS, "run-1", WithImage("img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Stale(ctx, cs, WithStaleMargin(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := CleanStale(ctx, cs, WithStaleMargin(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	leasetest.Covered(t, "the harness", HarnessRules(), cs.Actions(), false)
}

// The reaper's own calls are allowed by exactly the rights it is given, by name.
func TestReaperRulesCoverEveryCall(t *testing.T) {
	cs := newFake()
	k, err := Start(context.Background(), cs, testNS, "run-1", WithoutReaper(), WithTTL(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	k.cancel() // the harness dies: no renewal ever comes
	<-k.done
	cs.ClearActions()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The reaper deletes the namespace after the 3 s TTL.
	if err := Reap(ctx, cs, ReapConfig{Namespace: testNS, Poll: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	inNS, cluster := ReaperRules(testNS)
	leasetest.Covered(t, "the reaper", append(inNS, cluster...), cs.Actions(), true)
}
