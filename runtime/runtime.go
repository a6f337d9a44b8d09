// Package runtime is the seam between the harness and wherever the system under test runs.
// Scenarios and faults start, crash, pause and restart components through these interfaces
// only, so the same scenario drives local OS processes (runtime/local) or Docker containers
// (runtime/docker), and can start a user's own commands, not only the faultline binary.
//
// Runtime and Process are the least every runtime offers. What only some offer is a
// declared capability, an interface a caller asks for with As (a process's) or AsRuntime
// (a runtime's) instead of a type assertion on one runtime's types: Preparer,
// Containerized and HostFiles for runtimes; Partitioner, Replacer, HostPorter, Inspector and Specced
// for processes. The helpers it shares (runtime/wait, runtime/ports) live below it.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
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
	// Container carries what only a container runtime needs (image, published ports,
	// mounts, files). Process runtimes ignore it, so one Spec can describe a component for
	// either runtime; nil means "the runtime's default image, nothing published".
	Container *ContainerSpec
}

// ContainerSpec is the container-only part of a Spec. In a container, Spec.Command is the
// executable inside the image (the entrypoint), Spec.Args its arguments, Spec.Env the whole
// environment (the harness's own environment is not inherited), Spec.Dir the working
// directory inside the container and Spec.LogFile a host file that receives the
// container's output.
type ContainerSpec struct {
	// Image is the image reference; empty means the runtime's default image.
	Image string
	// Ports are container TCP ports published on the host's loopback interface only, on
	// the port HostPorts pins or else one the engine picks; a harness asks the process for
	// the host address of each.
	Ports []int
	// HostPorts pins the host port of some of Ports (container port -> host port), so
	// that the address stays the same when the container restarts: the engine picks a
	// new port for an unpinned one at every start, and a load generator or an
	// operator's browser would lose it.
	HostPorts map[int]int
	// Aliases are extra DNS names on the run's network besides Spec.Name.
	Aliases []string
	// Mounts hold data that must outlive the container (a restart keeps it anyway; a
	// replacement container does not).
	Mounts []Mount
	// Files are written into the container before it first starts (config files).
	Files []File
	// Ready, when set, makes Start and Restart return only once the container answers
	// an HTTP GET with a 2xx status, so a caller need not know the host port to wait.
	Ready *HTTPReady
}

// Mount attaches a volume or a host directory to a container path.
type Mount struct {
	// Volume names a volume scoped to the run; specs that name the same Volume share it
	// (replicas of one service share their database). Exactly one of Volume and HostPath
	// is set.
	Volume string
	// HostPath bind-mounts an absolute host directory, or a host file onto a file.
	HostPath string
	// Target is the absolute path inside the container.
	Target   string
	ReadOnly bool
}

// File is one file written into a container before its first start.
type File struct {
	// Target is the absolute path inside the container; missing directories are created.
	Target  string
	Content []byte
	// Mode is the permission bits; 0 means 0o644.
	Mode int64
}

// HTTPReady is a readiness probe a container runtime runs from the host.
type HTTPReady struct {
	Port int    // a container port listed in ContainerSpec.Ports
	Path string // "/readyz"
}

// Validate reports every problem with c at once.
func (c ContainerSpec) Validate() []error {
	var errs []error
	published := map[int]bool{}
	for i, p := range c.Ports {
		if p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("ports[%d] %d is not a TCP port", i, p))
		}
		published[p] = true
	}
	for _, cp := range slices.Sorted(maps.Keys(c.HostPorts)) {
		hp := c.HostPorts[cp]
		if !published[cp] {
			errs = append(errs, fmt.Errorf("host ports: container port %d is not in ports", cp))
		}
		if hp < 1 || hp > 65535 {
			errs = append(errs, fmt.Errorf("host ports: host port %d for container port %d is not a TCP port", hp, cp))
		}
	}
	for i, m := range c.Mounts {
		switch {
		case m.Volume == "" && m.HostPath == "":
			errs = append(errs, fmt.Errorf("mounts[%d] has neither volume nor host path", i))
		case m.Volume != "" && m.HostPath != "":
			errs = append(errs, fmt.Errorf("mounts[%d] has both volume %q and host path %q", i, m.Volume, m.HostPath))
		case m.HostPath != "" && !strings.HasPrefix(m.HostPath, "/"):
			errs = append(errs, fmt.Errorf("mounts[%d] host path %q is not absolute", i, m.HostPath))
		}
		if !strings.HasPrefix(m.Target, "/") {
			errs = append(errs, fmt.Errorf("mounts[%d] target %q is not absolute", i, m.Target))
		}
	}
	for i, f := range c.Files {
		if !strings.HasPrefix(f.Target, "/") || strings.HasSuffix(f.Target, "/") {
			errs = append(errs, fmt.Errorf("files[%d] target %q is not an absolute file path", i, f.Target))
		}
	}
	if r := c.Ready; r != nil {
		if !published[r.Port] {
			errs = append(errs, fmt.Errorf("ready port %d is not in ports", r.Port))
		}
		if !strings.HasPrefix(r.Path, "/") {
			errs = append(errs, fmt.Errorf("ready path %q does not start with '/'", r.Path))
		}
	}
	return errs
}

