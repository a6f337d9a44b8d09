package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/undo"
)

// killPoints is how many moments of a run TestSIGKILLedRunIsHealedByTheNextCommand
// kills `faultline run` at, and killSeed seeds where they fall.
const (
	killPoints = 20
	killSeed   = 20260525
)

func TestSIGKILLedRunIsHealedByTheNextCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole system 21 times")
	}
	bin := faultlineBinary(t)
	undoDir := t.TempDir()
	env := append(os.Environ(), undo.DirEnv+"="+undoDir)
	scenario := filepath.Join("testdata", "killpoints.yaml")
	start := func(dir string) (*exec.Cmd, *bytes.Buffer) {
		var out bytes.Buffer
		cmd := exec.Command(bin, "run", scenario, "--dir", dir)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd, &out
	}

	// One whole run sets the span the kill points are drawn from, and shows that a run
	// that finishes leaves no record.
	began := time.Now()
	cmd, out := start(filepath.Join(t.TempDir(), "whole"))
	err := cmd.Wait()
	total := time.Since(began)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		require.NoError(t, err, "output:\n%s", out)
	}
	left, err := undo.Pending(undoDir)
	require.NoError(t, err)
	require.Empty(t, left, "a finished run removes its undo record:\n%s", out)
	t.Logf("a whole run takes %s", total.Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(killSeed, killSeed))
	for i := range killPoints {
		at := time.Duration(rng.Int64N(int64(total)))
		cmd, out := start(filepath.Join(t.TempDir(), "killed"))
		time.Sleep(at)
		// Blast radius, while it runs: nothing of the run listens beyond loopback.
		pids := []int{cmd.Process.Pid}
		if paths, _ := undo.Pending(undoDir); len(paths) == 1 {
			if rec, err := undo.Read(paths[0]); err == nil {
				for _, p := range rec.Processes {
					pids = append(pids, p.PID)
				}
			}
		}
		ls := listeners(pids)
		for _, l := range ls {
			assert.True(t, l.loopback, "kill %d at %s: pid %d listens on %s", i, at, l.pid, l.addr)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		// What the killed run left: its record (if it got that far) names its processes
		// and proxies; its marker finds children whose pid it never wrote down.
		paths, err := undo.Pending(undoDir)
		require.NoError(t, err)
		var recs []undo.Record
		for _, p := range paths {
			rec, err := undo.Read(p)
			require.NoError(t, err)
			recs = append(recs, rec)
		}

		// The next command, any command, heals it before doing its own job.
		next := exec.Command(bin, "version")
		next.Env = env
		healed, err := next.CombinedOutput()
		require.NoError(t, err, "%s", healed)
		assert.True(t, strings.Contains(string(healed), "faultline "), "the command still did its job: %s", healed)

		left, err := undo.Pending(undoDir)
		require.NoError(t, err)
		assert.Empty(t, left, "kill %d at %s: the record was healed and removed; output:\n%s", i, at, healed)
		tmps, _ := filepath.Glob(filepath.Join(undoDir, "*"))
		assert.Empty(t, tmps, "kill %d at %s: nothing half-written is left", i, at)
		var procs, proxies int
		for _, rec := range recs {
			assert.Contains(t, string(healed), "healed run "+rec.RunID, "kill %d at %s", i, at)
			for _, p := range rec.Processes {
				if p.PID == 0 {
					continue // killed between announcing the start and the fork
				}
				procs++
				assert.False(t, p.Alive(), "kill %d at %s: %s (pid %d) is alive", i, at, p.Name, p.PID)
				assert.False(t, p.Stopped(), "kill %d at %s: %s (pid %d) is stopped", i, at, p.Name, p.PID)
			}
			assert.Empty(t, undo.Marked(rec.RunID), "kill %d at %s: a process of the run is alive", i, at)
			for _, px := range rec.Proxies {
				proxies++
				conn, err := net.DialTimeout("tcp", px.Listen, 200*time.Millisecond)
				if err == nil {
					_ = conn.Close()
				}
				assert.Error(t, err, "kill %d at %s: proxy %s (%s) still accepts", i, at, px.Name, px.Listen)
			}
			assert.Equal(t, "local", rec.Runtime, "a local run has no containers to remove")
		}
		t.Logf("kill %2d at %5s: %d listeners (all loopback), %d record(s), %d process(es), %d proxies; next command: %s", i, at.Round(time.Millisecond),
			len(ls), len(recs), procs, proxies, strings.TrimSpace(firstLine(string(healed))))
		if t.Failed() {
			t.Logf("output of the killed run:\n%s", out)
			return
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func TestCleanReportsNothingToDo(t *testing.T) {
	undoDir := t.TempDir()
	out, err := run(t, "clean", "--undo-dir", undoDir)
	require.NoError(t, err)
	assert.Contains(t, out, "nothing to clean")
}

func TestCleanHealsAndKeepsRunsInProgress(t *testing.T) {
	undoDir := t.TempDir()
	t.Setenv(undo.DirEnv, undoDir)
	// This process stands for a harness that is still running: its record stays, even
	// though clean runs in the same process here.
	j, err := undo.OpenJournal(undoDir, "live-run", "", "local")
	require.NoError(t, err)
	child := exec.Command("sleep", "300")
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, child.Start())
	go func() { _ = child.Wait() }()
	t.Cleanup(func() { _ = child.Process.Kill() })
	// A record whose harness is dead, naming a stopped child that outlived it.
	dead := exec.Command("sleep", "0.01")
	require.NoError(t, dead.Start())
	h, err := undo.Identify(dead.Process.Pid)
	require.NoError(t, err)
	require.NoError(t, dead.Wait())
	c, err := undo.Identify(child.Process.Pid)
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(c.PID, syscall.SIGSTOP))
	c.Name = "merchant-1"
	orphan, err := undo.OpenJournal(t.TempDir(), "dead-run", "", "local")
	require.NoError(t, err)
	require.NoError(t, orphan.Update(func(r *undo.Record) {
		r.Harness = h
		r.Processes = []undo.Process{c}
	}))
	b, err := os.ReadFile(orphan.Path())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(undoDir, "dead-run.json"), b, 0o644))

	out, err := run(t, "clean")
	require.NoError(t, err, out)
	assert.Contains(t, out, "healed run dead-run: killed 1 process(es) (merchant-1")
	assert.Contains(t, out, "run live-run is still in progress")
	assert.False(t, c.Alive(), "a stopped child of a dead harness is killed")
	assert.NoFileExists(t, filepath.Join(undoDir, "dead-run.json"))
	assert.FileExists(t, j.Path())
}

