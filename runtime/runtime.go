// Package runtime is the seam between the harness and wherever the system under test runs.
// Scenarios and faults start, crash, pause and restart components through these interfaces
// only, so the same scenario drives local OS processes today and containers later, and can
// start a user's own commands, not only the faultline binary.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotRunning is returned by signal-style operations on a process that has exited, so a
// fault can tell "already dead" from a failure to deliver the fault.
var ErrNotRunning = errors.New("process is not running")

// ErrClosed is returned by Start once the runtime has been closed: a closed runtime must
// not leave a new process behind.
var ErrClosed = errors.New("runtime is closed")

// Spec describes one process. It is plain data so that a restart can start exactly the
// same thing again and a container runtime can map it onto an image.
type Spec struct {
	// Name identifies the process inside one runtime ("order-2"); it must be unique
	// among running processes.
	Name string
	// Command is the executable path (or a name looked up in PATH).
	Command string
	Args    []string
	// Env is added to the harness's own environment; a later entry wins over an earlier one.
	Env []string
	// Dir is the working directory; empty means the harness's.
	Dir string
	// LogFile receives stdout and stderr, appended so that restarts keep history; empty
	// discards the output.
	LogFile string
	// Labels are free-form metadata (kind, service, run id) a runtime may attach to what
	// it creates so that it can find and remove it later.
	Labels map[string]string
}

// Validate reports every problem with s at once.
func (s Spec) Validate() []error {
	var errs []error
	if strings.TrimSpace(s.Name) == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if strings.ContainsAny(s.Name, "/\x00") {
		errs = append(errs, fmt.Errorf("name %q contains '/' or NUL", s.Name))
	}
	if strings.TrimSpace(s.Command) == "" {
		errs = append(errs, errors.New("command is empty"))
	}
	for i, e := range s.Env {
		if !strings.Contains(e, "=") {
			errs = append(errs, fmt.Errorf("env[%d] %q is not KEY=VALUE", i, e))
		}
	}
	return errs
}

// Runtime starts processes and owns them: Close stops everything it started, so a harness
// that returns (or fails) never leaves part of a system running.
type Runtime interface {
	Start(ctx context.Context, s Spec) (Process, error)
	Close(ctx context.Context) error
}

// Identity names a started process.
type Identity interface {
	Name() string
	// PID is the operating-system process id, or 0 when the runtime has none to offer.
	PID() int
}

// Signaller delivers process faults. Each call returns ErrNotRunning (wrapped) when the
// process has already exited.
type Signaller interface {
	Kill() error   // crash: SIGKILL, no chance to clean up
	Pause() error  // freeze: SIGSTOP; sockets stay open but nothing answers
	Resume() error // thaw: SIGCONT
}

// Lifecycle is the orderly part of a process's life.
type Lifecycle interface {
	// Stop asks the process to exit (SIGTERM) and kills it after a grace period or when
	// ctx ends. Stopping a process that has exited is not an error.
	Stop(ctx context.Context) error
	// Restart stops the process if it runs and starts it again from the same Spec.
	Restart(ctx context.Context) error
	// Wait is closed when the current run of the process exits.
	Wait() <-chan struct{}
	// ExitErr is why the last run ended (nil while running or after a clean exit).
	ExitErr() error
	Running() bool
}

// Process is one started process.
type Process interface {
	Identity
	Signaller
	Lifecycle
}

// Lister is implemented by runtimes that can enumerate what they started, for reports and
// for cleanup code that did not keep the handles.
type Lister interface {
	Processes() []Process
}

// Specced is implemented by processes that can return the Spec they were started from.
type Specced interface {
	Spec() Spec
}
