// Package leasetest checks recorded Kubernetes API calls against RBAC rules, for the tests
// of the packages whose rights deploy/kubernetes/rbac.yaml grants: the calls a fake
// clientset recorded are what the code makes, so the rules are checked against those, not
// against a list written by hand.
package leasetest

import (
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/component-helpers/auth/rbac/validation"
)

// Rule is the RBAC right one recorded API call needs; withName narrows it to the object's
// name (for rules with resourceNames, such as the reaper's right to delete one namespace).
func Rule(a k8stesting.Action, withName bool) rbacv1.PolicyRule {
	res := a.GetResource().Resource
	if sub := a.GetSubresource(); sub != "" {
		res += "/" + sub
	}
	verb := a.GetVerb()
	if verb == "delete-collection" { // the fake's name for RBAC's deletecollection
		verb = "deletecollection"
	}
	r := rbacv1.PolicyRule{APIGroups: []string{a.GetResource().Group}, Resources: []string{res}, Verbs: []string{verb}}
	if withName {
		switch a := a.(type) {
		case k8stesting.GetAction:
			r.ResourceNames = []string{a.GetName()}
		case k8stesting.DeleteAction:
			r.ResourceNames = []string{a.GetName()}
		}
	}
	return r
}

// Covered fails t for every action rules do not allow, and when no action was recorded
// (the check would prove nothing); who names the caller in the messages.
func Covered(t testing.TB, who string, rules []rbacv1.PolicyRule, actions []k8stesting.Action, withName bool) {
	t.Helper()
	if len(actions) == 0 {
		t.Fatalf("%s: no API calls recorded: the test would prove nothing", who)
	}
	for _, a := range actions {
		if ok, _ := validation.Covers(rules, []rbacv1.PolicyRule{Rule(a, withName)}); !ok {
			t.Errorf("%s calls %+v, which its rules do not allow", who, Rule(a, withName))
		}
	}
}
