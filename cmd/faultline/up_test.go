package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/system"
	"github.com/faultline-dev/faultline/undo"
)

// TestUpRefusesADirectoryInUse: a second up on one --dir rewrote the first one's configs
// and then waited forever on its etcd lock. It must be refused at once, naming the holder,
// before anything in the directory is touched.
func TestUpRefusesADirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	release, err := harness.ClaimDir(dir) // what the first up holds while it runs
	require.NoError(t, err)
	defer release()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"up", "--dir", dir})
	t0 := time.Now()
	err = root.ExecuteContext(ctx)
	require.Error(t, err, out.String())
	assert.Less(t, time.Since(t0), 5*time.Second, "refused at once, not after starting or waiting")
	assert.Contains(t, err.Error(), fmt.Sprintf("in use by process %d", os.Getpid()))
	assert.NoDirExists(t, filepath.Join(dir, "config"), "nothing of the first system is rewritten")
	assert.NotContains(t, out.String(), "starting the reference system")
}

// leasedSystem is a system up keeps running that holds a Lease on a cluster, as one
// containers.StartKubernetes started does: lost is closed when the Lease is lost.
type leasedSystem struct {
	dir     string
	lost    chan struct{}
	stopped atomic.Bool
}

func (s *leasedSystem) Token(string, time.Duration) (string, error) { return "token", nil }
func (s *leasedSystem) GatewayURLs() []string                       { return []string{"http://127.0.0.1:1"} }
func (s *leasedSystem) ReadyDuration() time.Duration                { return time.Second }
func (s *leasedSystem) Spec() system.Spec                           { return system.Spec{Dir: s.dir} }
func (s *leasedSystem) LeaseLost() <-chan struct{}                  { return s.lost }
func (s *leasedSystem) Stop(context.Context) error                  { s.stopped.Store(true); return nil }
func (s *leasedSystem) Components() []system.Component {
	return []system.Component{{Name: "gateway-1", Process: runningProcess{}}}
}

// runningProcess is a component's process that keeps running; up asks it only its pid
// and when it exits.
type runningProcess struct{ runtime.Process }

func (runningProcess) PID() int              { return 1 }
func (runningProcess) Wait() <-chan struct{} { return nil }
func (runningProcess) ExitErr() error        { return nil }

// An up on a cluster whose Lease is lost stops its system at once and fails with
// kubernetes.ErrLeaseLost (exit 3), instead of serving on until Ctrl-C while the
// namespace's reaper may be deleting the system.
func TestUpStopsWhenItsLeaseIsLost(t *testing.T) {
	t.Setenv(undo.DirEnv, t.TempDir())
	dir := t.TempDir()
	sys := &leasedSystem{dir: dir, lost: make(chan struct{})}
	// up records its namespace for healing and deletes it on the way out: the kubeconfig
	// names no cluster, so that no cluster is touched.
	kubeconfig := filepath.Join(t.TempDir(), "no-cluster")
	t.Setenv("KUBECONFIG", kubeconfig)
	rf := runtimeFlags{runtime: runtimeKubernetes, kube: kubeFlags{kubeconfig: kubeconfig}, starter: func(context.Context, system.Spec, *slog.Logger) (upSystem, func(), error) {
		return sys, func() {}, nil
	}}
	// The context ends (as Ctrl-C would) only long after the Lease is lost.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	time.AfterFunc(500*time.Millisecond, func() { close(sys.lost) })
	var out, errOut bytes.Buffer
	began := time.Now()
	err := up(ctx, &out, &errOut, system.Spec{Dir: dir}, rf)
	took := time.Since(began)
	t.Logf("lease lost 0.5 s in: up returned after %s: %v\n%s", took.Round(time.Millisecond), err, errOut.String())

	require.ErrorIs(t, err, kubernetes.ErrLeaseLost)
	assert.Contains(t, err.Error(), "run lease lost: ")
	assert.Equal(t, 3, exitCode(err), "a harness error")
	assert.Less(t, took, 3*time.Second, "up stopped when the lease was lost, not at Ctrl-C")
	assert.True(t, sys.stopped.Load(), "the system was stopped")
	assert.Contains(t, errOut.String(), "Lease on the cluster is lost")
}
