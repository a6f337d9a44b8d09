// Package clustertest holds the tests that run the kubernetes runtime, the reference
// system and the harness's run pipeline on a real single-node cluster
// (internal/k8scluster), started once for the whole test binary. They skip with one line
// where the machine cannot run a cluster (not root, no cgroups, binaries not built).
package clustertest
