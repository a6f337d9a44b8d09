package undo_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/local"
	"github.com/faultline-dev/faultline/undo"
)

const helperEnv = "FAULTLINE_UNDO_TEST_HELPER"

// startSleep starts `sleep 300` in a session of its own (no parent-death signal: it
// stands for a process that outlived its harness) and reaps it when it dies.
func startSleep(t *testing.T, env ...string) undo.Process {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, cmd.Start())
	go func() { _ = cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	p, err := undo.Identify(cmd.Process.Pid)
	require.NoError(t, err)
	p.Name = "sleep"
	return p
}

// deadHarness is the identity of a process that has exited and been reaped.
func deadHarness(t *testing.T) undo.Process {
	t.Helper()
	cmd := exec.Command("sleep", "0.01")
	require.NoError(t, cmd.Start())
	p, err := undo.Identify(cmd.Process.Pid) // an unreaped child keeps its /proc entry
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	require.False(t, p.Alive())
	return p
}

func writeRecord(t *testing.T, dir string, rec undo.Record) string {
	t.Helper()
	rec.Version = undo.Version
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, rec.RunID+".json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

func TestHealKillsOnlyWhatTheRunOwns(t *testing.T) {
	dir := t.TempDir()
	runID := fmt.Sprintf("test-%d", time.Now().UnixNano())
	stopped := startSleep(t)
	require.NoError(t, syscall.Kill(stopped.PID, syscall.SIGSTOP))
	require.Eventually(t, stopped.Stopped, 5*time.Second, 10*time.Millisecond)
	recycled := startSleep(t) // recorded with another start time: a pid the kernel reused
	marked := startSleep(t, undo.MarkerEnv+"="+runID)
	stranger := startSleep(t, undo.MarkerEnv+"="+runID+"-other")

	stale := recycled
	stale.Start--
	path := writeRecord(t, dir, undo.Record{
		RunID: runID, Runtime: "local", Harness: deadHarness(t),
		Processes: []undo.Process{{Name: "order-1", PID: stopped.PID, Start: stopped.Start, Paused: true}, {Name: "product-1", PID: stale.PID, Start: stale.Start}},
		Proxies:   []undo.Proxy{{Name: "gateway->product-1", Listen: "127.0.0.1:1"}},
	})

	reps, err := undo.HealPending(t.Context(), dir)
	require.NoError(t, err)
	require.Len(t, reps, 1)
	rep := reps[0]
	assert.False(t, rep.InProgress)
	assert.ElementsMatch(t, []string{
		fmt.Sprintf("order-1 (pid %d)", stopped.PID), fmt.Sprintf("marked (pid %d)", marked.PID),
	}, rep.Killed, "the recorded process and the unrecorded one carrying the run's marker")
	assert.Equal(t, []string{"order-1"}, rep.Resumed, "the stopped one is reported as such")
	assert.Equal(t, 1, rep.Proxies)
	assert.False(t, stopped.Alive(), "a stopped process is killed too")
	assert.False(t, marked.Alive())
	assert.True(t, recycled.Alive(), "a pid whose start time differs is someone else's")
	assert.True(t, stranger.Alive(), "another run's marker is not ours")
	assert.NoFileExists(t, path, "a healed record is removed")

	reps, err = undo.HealPending(t.Context(), dir)
	require.NoError(t, err)
	assert.Empty(t, reps, "healing is done once")
}

func TestHealLeavesARunInProgressAlone(t *testing.T) {
	dir := t.TempDir()
	live := startSleep(t) // stands for a harness that is still running
	live.Name = "harness"
	child := startSleep(t)
	path := writeRecord(t, dir, undo.Record{
		RunID: "in-progress", Runtime: "local", Harness: live,
		Processes: []undo.Process{{Name: "gateway-1", PID: child.PID, Start: child.Start}},
	})

	reps, err := undo.HealPending(t.Context(), dir)
	require.NoError(t, err)
	require.Len(t, reps, 1)
	assert.True(t, reps[0].InProgress)
	assert.True(t, child.Alive(), "a live harness's children are not touched")
	assert.FileExists(t, path)

	reps, err = undo.HealPending(t.Context(), dir, undo.WithForce())
	require.NoError(t, err)
	require.Len(t, reps, 1)
	assert.False(t, reps[0].InProgress)
	assert.False(t, live.Alive(), "forced: the hung harness is killed first")
	assert.False(t, child.Alive())
	assert.NoFileExists(t, path)
}

func TestHealKeepsARecordItCannotRead(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "garbage.json")
	require.NoError(t, os.WriteFile(bad, []byte("{not json"), 0o644))
	_, err := undo.HealPending(t.Context(), dir)
	require.Error(t, err)
	assert.FileExists(t, bad)

	none, err := undo.Pending(filepath.Join(dir, "missing"))
	require.NoError(t, err, "no undo directory means nothing to heal")
	assert.Empty(t, none)
}

