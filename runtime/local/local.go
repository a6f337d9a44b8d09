// Package local runs components as OS processes on this machine: the workshop and CI
// default, needing nothing but the faultline binary. Every child gets its own process group
// so that a Ctrl-C in the terminal reaches only the harness, which then stops the children
// in order; and every child gets SIGKILL from the kernel if the harness itself dies, so a
// crashed or killed harness leaves nothing behind.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/faultline-dev/faultline/runtime"
)

// DefaultGrace is how long Stop waits after SIGTERM before SIGKILL: long enough for a
// component to revoke its lease and drain, short enough that a stuck one does not stall a run.
const DefaultGrace = 3 * time.Second

// reapTimeout bounds the wait for the kernel to report a SIGKILLed child; only a process
// stuck in uninterruptible sleep takes longer.
const reapTimeout = 10 * time.Second

// Runtime starts and owns local OS processes.
type Runtime struct {
	grace time.Duration
	log   *slog.Logger

	mu     sync.Mutex
	procs  map[string]*Process
	closed bool
}

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Lister  = (*Runtime)(nil)
	_ runtime.Process = (*Process)(nil)
	_ runtime.Specced = (*Process)(nil)
)

// Option configures a Runtime.
type Option func(*Runtime)

// WithGrace sets the SIGTERM → SIGKILL grace period used by Stop and Close.
func WithGrace(d time.Duration) Option {
	return func(r *Runtime) {
		if d > 0 {
			r.grace = d
		}
	}
}

// WithLogger makes the runtime log starts, exits and escalations.
func WithLogger(l *slog.Logger) Option {
	return func(r *Runtime) {
		if l != nil {
			r.log = l
		}
	}
}

// New returns an empty runtime.
func New(opts ...Option) *Runtime {
	r := &Runtime{grace: DefaultGrace, log: slog.New(slog.DiscardHandler), procs: map[string]*Process{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Start launches s. ctx bounds only the start itself: the process outlives it and is
// ended by Stop, Kill or Close.
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (runtime.Process, error) {
	if errs := s.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("start %s: validate spec: %w", s.Name, errors.Join(errs...))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	s = s.Clone()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("start %s: %w", s.Name, runtime.ErrClosed)
	}
	if old, ok := r.procs[s.Name]; ok && old.Running() {
		return nil, fmt.Errorf("start %s: a process with this name is already running (pid %d)", s.Name, old.PID())
	}
	p := &Process{rt: r, spec: s}
	if err := p.launch(); err != nil {
		return nil, err
	}
	r.procs[s.Name] = p
	return p, nil
}

// Processes lists every process started by r, in name order.
func (r *Runtime) Processes() []runtime.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := slices.Sorted(maps.Keys(r.procs))
	out := make([]runtime.Process, 0, len(names))
	for _, n := range names {
		out = append(out, r.procs[n])
	}
	return out
}

// Close stops every process concurrently (SIGTERM, grace, SIGKILL), waits until each has
// been reaped, and refuses later starts.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	procs := slices.Collect(maps.Values(r.procs))
	r.mu.Unlock()
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.Stop(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close runtime: %w", err)
	}
	return nil
}

// Process is one local OS process (and, across restarts, its successors).
type Process struct {
	rt   *Runtime
	spec runtime.Spec

	// ctl serialises Stop/Restart/launch so that two faults on one process cannot race.
	ctl sync.Mutex

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
}

// Name is the Spec's name.
func (p *Process) Name() string { return p.spec.Name }

// Spec returns a copy of the spec the process was started from.
func (p *Process) Spec() runtime.Spec { return p.spec.Clone() }

// PID is the pid of the current (or last) run.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Wait is closed when the current run exits.
func (p *Process) Wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr is why the last run ended.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Running reports whether the current run has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.Wait():
		return false
	default:
		return true
	}
}

// State reads the process's state from /proc: paused while the kernel has it stopped
// (SIGSTOP, state T), and always attached, since a local process has no network of its
// own to be taken off.
func (p *Process) State(ctx context.Context) (runtime.State, error) {
	if !p.Running() {
		return runtime.State{}, nil
	}
	st := runtime.State{Running: true, Attached: true}
	pid := p.PID()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, fmt.Errorf("inspect %s: %w", p.spec.Name, err)
	}
	// The command name (field 2) may hold spaces and parentheses: the state is the first
	// field after the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		st.Paused = b[i+2] == 'T' || b[i+2] == 't'
	}
	return st, nil
}

