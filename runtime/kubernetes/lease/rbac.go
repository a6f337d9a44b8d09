package lease

import rbacv1 "k8s.io/api/rbac/v1"

// HarnessClusterRole is the ClusterRole deploy/kubernetes/rbac.yaml grants the harness.
const HarnessClusterRole = "faultline-harness"

var (
	readWrite = []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	// readCreateDelete is what the harness does to RBAC objects: it creates the reaper's
	// and deletes them, never edits one.
	readCreateDelete = []string{"get", "list", "watch", "create", "delete"}
)

// HarnessRules are the rights a Faultline harness needs in a cluster, for a namespace per
// run (created, labelled, deleted; namespaces are cluster-scoped, hence a ClusterRole),
// the system under test in it (Deployments, Services, ConfigMaps, a Secret, volumes),
// faults through the API (pods deleted, exec, ephemeral containers, port-forward for load
// and scraping from outside), and this package's Lease and reaper — including what the
// reaper is granted, since Kubernetes lets a user grant only rights it holds.
// deploy/kubernetes/rbac.yaml must grant at least these (a test checks it).
func HarnessRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: readCreateDelete},
		{APIGroups: []string{""}, Resources: []string{"pods", "services", "configmaps", "secrets", "serviceaccounts", "persistentvolumeclaims"}, Verbs: readWrite},
		// A run's pods killed at once when its namespace is deleted (Close, and the reaper,
		// which is granted the same).
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"deletecollection"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		// exec and port-forward over WebSockets are a GET, over SPDY a POST.
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/portforward"}, Verbs: []string{"get", "create"}},
		{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"services/proxy"}, Verbs: []string{"get", "create"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "replicasets"}, Verbs: readWrite},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments/scale", "statefulsets/scale"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: readWrite},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings", "clusterroles", "clusterrolebindings"}, Verbs: readCreateDelete},
	}
}
