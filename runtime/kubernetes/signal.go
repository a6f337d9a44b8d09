package kubernetes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Signals a process fault may send, by the names the signal command takes.
var Signals = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "TERM": syscall.SIGTERM,
}

// ErrNoProcess is returned by SignalExe when no process was started from the executable.
var ErrNoProcess = errors.New("no process started from that executable")

// SignalExe sends sig to every process under procDir (/proc) whose command line starts
// with exe, other than this process, pid 1 and other signalers (a session's, see
// ServeSignals, which a one-shot exec must not stop), and returns their pids. It runs
// inside a pod that shares one process namespace: pid 1 is the pod's pause process, and
// the component is the one process started from its Spec.Command.
func SignalExe(procDir, exe string, sig syscall.Signal) ([]int, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var hit []int
	var errs []error
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == 1 {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(procDir, e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a kernel thread
		}
		argv0, rest, _ := bytes.Cut(cmdline, []byte{0})
		if !sameExe(string(argv0), exe) || isSignaler(argv0, rest) {
			continue
		}
		if err := syscall.Kill(pid, sig); err != nil {
			if !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("signal pid %d: %w", pid, err))
			}
			continue
		}
		hit = append(hit, pid)
	}
	if err := errors.Join(errs...); err != nil {
		return hit, err
	}
	if len(hit) == 0 {
		return nil, fmt.Errorf("signal %s: %w", exe, ErrNoProcess)
	}
	return hit, nil
}

// isSignaler reports whether a command line is faultline's own signal command.
func isSignaler(argv0, rest []byte) bool {
	argv1, _, _ := bytes.Cut(rest, []byte{0})
	return filepath.Base(string(argv0)) == filepath.Base(SignalerPath) && string(argv1) == SignalCommand
}

// ServeSignals is a signaler session: it writes "ready", then answers each line of in
// with one line: the answer of Act to the request the line names, or "error: " and why.
// It returns when in ends. The runtime keeps one running in each ready container, so
// that a fault's signal costs one line over an open stream instead of a new exec.
func ServeSignals(in io.Reader, out io.Writer, procDir, exe, holdFile string) error {
	if _, err := fmt.Fprintln(out, sessionReady); err != nil {
		return fmt.Errorf("serve signals: %w", err)
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		reply, err := Act(procDir, exe, holdFile, sc.Text())
		if err != nil {
			reply = "error: " + err.Error()
		}
		if _, err := fmt.Fprintln(out, reply); err != nil {
			return fmt.Errorf("serve signals: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("serve signals: %w", err)
	}
	return nil
}

// Act does one request of a process fault inside a pod and says what it did: a signal
// name (KILL, STOP, CONT, TERM) signals exe's processes (SignalExe); HOLD creates
// holdFile, so that the component, when its container is started again, waits (see
// WaitHold) instead of running; RELEASE removes it.
func Act(procDir, exe, holdFile, request string) (string, error) {
	name := strings.ToUpper(strings.TrimSpace(request))
	switch name {
	case "HOLD", "RELEASE":
		if holdFile == "" {
			return "", fmt.Errorf("%s: no hold file (%s is not set)", strings.ToLower(name), HoldEnv)
		}
		if name == "HOLD" {
			if err := os.WriteFile(holdFile, nil, 0o644); err != nil {
				return "", fmt.Errorf("hold: %w", err)
			}
			return "held", nil
		}
		if err := os.Remove(holdFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("release: %w", err)
		}
		return "released", nil
	}
	sig, ok := Signals[name]
	if !ok {
		return "", fmt.Errorf("%q is not one of %s, HOLD, RELEASE", name, strings.Join(slices.Sorted(maps.Keys(Signals)), ", "))
	}
	pids, err := SignalExe(procDir, exe, sig)
	if err != nil {
		return "", err
	}
	return fmt.Sprint("signalled ", pids), nil
}

// HoldEnv names, in every container the runtime makes, the file whose presence holds the
// component's start: faultline's main waits while it exists (WaitHold). A crash creates
// it before the kill (Act HOLD), so that the container the kubelet starts again at once
// stays down until the fault is healed, as a crashed process stays down on the other
// runtimes; the heal removes it. It lies on a volume of the pod (emptyDir), which
// outlives the container and not the pod.
const HoldEnv = "FAULTLINE_HOLD_FILE"

// holdDir is where that volume is mounted, and holdFile the file.
const (
	holdDir  = "/run/faultline-hold"
	holdFile = holdDir + "/hold"
)

// holdPoll is how often a held start looks at the hold file again.
const holdPoll = 20 * time.Millisecond

// WaitHold returns once path does not exist, looking every holdPoll; any error other than
// its absence ends the wait too (a hold it cannot read must not keep the component down
// for ever).
func WaitHold(path string) {
	for {
		if _, err := os.Stat(path); err != nil {
			return
		}
		time.Sleep(holdPoll)
	}
}

// sessionReady is ServeSignals' first line: the session reads requests from then on.
const sessionReady = "ready"

// sameExe reports whether a command line's argv[0] names exe: the same path, or the same
// base name when exe is a bare name looked up in PATH.
func sameExe(argv0, exe string) bool {
	if strings.Contains(exe, "/") {
		return argv0 == exe
	}
	return filepath.Base(argv0) == exe
}
