package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Signals a process fault may send, by the names the signal command takes.
var Signals = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "TERM": syscall.SIGTERM,
}

// ErrNoProcess is returned by SignalExe when no process was started from the executable.
var ErrNoProcess = errors.New("no process started from that executable")

// SignalExe sends sig to every process under procDir (/proc) whose command line starts
// with exe, other than this process and pid 1, and returns their pids. It runs inside a
// pod that shares one process namespace: pid 1 is the pod's pause process, and the
// component is the one process started from its Spec.Command.
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
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if !sameExe(string(argv0), exe) {
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

// sameExe reports whether a command line's argv[0] names exe: the same path, or the same
// base name when exe is a bare name looked up in PATH.
func sameExe(argv0, exe string) bool {
	if strings.Contains(exe, "/") {
		return argv0 == exe
	}
	return filepath.Base(argv0) == exe
}
