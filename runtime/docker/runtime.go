package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/faultline-dev/faultline/runtime"
)

// Defaults; each has an Option.
const (
	// DefaultGrace matches the local runtime: time to revoke a lease and drain on Stop.
	DefaultGrace = 3 * time.Second
	// DefaultStartTimeout bounds a readiness wait; container starts on a loaded CI
	// machine take seconds, and a component that needs longer is broken anyway.
	DefaultStartTimeout = 60 * time.Second
)

// opTimeout bounds single engine calls made without a caller's context (Kill, Pause,
// HostPort): the runtime.Signaller methods take none.
const opTimeout = 30 * time.Second

// reapTimeout bounds the wait for the engine to report a killed or stopped container.
const reapTimeout = 15 * time.Second

// namePattern is what Docker accepts in container, network and volume names and DNS
// aliases; checking it up front turns an engine error into a spec error.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Runtime runs containers on one private bridge network, named "faultline-<run id>", and
// removes every container, volume and the network on Close.
type Runtime struct {
	runID        string
	image        string
	grace        time.Duration
	startTimeout time.Duration
	log          *slog.Logger

	provider *testcontainers.DockerProvider
	cli      client.APIClient
	network  string
	netID    string

	// bg outlives every call: it carries the exit watchers and log followers, which end
	// with their container, and is cancelled only after Close removed everything.
	bg       context.Context
	cancelBg context.CancelFunc
	tails    sync.WaitGroup

	starting sync.WaitGroup
	mu       sync.Mutex
	procs    map[string]*Process
	volumes  map[string]bool
	closed   bool

	// reaperImage, when set, starts the run's reaper (WithReaper); reaper is the
	// connection that keeps it waiting, closed last by Close.
	reaperImage string
	reaperGrace time.Duration
	reaper      net.Conn
	// reaperDone is closed once the reaper started in the background is watching (or
	// failed, reaperErr); cancelReaper gives up on it (Close).
	reaperDone   chan struct{}
	reaperErr    error
	cancelReaper context.CancelFunc
}

var (
	_ runtime.Runtime       = (*Runtime)(nil)
	_ runtime.Preparer      = (*Runtime)(nil)
	_ runtime.Lister        = (*Runtime)(nil)
	_ runtime.Process       = (*Process)(nil)
	_ runtime.Specced       = (*Process)(nil)
	_ runtime.Partitioner   = (*Process)(nil)
	_ runtime.HostPorter    = (*Process)(nil)
	_ runtime.Inspector     = (*Process)(nil)
	_ runtime.Containerized = (*Runtime)(nil)
	_ runtime.HostFiles     = (*Runtime)(nil)
)

// Option configures a Runtime.
type Option func(*Runtime)

// WithRunID names the run; every resource carries it in LabelRun and Clean(runID) finds
// them. The default is random. It must be a valid Docker name.
func WithRunID(id string) Option {
	return func(r *Runtime) {
		if id != "" {
			r.runID = id
		}
	}
}

// WithImage is the image for specs whose Container.Image is empty (usually the tag
// BuildImage returned).
func WithImage(tag string) Option {
	return func(r *Runtime) { r.image = tag }
}

// WithGrace sets the SIGTERM → SIGKILL grace period of Stop and Close; Docker counts it
// in whole seconds, so it is rounded up.
func WithGrace(d time.Duration) Option {
	return func(r *Runtime) {
		if d > 0 {
			r.grace = d
		}
	}
}

// WithStartTimeout bounds the readiness wait of Start and Restart.
func WithStartTimeout(d time.Duration) Option {
	return func(r *Runtime) {
		if d > 0 {
			r.startTimeout = d
		}
	}
}

// WithLogger receives the runtime's and testcontainers' messages.
func WithLogger(l *slog.Logger) Option {
	return func(r *Runtime) {
		if l != nil {
			r.log = l
		}
	}
}