func TestJournalRecordsBeforeEachAction(t *testing.T) {
	dir := t.TempDir()
	j, err := undo.OpenJournal(dir, "journal-test", "/runs/x", "local")
	require.NoError(t, err)
	read := func() undo.Record {
		rec, err := undo.Read(j.Path())
		require.NoError(t, err)
		return rec
	}
	self, err := undo.Identify(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, self.PID, read().Harness.PID)
	assert.Equal(t, self.Start, read().Harness.Start)

	rt := local.New()
	t.Cleanup(func() { _ = rt.Close(t.Context()) })
	p, err := undo.WrapRuntime(rt, j).Start(t.Context(), runtime.Spec{Name: "sleeper", Command: "sleep", Args: []string{"300"}})
	require.NoError(t, err)
	rec := read()
	require.Len(t, rec.Processes, 1)
	got := rec.Processes[0]
	assert.Equal(t, "sleeper", got.Name)
	assert.Equal(t, p.PID(), got.PID)
	assert.True(t, got.Alive())
	env, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/environ")
	require.NoError(t, err)
	assert.Contains(t, string(env), undo.MarkerEnv+"=journal-test\x00")

	require.NoError(t, p.Pause())
	assert.True(t, read().Processes[0].Paused, "a pause is on disk before the process stops")
	require.NoError(t, p.Resume())
	assert.False(t, read().Processes[0].Paused)

	old := got
	require.NoError(t, p.Restart(t.Context()))
	rec = read()
	require.Len(t, rec.Processes, 1, "a restart replaces the entry")
	assert.NotEqual(t, old.PID, rec.Processes[0].PID)
	assert.True(t, rec.Processes[0].Alive())

	// Close verifies before it removes: a process that outlived the run is killed.
	require.NoError(t, j.Close(t.Context()))
	assert.NoFileExists(t, j.Path())
	assert.False(t, rec.Processes[0].Alive())
}

// TestUndoHelperProcess is the harness that TestDeadManHealsAfterSIGKILL kills: it
// starts a child through the recording runtime, pauses it, puts a latency toxic with a
// duration on a proxy, prints what it made and waits to be killed.
func TestUndoHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		return
	}
	j, err := undo.OpenJournal(os.Getenv(undo.DirEnv), "helper", "", "local")
	require.NoError(t, err)
	p, err := undo.WrapRuntime(local.New(), j).Start(t.Context(), runtime.Spec{Name: "sleeper", Command: "sleep", Args: []string{"300"}})
	require.NoError(t, err)
	require.NoError(t, p.Pause())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	links, err := faults.NewLinks()
	require.NoError(t, err)
	addr, err := links.Add(t.Context(), faults.Link{From: "a", To: "b", Upstream: ln.Addr().String()})
	require.NoError(t, err)
	_, err = links.AddToxic(t.Context(), "a->b", faults.Toxic{Type: "latency", Attributes: map[string]any{"latency": 1000}, TTL: time.Minute})
	require.NoError(t, err)
	require.NoError(t, j.RecordLinks(links))
	fmt.Printf("READY %d %s\n", p.PID(), addr)
	time.Sleep(5 * time.Minute)
}

func TestDeadManHealsAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^TestUndoHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", undo.DirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var pid int
	var addr string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "READY %d %s", &pid, &addr); err == nil {
			break
		}
	}
	require.NotZero(t, pid, "the helper never got ready")
	rec, err := undo.Read(filepath.Join(dir, "helper.json"))
	require.NoError(t, err)
	require.Len(t, rec.Processes, 1)
	child := rec.Processes[0]
	assert.Equal(t, pid, child.PID)
	assert.True(t, child.Paused)
	// SIGSTOP is delivered asynchronously: the helper reports READY right after sending it.
	require.Eventually(t, child.Stopped, 5*time.Second, 5*time.Millisecond, "the child is paused (SIGSTOP) before the harness dies")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err, "the faulty proxy is up")
	_ = conn.Close()

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	// Nobody heals anything here: the kernel's parent-death SIGKILL ends even a stopped
	// child, and the proxy with its toxic lived in the harness.
	require.Eventually(t, func() bool { return !child.Alive() }, 10*time.Second, 20*time.Millisecond,
		"a paused child of a SIGKILLed harness must not stay stopped")
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "the proxy and its toxic died with the harness")

	// The record is still there (the harness never closed it); the next command heals it.
	reps, err := undo.HealPending(t.Context(), dir)
	require.NoError(t, err)
	require.Len(t, reps, 1)
	assert.Empty(t, reps[0].Killed, "nothing was left alive to kill")
	assert.Equal(t, 1, reps[0].Proxies)
	assert.Contains(t, reps[0].String(), "nothing was left running")
	assert.NoFileExists(t, filepath.Join(dir, "helper.json"))
}