// Kill sends SIGKILL to the process group and waits until the process has been reaped,
// so that callers observe Running() == false as soon as Kill returns.
func (p *Process) Kill() error {
	done := p.Wait()
	if err := p.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", p.spec.Name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(reapTimeout):
		return fmt.Errorf("kill %s: not reaped after %s", p.spec.Name, reapTimeout)
	}
}

// Pause freezes the process group with SIGSTOP.
func (p *Process) Pause() error {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pause %s: %w", p.spec.Name, err)
	}
	return nil
}

// Resume thaws the process group with SIGCONT.
func (p *Process) Resume() error {
	if err := p.signal(syscall.SIGCONT); err != nil {
		return fmt.Errorf("resume %s: %w", p.spec.Name, err)
	}
	return nil
}

// Stop sends SIGTERM (and SIGCONT, because a paused process cannot act on SIGTERM), waits
// for the grace period or ctx, then SIGKILLs the group. It returns once the process has
// been reaped.
func (p *Process) Stop(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	return p.stop(ctx)
}

func (p *Process) stop(ctx context.Context) error {
	done := p.Wait()
	if done == nil {
		return nil
	}
	pid := p.PID()
	if err := p.signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, runtime.ErrNotRunning) {
			return nil
		}
		return fmt.Errorf("stop %s: %w", p.spec.Name, err)
	}
	_ = p.signal(syscall.SIGCONT)
	timer := time.NewTimer(p.rt.grace)
	defer timer.Stop()
	select {
	case <-done:
		// Children of a shell wrapper may linger in the group after its leader left.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return nil
	case <-timer.C:
		p.rt.log.Warn("process ignored SIGTERM, killing", "name", p.spec.Name, "pid", pid, "grace", p.rt.grace)
	case <-ctx.Done():
		p.rt.log.Warn("stop cancelled, killing", "name", p.spec.Name, "pid", pid)
	}
	if err := p.Kill(); err != nil && !errors.Is(err, runtime.ErrNotRunning) {
		return fmt.Errorf("stop %s: %w", p.spec.Name, err)
	}
	return nil
}

// Restart stops the process if it runs and starts it again from the same Spec, with the
// same log file (appended) and working directory.
func (p *Process) Restart(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	if err := p.stop(ctx); err != nil {
		return fmt.Errorf("restart %s: %w", p.spec.Name, err)
	}
	p.rt.mu.Lock()
	closed := p.rt.closed
	p.rt.mu.Unlock()
	if closed {
		return fmt.Errorf("restart %s: %w", p.spec.Name, runtime.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restart %s: %w", p.spec.Name, err)
	}
	return p.launch()
}

// signal delivers sig to the whole process group, so that a shell wrapper's children get
// the fault too.
func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return runtime.ErrNotRunning
	}
	select {
	case <-p.done:
		return runtime.ErrNotRunning
	default:
	}
	// The leader has not been reaped (done is open), so its pid is still ours and the
	// group id cannot have been reused.
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return runtime.ErrNotRunning
		}
		return fmt.Errorf("send %s: %w", sig, err)
	}
	return nil
}

func (p *Process) launch() error {
	s := p.spec
	cmd := exec.Command(s.Command, s.Args...)
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	var logf *os.File
	if s.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(s.LogFile), 0o755); err != nil {
			return fmt.Errorf("start %s: create log dir: %w", s.Name, err)
		}
		f, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("start %s: open log: %w", s.Name, err)
		}
		logf = f
		// An *os.File is handed to the child as its fd: no copying goroutine in the
		// harness, and output survives the harness dying first.
		cmd.Stdout, cmd.Stderr = f, f
	}
	err := cmd.Start()
	if logf != nil {
		_ = logf.Close()
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.exitErr = cmd, done, nil
	p.mu.Unlock()
	p.rt.log.Info("process started", "name", s.Name, "pid", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if p.cmd == cmd {
			p.exitErr = err
		}
		p.mu.Unlock()
		close(done)
		p.rt.log.Info("process exited", "name", s.Name, "pid", cmd.Process.Pid, "err", err)
	}()
	return nil
}