// New connects to the engine and creates the run's network. Call Close (even after a
// failed run) to remove everything; a killed harness leaves its resources to Clean.
func New(ctx context.Context, opts ...Option) (*Runtime, error) {
	r := &Runtime{
		grace: DefaultGrace, startTimeout: DefaultStartTimeout, log: slog.New(slog.DiscardHandler),
		procs: map[string]*Process{}, volumes: map[string]bool{},
	}
	for _, o := range opts {
		o(r)
	}
	if r.runID == "" {
		r.runID = NewRunID()
	}
	if !namePattern.MatchString(r.runID) {
		return nil, fmt.Errorf("create runtime: run id %q is not a valid docker name", r.runID)
	}
	p, err := newProvider(r.log)
	if err != nil {
		return nil, err
	}
	r.provider, r.cli = p, p.Client()
	r.network = "faultline-" + r.runID
	res, err := r.cli.NetworkCreate(ctx, r.network, client.NetworkCreateOptions{
		Driver: "bridge", Labels: managedLabels(r.runID),
	})
	if err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("create network %s: %w", r.network, err)
	}
	r.netID = res.ID
	r.bg, r.cancelBg = context.WithCancel(context.Background())
	r.reaperDone = closedChan()
	if r.reaperImage != "" {
		// The reaper starts while the first containers do: its own start (the engine's
		// part, then its process coming up to greet) is not on the run's critical path.
		// Every Start returns only once it watches (awaitReaper), so no container a
		// caller was told about outlives a killed harness; Close gives up on it.
		var rctx context.Context
		rctx, r.cancelReaper = context.WithCancel(context.WithoutCancel(ctx))
		r.reaperDone = make(chan struct{})
		go func() {
			defer close(r.reaperDone)
			r.reaperErr = r.startReaper(rctx)
		}()
	}
	return r, nil
}

// awaitReaper returns once the reaper watches the run, with its start's error.
func (r *Runtime) awaitReaper(ctx context.Context) error {
	select {
	case <-r.reaperDone:
		return r.reaperErr
	case <-ctx.Done():
		return fmt.Errorf("wait for the reaper: %w", ctx.Err())
	}
}

// NewRunID returns a short random run id, unique enough for the runs of one engine.
func NewRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RunID is the id every resource of this runtime is labelled with.
func (r *Runtime) RunID() string { return r.runID }

// Network is the name of the run's network; containers reach each other there by
// runtime.Spec.Name.
func (r *Runtime) Network() string { return r.network }

// BindsHostFiles reports whether a Mount's HostPath reaches the containers: only from an
// engine on this machine (LocalEngine); a remote engine's host has other files.
func (r *Runtime) BindsHostFiles() bool { return LocalEngine() }

// ContainerName is the Docker name of the container for instance name.
func (r *Runtime) ContainerName(name string) string { return "faultline-" + r.runID + "-" + name }

// VolumeName is the Docker name of the run's volume called volume in a runtime.Mount.
func (r *Runtime) VolumeName(volume string) string { return "faultline-" + r.runID + "-" + volume }