// TestHealKillsTheGroupOfADeadLeader: a component's process group outlives its leader
// (a shell that started a worker and exited). The member carries no marker, so only the
// recorded group can find it; healing must kill it and say so.
func TestHealKillsTheGroupOfADeadLeader(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", "sleep 300 & echo $!")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	leader, err := undo.Identify(cmd.Process.Pid)
	require.NoError(t, err)
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	memberPID, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	member, err := undo.Identify(memberPID)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(memberPID, syscall.SIGKILL) })
	require.False(t, leader.Alive(), "the leader has exited")
	require.True(t, member.Alive(), "the member lives on")
	pgid, err := syscall.Getpgid(memberPID)
	require.NoError(t, err)
	require.Equal(t, leader.PID, pgid, "the member is in the leader's group")

	path := writeRecord(t, dir, undo.Record{
		RunID: fmt.Sprintf("group-%d", time.Now().UnixNano()), Runtime: "local", Harness: deadHarness(t),
		Processes: []undo.Process{{Name: "order-1", PID: leader.PID, Start: leader.Start}},
	})
	reps, err := undo.HealPending(t.Context(), dir)
	require.NoError(t, err)
	require.Len(t, reps, 1)
	assert.NoError(t, reps[0].Err)
	assert.False(t, member.Alive(), "the dead leader's group member is killed")
	assert.Equal(t, []string{fmt.Sprintf("order-1 group member (pid %d)", memberPID)}, reps[0].Killed)
	assert.NoFileExists(t, path)
}

// A dead Kubernetes run's namespaces go to the namespace cleaner (never to a container
// cleaner); without one the record is kept, and a failing cleaner keeps it too.
func TestHealDeletesRecordedNamespaces(t *testing.T) {
	nss := []undo.Namespace{{Name: "fl-a", Kubeconfig: "/k/config", Context: "ci"}}
	var got []undo.Namespace
	cleaner := func(fail bool) undo.NamespaceCleaner {
		return func(_ context.Context, runID string, ns []undo.Namespace) ([]string, error) {
			got = ns
			if fail {
				return nil, errors.New("delete namespace fl-a: connection refused")
			}
			return []string{"namespace " + ns[0].Name}, nil
		}
	}
	containers := func(context.Context, string) ([]string, error) {
		t.Error("the container cleaner was called for a Kubernetes run")
		return nil, nil
	}
	tests := []struct {
		name     string
		opts     []undo.HealOption
		wantErr  string
		wantKept bool
		wantDel  []string
	}{
		{"no cleaner: kept", nil, "no Kubernetes cleaner", true, nil},
		{"cleaner fails: kept", []undo.HealOption{undo.WithNamespaceCleaner(cleaner(true))}, "connection refused", true, nil},
		{"deleted: record gone", []undo.HealOption{undo.WithNamespaceCleaner(cleaner(false))}, "", false, []string{"namespace fl-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			got = nil
			path := writeRecord(t, dir, undo.Record{RunID: "k8s-run", Runtime: "kubernetes", Harness: deadHarness(t), Namespaces: nss})
			reps, err := undo.HealPending(t.Context(), dir, append(tt.opts, undo.WithContainerCleaner(containers))...)
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.wantErr)
			}
			require.Len(t, reps, 1)
			assert.Equal(t, tt.wantDel, reps[0].Namespaces)
			if tt.opts != nil {
				assert.Equal(t, nss, got, "the cleaner gets the namespaces with their kubeconfig and context")
			}
			if tt.wantKept {
				assert.FileExists(t, path)
			} else {
				assert.NoFileExists(t, path)
				assert.Contains(t, reps[0].String(), "deleted namespace fl-a")
			}
		})
	}
}

func TestJournalRecordsAndForgetsNamespaces(t *testing.T) {
	dir := t.TempDir()
	j, err := undo.OpenJournal(dir, "k8s-run", t.TempDir(), "kubernetes")
	require.NoError(t, err)
	require.NoError(t, j.RecordNamespace(undo.Namespace{Name: "fl-a"}))
	require.NoError(t, j.RecordNamespace(undo.Namespace{Name: "fl-a"}))
	rec, err := undo.Read(j.Path())
	require.NoError(t, err)
	assert.Equal(t, []undo.Namespace{{Name: "fl-a"}}, rec.Namespaces, "recorded once, on disk")
	// Close without a cleaner keeps a record that still names a namespace.
	require.ErrorContains(t, j.Close(t.Context()), "no Kubernetes cleaner")
	require.NoError(t, j.ForgetNamespace("fl-a"))
	require.NoError(t, j.Close(t.Context()))
	assert.NoFileExists(t, j.Path())
}