type listener struct {
	pid      int
	addr     string
	loopback bool
}

// listeners lists the TCP sockets in LISTEN state that pids hold, from /proc/PID/fd and
// /proc/net/tcp{,6}.
func listeners(pids []int) []listener {
	owner := map[string]int{} // socket inode -> pid
	for _, pid := range pids {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if link, err := os.Readlink(fd); err == nil && strings.HasPrefix(link, "socket:[") {
				owner[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = pid
			}
		}
	}
	var out []listener
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" {
				continue
			}
			pid, ok := owner[f[9]]
			if !ok {
				continue
			}
			ip, _, _ := strings.Cut(f[1], ":")
			loop := ip == "0100007F" || ip == "00000000000000000000000001000000" || ip == "0000000000000000FFFF00000100007F"
			out = append(out, listener{pid: pid, addr: f[1], loopback: loop})
		}
	}
	return out
}

func BenchmarkHealHookWithNothingToHeal(b *testing.B) {
	b.Setenv(undo.DirEnv, b.TempDir())
	cmd := newVersionCmd()
	for b.Loop() {
		if err := healLeftovers(cmd, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCleanKillsTheGroupOfADeadLeader: a component's leader exited and left a member of
// its process group running; clean kills the member, says so, and only then calls the
// run healed.
func TestCleanKillsTheGroupOfADeadLeader(t *testing.T) {
	undoDir := t.TempDir()
	t.Setenv(undo.DirEnv, undoDir)
	cmd := exec.Command("sh", "-c", "sleep 300 & echo $!")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	leader, err := undo.Identify(cmd.Process.Pid)
	require.NoError(t, err)
	var line [32]byte
	n, err := stdout.Read(line[:])
	require.NoError(t, err)
	require.NoError(t, cmd.Wait())
	var memberPID int
	_, err = fmt.Sscan(string(line[:n]), &memberPID)
	require.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(memberPID, syscall.SIGKILL) })
	member, err := undo.Identify(memberPID)
	require.NoError(t, err)
	require.False(t, leader.Alive())
	require.True(t, member.Alive())

	dead := exec.Command("sleep", "0.01")
	require.NoError(t, dead.Start())
	h, err := undo.Identify(dead.Process.Pid)
	require.NoError(t, err)
	require.NoError(t, dead.Wait())
	leader.Name = "order-1"
	rec, err := undo.OpenJournal(t.TempDir(), "group-run", "", "local")
	require.NoError(t, err)
	require.NoError(t, rec.Update(func(r *undo.Record) {
		r.Harness = h
		r.Processes = []undo.Process{leader}
	}))
	b, err := os.ReadFile(rec.Path())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(undoDir, "group-run.json"), b, 0o644))

	out, err := run(t, "clean")
	require.NoError(t, err, out)
	assert.Contains(t, out, fmt.Sprintf("healed run group-run: killed 1 process(es) (order-1 group member (pid %d))", memberPID))
	assert.NotContains(t, out, "NOT healed")
	assert.False(t, member.Alive(), "the dead leader's group member is killed")
	assert.NoFileExists(t, filepath.Join(undoDir, "group-run.json"))
}