// Start creates and starts a container for s on the run's network, with network alias
// s.Name, and returns once it runs (and, with Container.Ready, answers its probe). ctx
// bounds only the start. The container's environment is s.Env plus FAULTLINE_BIND_ANY=1
// (its network is the boundary, so components may listen on 0.0.0.0); it does not
// inherit the harness's environment. Published ports are on 127.0.0.1 only, which the
// harness reaches when it shares the engine's network namespace (the usual laptop and CI
// runner set-up).
func (r *Runtime) Start(ctx context.Context, s runtime.Spec) (runtime.Process, error) {
	if errs := validate(s); len(errs) > 0 {
		return nil, fmt.Errorf("start %s: validate spec: %w", s.Name, errors.Join(errs...))
	}
	s = s.ContainerClone()
	if s.Container.Image == "" {
		s.Container.Image = r.image
	}
	if s.Container.Image == "" {
		return nil, fmt.Errorf("start %s: no image (set Spec.Container.Image or WithImage)", s.Name)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", s.Name, runtime.ErrClosed)
	}
	old, exists := r.procs[s.Name]
	if exists && old.prepared && !old.starting && reflect.DeepEqual(old.spec, s) {
		return r.startPrepared(ctx, old)
	}
	if exists && (old.starting || old.Running()) {
		r.mu.Unlock()
		return nil, fmt.Errorf("start %s: a container with this name is already running", s.Name)
	}
	p := &Process{rt: r, spec: s, starting: true, done: closedChan()}
	r.procs[s.Name] = p
	r.starting.Add(1)
	r.mu.Unlock()
	defer r.starting.Done()

	err := func() error {
		if exists {
			if err := old.remove(ctx); err != nil {
				return err
			}
		}
		if err := r.ensureVolumes(ctx, s.Container.Mounts); err != nil {
			return err
		}
		return p.create(ctx)
	}()
	r.mu.Lock()
	p.starting = false
	if err != nil {
		delete(r.procs, s.Name)
		r.mu.Unlock()
		return nil, err
	}
	r.mu.Unlock()
	// A failed reaper fails the start; the container stays listed for Close to remove.
	if err := r.awaitReaper(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	return p, nil
}

// Prepare creates the container of s and writes its files without starting it (see
// runtime.Preparer); the Start of an equal Spec then only starts it.
func (r *Runtime) Prepare(ctx context.Context, s runtime.Spec) error {
	if errs := validate(s); len(errs) > 0 {
		return fmt.Errorf("validate spec: %w", errors.Join(errs...))
	}
	s = s.ContainerClone()
	if s.Container.Image == "" {
		s.Container.Image = r.image
	}
	if s.Container.Image == "" {
		return fmt.Errorf("prepare %s: no image (set Spec.Container.Image or WithImage)", s.Name)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("prepare %s: %w", s.Name, runtime.ErrClosed)
	}
	if _, exists := r.procs[s.Name]; exists {
		r.mu.Unlock()
		return fmt.Errorf("prepare %s: a container with this name exists", s.Name)
	}
	p := &Process{rt: r, spec: s, starting: true, done: closedChan()}
	r.procs[s.Name] = p
	r.starting.Add(1)
	r.mu.Unlock()
	defer r.starting.Done()

	ctx, cancel := context.WithTimeout(ctx, r.startTimeout)
	defer cancel()
	err := r.ensureVolumes(ctx, s.Container.Mounts)
	if err == nil {
		err = p.createContainer(ctx)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p.starting = false
	if err != nil {
		delete(r.procs, s.Name)
		return err
	}
	p.prepared = true
	return nil
}

// startPrepared starts a container Prepare created; r.mu is held and is released.
func (r *Runtime) startPrepared(ctx context.Context, p *Process) (runtime.Process, error) {
	p.starting = true
	r.starting.Add(1)
	r.mu.Unlock()
	defer r.starting.Done()
	ctx, cancel := context.WithTimeout(ctx, r.startTimeout)
	defer cancel()
	err := p.start(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("start container %s: %w", p.spec.Name, err), p.remove(context.WithoutCancel(ctx)))
	}
	r.mu.Lock()
	p.starting, p.prepared = false, false
	if err != nil {
		delete(r.procs, p.spec.Name)
		r.mu.Unlock()
		return nil, err
	}
	r.mu.Unlock()
	if err := r.awaitReaper(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	return p, nil
}

// validate adds the container runtime's own rules to Spec.Validate.
func validate(s runtime.Spec) []error {
	errs := s.Validate()
	if s.Name != "" && !namePattern.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name %q is not a valid docker name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)", s.Name))
	}
	if s.Container != nil {
		for _, a := range s.Container.Aliases {
			if !namePattern.MatchString(a) {
				errs = append(errs, fmt.Errorf("container: alias %q is not a valid docker name", a))
			}
		}
		for _, m := range s.Container.Mounts {
			if m.Volume != "" && !namePattern.MatchString(m.Volume) {
				errs = append(errs, fmt.Errorf("container: volume %q is not a valid docker name", m.Volume))
			}
		}
	}
	return errs
}

func (r *Runtime) ensureVolumes(ctx context.Context, mounts []runtime.Mount) error {
	for _, m := range mounts {
		if m.Volume == "" {
			continue
		}
		name := r.VolumeName(m.Volume)
		r.mu.Lock()
		known := r.volumes[name]
		r.mu.Unlock()
		if known {
			continue
		}
		// Creating an existing volume returns it unchanged, so replicas starting at once
		// may both create.
		if _, err := r.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: managedLabels(r.runID)}); err != nil {
			return fmt.Errorf("create volume %s: %w", name, err)
		}
		r.mu.Lock()
		r.volumes[name] = true
		r.mu.Unlock()
	}
	return nil
}

