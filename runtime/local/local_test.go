package local_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
)

// helperEnv makes the test binary act as a harness that starts one child and blocks, so a
// test can SIGKILL a real parent and watch what happens to its child.
const helperEnv = "FAULTLINE_LOCAL_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		runHelper()
		return
	}
	os.Exit(m.Run())
}

func runHelper() {
	rt := local.New()
	p, err := rt.Start(context.Background(), runtime.Spec{Name: "orphan", Command: "/bin/sleep", Args: []string{"300"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println(p.PID())
	select {}
}

// procState returns the state letter from /proc/PID/stat ("" when the pid is gone).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// gone reports whether pid no longer runs: absent, or a zombie nobody reaped yet (a
// container's PID 1 may not reap orphans).
func gone(pid int) bool {
	st := procState(pid)
	return st == "" || st == "Z" || st == "X"
}

func start(t *testing.T, rt *local.Runtime, s runtime.Spec) runtime.Process {
	t.Helper()
	p, err := rt.Start(t.Context(), s)
	require.NoError(t, err)
	return p
}

func newRuntime(t *testing.T, opts ...local.Option) *local.Runtime {
	t.Helper()
	rt := local.New(opts...)
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	return rt
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec runtime.Spec
		want int
	}{
		{"ok", runtime.Spec{Name: "a", Command: "/bin/true"}, 0},
		{"no name", runtime.Spec{Command: "/bin/true"}, 1},
		{"slash in name", runtime.Spec{Name: "a/b", Command: "/bin/true"}, 1},
		{"no command", runtime.Spec{Name: "a"}, 1},
		{"bad env", runtime.Spec{Name: "a", Command: "/bin/true", Env: []string{"NOEQUALS"}}, 1},
		{"everything wrong", runtime.Spec{Env: []string{"x"}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := len(tt.spec.Validate())
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestStartRejectsInvalidSpecAndDuplicateName(t *testing.T) {
	rt := newRuntime(t)
	_, err := rt.Start(t.Context(), runtime.Spec{Name: "x"})
	require.Error(t, err)

	start(t, rt, runtime.Spec{Name: "dup", Command: "/bin/sleep", Args: []string{"30"}})
	_, err = rt.Start(t.Context(), runtime.Spec{Name: "dup", Command: "/bin/sleep", Args: []string{"30"}})
	require.ErrorContains(t, err, "already running")

	_, err = rt.Start(t.Context(), runtime.Spec{Name: "missing", Command: "/no/such/binary"})
	require.Error(t, err)
}

func TestLogFileAppendsAcrossRestartsAndEnvDirApply(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "logs", "echo.log")
	rt := newRuntime(t)
	p := start(t, rt, runtime.Spec{
		Name:    "echo",
		Command: "/bin/sh",
		Args:    []string{"-c", `echo "out $GREETING $(pwd)"; echo err >&2`},
		Env:     []string{"GREETING=hello"},
		Dir:     dir,
		LogFile: logPath,
	})
	<-p.Wait()
	require.NoError(t, p.ExitErr())
	require.NoError(t, p.Restart(t.Context()))
	<-p.Wait()

	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	want := fmt.Sprintf("out hello %s\nerr\n", dir)
	assert.Equal(t, want+want, string(b))
}

func TestExitErrReportsFailure(t *testing.T) {
	rt := newRuntime(t)
	p := start(t, rt, runtime.Spec{Name: "fail", Command: "/bin/sh", Args: []string{"-c", "exit 7"}})
	<-p.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	assert.Equal(t, 7, ee.ExitCode())
	assert.False(t, p.Running())
}

func TestKill(t *testing.T) {
	rt := newRuntime(t)
	p := start(t, rt, runtime.Spec{Name: "victim", Command: "/bin/sleep", Args: []string{"30"}})
	pid := p.PID()
	require.True(t, p.Running())

	require.NoError(t, p.Kill())
	assert.False(t, p.Running())
	assert.True(t, gone(pid), "pid %d still alive", pid)
	var ee *exec.ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	assert.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())

	require.ErrorIs(t, p.Kill(), runtime.ErrNotRunning)
	require.ErrorIs(t, p.Pause(), runtime.ErrNotRunning)
}

func TestPauseResume(t *testing.T) {
	rt := newRuntime(t)
	p := start(t, rt, runtime.Spec{Name: "sleeper", Command: "/bin/sleep", Args: []string{"30"}})
	pid := p.PID()

	require.NoError(t, p.Pause())
	require.Eventually(t, func() bool { return procState(pid) == "T" }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Resume())
	require.Eventually(t, func() bool { return procState(pid) == "S" }, 5*time.Second, 10*time.Millisecond)
	assert.True(t, p.Running())
}

// TestStateSeesThePause: the local runtime answers runtime.Inspector from /proc, as the
// console asks of every runtime: running, paused while stopped, not running once killed.
func TestStateSeesThePause(t *testing.T) {
	rt := newRuntime(t)
	p := start(t, rt, runtime.Spec{Name: "sleeper", Command: "/bin/sleep", Args: []string{"30"}})
	in, ok := runtime.As[runtime.Inspector](p)
	require.True(t, ok, "a local process is an Inspector")
	state := func() runtime.State {
		st, err := in.State(t.Context())
		require.NoError(t, err)
		return st
	}
	assert.Equal(t, runtime.State{Running: true, Attached: true}, state())
	require.NoError(t, p.Pause())
	require.Eventually(t, func() bool { return state().Paused }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, runtime.State{Running: true, Paused: true, Attached: true}, state())
	require.NoError(t, p.Resume())
	require.Eventually(t, func() bool { return !state().Paused }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Kill())
	assert.Equal(t, runtime.State{}, state())
}

func TestStopPausedProcessEscalatesNeither(t *testing.T) {
	// A paused process cannot act on SIGTERM; Stop must thaw it so that it exits on
	// SIGTERM, well within the (long) grace, rather than waiting for SIGKILL.
	rt := newRuntime(t, local.WithGrace(time.Minute))
	p := start(t, rt, runtime.Spec{Name: "paused", Command: "/bin/sleep", Args: []string{"30"}})
	require.NoError(t, p.Pause())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.Stop(ctx))
	var ee *exec.ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	assert.Equal(t, syscall.SIGTERM, ee.Sys().(syscall.WaitStatus).Signal())
}

func TestStopEscalatesToKillAfterGrace(t *testing.T) {
	rt := newRuntime(t, local.WithGrace(200*time.Millisecond))
	ready := filepath.Join(t.TempDir(), "ready")
	p := start(t, rt, runtime.Spec{Name: "stubborn", Command: "/bin/sh",
		Args: []string{"-c", `trap "" TERM; touch ` + ready + `; while :; do sleep 0.05; done`}})
	require.Eventually(t, func() bool { _, err := os.Stat(ready); return err == nil }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, p.Stop(t.Context()))
	var ee *exec.ExitError
	require.ErrorAs(t, p.ExitErr(), &ee)
	assert.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal())
	require.NoError(t, p.Stop(t.Context()), "stopping an exited process is not an error")
}

func TestRestartStartsANewProcess(t *testing.T) {
	rt := newRuntime(t)
	p := start(t, rt, runtime.Spec{Name: "phoenix", Command: "/bin/sleep", Args: []string{"30"}})
	first := p.PID()
	firstDone := p.Wait()

	require.NoError(t, p.Restart(t.Context()))
	second := p.PID()
	assert.NotEqual(t, first, second)
	assert.True(t, p.Running())
	assert.True(t, gone(first))
	select {
	case <-firstDone:
	default:
		t.Fatal("the first run's Wait channel is still open")
	}

	// A killed process can be restarted too: that is how a crash fault heals.
	require.NoError(t, p.Kill())
	require.NoError(t, p.Restart(t.Context()))
	assert.True(t, p.Running())
}

func TestCloseLeavesNoProcess(t *testing.T) {
	rt := local.New(local.WithGrace(500 * time.Millisecond))
	var pids []int
	for i := range 4 {
		p := start(t, rt, runtime.Spec{Name: "p" + strconv.Itoa(i), Command: "/bin/sleep", Args: []string{"30"}})
		pids = append(pids, p.PID())
	}
	// One stubborn shell with a grandchild: SIGKILL of the group must take both.
	stub := start(t, rt, runtime.Spec{Name: "stubborn", Command: "/bin/sh",
		Args: []string{"-c", `trap "" TERM; sleep 30 & wait`}})
	pids = append(pids, stub.PID())
	paused := start(t, rt, runtime.Spec{Name: "paused", Command: "/bin/sleep", Args: []string{"30"}})
	require.NoError(t, paused.Pause())
	pids = append(pids, paused.PID())
	assert.Len(t, rt.Processes(), 6)

	require.NoError(t, rt.Close(t.Context()))
	for _, pid := range pids {
		assert.True(t, gone(pid), "pid %d survived Close", pid)
	}
	for _, p := range rt.Processes() {
		assert.False(t, p.Running(), p.Name())
	}
	_, err := rt.Start(t.Context(), runtime.Spec{Name: "late", Command: "/bin/true"})
	require.ErrorIs(t, err, runtime.ErrClosed)
}

func TestChildDiesWhenHarnessIsKilled(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	helper := exec.Command(exe, "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=1")
	helper.Stderr = os.Stderr
	out, err := helper.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, helper.Start())
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })

	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	child, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	require.False(t, gone(child), "child should run while the helper lives")
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })

	require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
	err = helper.Wait()
	require.True(t, errors.As(err, new(*exec.ExitError)))
	require.Eventually(t, func() bool { return gone(child) }, 10*time.Second, 20*time.Millisecond,
		"child %d outlived its SIGKILLed parent", child)
}