// Clone returns a deep copy of s: a runtime keeps a Spec to restart from, and a caller
// reusing its slices or maps must not change what a restart starts.
func (s Spec) Clone() Spec {
	s.Args = slices.Clone(s.Args)
	s.Env = slices.Clone(s.Env)
	s.Labels = maps.Clone(s.Labels)
	if s.Container != nil {
		cs := *s.Container
		cs.Ports = slices.Clone(cs.Ports)
		cs.HostPorts = maps.Clone(cs.HostPorts)
		cs.Aliases = slices.Clone(cs.Aliases)
		cs.Mounts = slices.Clone(cs.Mounts)
		cs.Files = slices.Clone(cs.Files)
		if cs.Ready != nil {
			ready := *cs.Ready
			cs.Ready = &ready
		}
		s.Container = &cs
	}
	return s
}

// ContainerClone is Clone with Container set (empty when s has none), for container
// runtimes, which read it on every start.
func (s Spec) ContainerClone() Spec {
	s = s.Clone()
	if s.Container == nil {
		s.Container = &ContainerSpec{}
	}
	return s
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
	if s.Container != nil {
		for _, err := range s.Container.Validate() {
			errs = append(errs, fmt.Errorf("container: %w", err))
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

// Preparer is implemented by runtimes whose Start has a slow part that needs nothing of the
// process's peers (a container is created and its files written): Prepare does that part
// ahead, while the process's dependencies are still starting, so that the Start of the
// same Spec later only starts it. Start without Prepare works as before; Close removes
// what was prepared and never started, and a prepared process is not listed until then.
type Preparer interface {
	Prepare(ctx context.Context, s Spec) error
}

// Containerized is implemented by runtimes that start every process in a container on a
// network of the run's own. The system is planned differently on one: components reach
// each other by name on that network, where the harness's loopback addresses mean nothing.
type Containerized interface {
	Runtime
	// Network is the name of the run's network.
	Network() string
}

// HostFiles is implemented by container runtimes whose containers can bind-mount files of
// the harness's own machine (Docker with an engine on this machine): a system then mounts
// its configs and secret instead of copying them in. A cluster's nodes do not hold them.
type HostFiles interface {
	// BindsHostFiles reports whether a Mount's HostPath on this machine reaches the
	// container.
	BindsHostFiles() bool
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

// Partitioner is implemented by processes whose network attachment a runtime controls
// (containers): Disconnect cuts the process off from every peer on the run's network while
// it keeps running, Reconnect heals that. Both are idempotent.
type Partitioner interface {
	Disconnect(ctx context.Context) error
	Reconnect(ctx context.Context) error
}

// Replacer is implemented by processes whose runtime has a controller that replaces a
// deleted instance (a Kubernetes Deployment's pod): Delete removes the current instance as
// the platform's own tooling would (SIGTERM, grace) and returns once its replacement is
// ready. Only such a runtime can offer it: elsewhere nothing would start the replacement.
type Replacer interface {
	Delete(ctx context.Context) error
	// InstanceID names the current instance (a pod's UID), "" when there is none: a
	// replacement has a new one, a container restarted in place keeps it, so a delete can
	// be told to have landed.
	InstanceID() string
}

// HostPorter is implemented by processes that listen behind a port mapping: HostPort
// returns the "127.0.0.1:port" address on the harness's host that reaches containerPort.
// The mapping can change when the process restarts, so ask again after a Restart.
type HostPorter interface {
	HostPort(containerPort int) (string, error)
}

// State is what an Inspector reports of a process.
type State struct {
	Running  bool
	Paused   bool // frozen (a paused container, a stopped process)
	Attached bool // on the run's network
}

// Inspector is implemented by processes whose runtime can say what state they are in
// without asking the process itself: a check of last resort for a fault's effect where
// the process has no health endpoint to probe (a forwarded TCP port accepts connections
// even when the process behind it is frozen or off the network).
type Inspector interface {
	State(ctx context.Context) (State, error)
}

// As finds an optional capability T of p (Partitioner, HostPorter, Inspector, ...),
// looking through wrappers that offer Unwrap() Process: a wrapper (a harness's recorder)
// cannot repeat every capability of what it wraps.
func As[T any](p Process) (T, bool) { return as[T](p) }

// AsRuntime finds an optional capability T of rt (Preparer, Containerized, ...), looking
// through wrappers that offer Unwrap() Runtime (the harness's undo recorder), as As does
// for a process.
func AsRuntime[T any](rt Runtime) (T, bool) { return as[T](rt) }

// as looks for T in v and then in what v wraps, as long as each offers Unwrap() W.
func as[T any, W comparable](v W) (T, bool) {
	var none W
	for v != none {
		if t, ok := any(v).(T); ok {
			return t, true
		}
		u, ok := any(v).(interface{ Unwrap() W })
		if !ok {
			break
		}
		v = u.Unwrap()
	}
	var zero T
	return zero, false
}

// LastLine returns the last non-empty line of the file at path, at most 400 bytes of it
// (the end kept), or "" when there is none. Only the file's last 8 KiB are read.
func LastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		if _, err := f.Seek(fi.Size()-tail, io.SeekStart); err != nil {
			return ""
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n\t "), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if len(last) > 400 {
		last = "…" + last[len(last)-400:]
	}
	return last
}