// createOptions maps a Spec onto the engine's container create call. The engine is
// called directly, not through testcontainers' GenericContainer, whose lifecycle hooks
// cost a provider, a network lookup, an image inspect and one upload per file for every
// container: most of a container system's start on a loaded machine.
func (r *Runtime) createOptions(s runtime.Spec) client.ContainerCreateOptions {
	cs := s.Container
	env := []string{"FAULTLINE_BIND_ANY=1"}
	for _, kv := range s.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "FAULTLINE_BIND_ANY" {
			env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, "FAULTLINE_BIND_ANY=") })
		}
		env = append(env, kv)
	}
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, managedLabels(r.runID))
	labels[LabelName] = s.Name

	exposed := network.PortSet{}
	bindings := network.PortMap{}
	loopback := netip.MustParseAddr("127.0.0.1")
	for _, port := range cs.Ports {
		pp := network.MustParsePort(strconv.Itoa(port) + "/tcp")
		exposed[pp] = struct{}{}
		b := network.PortBinding{HostIP: loopback}
		if hp := cs.HostPorts[port]; hp > 0 {
			b.HostPort = strconv.Itoa(hp)
		}
		bindings[pp] = []network.PortBinding{b}
	}
	var mounts []mount.Mount
	for _, m := range cs.Mounts {
		mm := mount.Mount{Type: mount.TypeVolume, Source: r.VolumeName(m.Volume), Target: m.Target, ReadOnly: m.ReadOnly}
		if m.HostPath != "" {
			mm = mount.Mount{Type: mount.TypeBind, Source: m.HostPath, Target: m.Target, ReadOnly: m.ReadOnly}
		}
		mounts = append(mounts, mm)
	}
	return client.ContainerCreateOptions{
		Name: r.ContainerName(s.Name),
		Config: &container.Config{
			Image:        cs.Image,
			Entrypoint:   []string{s.Command},
			Cmd:          s.Args,
			Env:          env,
			Labels:       labels,
			ExposedPorts: exposed,
			Hostname:     s.Name,
			WorkingDir:   s.Dir,
		},
		HostConfig: &container.HostConfig{
			NetworkMode:  container.NetworkMode(r.network),
			PortBindings: bindings,
			Mounts:       mounts,
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			r.network: {Aliases: append([]string{s.Name}, cs.Aliases...)},
		}},
	}
}

// filesArchive is one tar of every file of cs (and their parent directories), so that a
// container's files go in with one call.
func filesArchive(files []runtime.File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Now()
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.Target); d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
			dirs[d] = true
		}
		slices.Reverse(parents)
		for _, d := range parents {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: now}); err != nil {
				return nil, fmt.Errorf("write files: %w", err)
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Target, "/"), Mode: mode, Size: int64(len(f.Content)), ModTime: now}); err != nil {
			return nil, fmt.Errorf("write files: %w", err)
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, fmt.Errorf("write files: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write files: %w", err)
	}
	return buf.Bytes(), nil
}

// Processes lists every container started by r, in name order.
func (r *Runtime) Processes() []runtime.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := slices.Sorted(maps.Keys(r.procs))
	out := make([]runtime.Process, 0, len(names))
	for _, n := range names {
		if !r.procs[n].starting && !r.procs[n].prepared {
			out = append(out, r.procs[n])
		}
	}
	return out
}

// Close stops every container (SIGTERM, grace, SIGKILL) concurrently, then removes the
// containers, the run's volumes and its network, and finally sweeps anything else that
// carries this run's label (a container whose start failed half-way). Later Starts fail
// with runtime.ErrClosed. Calling Close twice is safe.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	// A reaper still starting is given up: the sweep below removes its container.
	if r.cancelReaper != nil {
		r.cancelReaper()
	}
	<-r.reaperDone
	r.starting.Wait()
	r.mu.Lock()
	procs := slices.Collect(maps.Values(r.procs))
	r.mu.Unlock()

	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			errs[i] = errors.Join(p.Stop(ctx), p.remove(ctx))
		})
	}
	wg.Wait()
	r.tails.Wait()
	// The sweep removes the reaper's container too, before its connection closes: a
	// reaper never races the runtime that is cleaning up by itself.
	if _, err := Clean(ctx, r.runID); err != nil {
		errs = append(errs, err)
	}
	if r.reaper != nil {
		_ = r.reaper.Close()
	}
	r.cancelBg()
	_ = r.provider.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close runtime %s: %w", r.runID, err)
	}
	return nil
}

// isNotFound treats a resource that is already gone as removed.
func isNotFound(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
