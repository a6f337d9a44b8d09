package system

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/runtime"
)

// Fixed ports inside every container: each container has its own network namespace, so
// every component can use the same well-known ports, and peers dial "<name>:<port>".
const (
	ContainerRegistryPort = 2379
	ContainerPeerPort     = 2380
	ContainerBrokerPort   = 4222
	ContainerServicePort  = 9000 // merchant, product, order (gRPC)
	ContainerBalancerPort = 9100
	ContainerGatewayPort  = 8080
	ContainerAdminPort    = 9090
)

// ImageBinaryPath is where the faultline binary sits in the images the container runtimes
// start (runtime/images.FaultlinePath; a test pins them together, since importing that
// package here would link the image builders into every user of the system).
const ImageBinaryPath = "/faultline"

// Paths inside a container: the config, the JWT secret and the design are copied in
// before the first start; the data directory is a mount.
const (
	containerConfigDir = "/config"
	containerSecret    = "/secrets/jwt.key"
	containerDesign    = "/config/design.yaml"
	containerDataDir   = "/data"
)

// containerPorts are the in-container ports a component publishes on the host, and the
// host ports they are pinned to (so a restarted container keeps its addresses).
type containerPorts struct{ listen, admin, hostListen, hostAdmin int }

// WithKeepData keeps a container system's data after Stop, as the local runtime always
// does: Dir/data/<service> on the host is bind-mounted instead of a run volume, which the
// runtime removes on Close. The local runtime ignores it.
func WithKeepData() Option {
	return func(o *options) { o.keepData = true }
}

// isContainerRuntime reports whether rt declares that it runs containers, which changes
// how the system is planned: the harness's host addresses mean nothing inside a container.
// A wrapper (the harness's undo recorder) is looked through.
func isContainerRuntime(rt runtime.Runtime) bool {
	_, ok := runtime.AsRuntime[runtime.Containerized](rt)
	return ok
}

// bindsHostFiles reports whether containers of rt may bind-mount the harness's files: only
// where the runtime says so (runtime.HostFiles: Docker with an engine on this machine). A
// cluster's nodes do not hold them, wherever a Docker engine runs.
func bindsHostFiles(rt runtime.Runtime) bool {
	h, ok := runtime.AsRuntime[runtime.HostFiles](rt)
	return ok && h.BindsHostFiles()
}

// preparer finds rt's runtime.Preparer, looking through wrappers: a wrapper records
// starts, and a prepared container is recorded when it starts.
func preparer(rt runtime.Runtime) (runtime.Preparer, bool) {
	return runtime.AsRuntime[runtime.Preparer](rt)
}

// withContainerCommand makes the default command the binary inside the image.
func (s Spec) withContainerCommand() Spec {
	if s.Command == "" {
		s.Command = ImageBinaryPath
		if s.Args == nil {
			s.Args = []string{"serve"}
		}
	}
	return s
}

// containerListenPort is the fixed port of kind's main listener.
func containerListenPort(kind string) int {
	switch kind {
	case config.KindRegistry:
		return ContainerRegistryPort
	case config.KindBroker:
		return ContainerBrokerPort
	case config.KindBalancer:
		return ContainerBalancerPort
	case config.KindGateway:
		return ContainerGatewayPort
	default:
		return ContainerServicePort
	}
}

// containerAddrs plans every component on a container network: it listens on 0.0.0.0
// (the container's network is the boundary) and is dialled by its name, which is its
// alias on the run's network.
func containerAddrs(plan []planned) map[string]string {
	wild := func(port int) string { return net.JoinHostPort("0.0.0.0", strconv.Itoa(port)) }
	addrs := map[string]string{}
	for _, p := range plan {
		port := containerListenPort(p.kind)
		addrs[p.name+"/listen"] = wild(port)
		addrs[p.name+"/net"] = net.JoinHostPort(p.name, strconv.Itoa(port))
		addrs[p.name+"/admin"] = wild(ContainerAdminPort)
	}
	addrs["registry-1/peer"] = wild(ContainerPeerPort)
	return addrs
}

// containerize rewrites a planned component for its container: in-container paths in the
// config, and the host addresses (allocated like a process's) its ports are published on.
func (sys *System) containerize(c *Component, cfg *config.Component, hostListen, hostAdmin string) error {
	cfg.DataDir = containerDataDir + "/" + c.Service
	cfg.JWT.SecretFile = containerSecret
	if cfg.Design != "" {
		cfg.Design = containerDesign
	}
	c.ports = containerPorts{listen: containerListenPort(c.Kind), admin: ContainerAdminPort}
	for _, hp := range []struct {
		addr string
		port *int
	}{{hostListen, &c.ports.hostListen}, {hostAdmin, &c.ports.hostAdmin}} {
		_, p, err := net.SplitHostPort(hp.addr)
		if err != nil {
			return fmt.Errorf("plan host port of %s: %w", c.Name, err)
		}
		if *hp.port, err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("plan host port of %s: %w", c.Name, err)
		}
	}
	c.Listen, c.Admin = hostListen, hostAdmin
	if !sys.opts.keepData {
		c.DataDir = ""
	}
	return nil
}

// containerSpec is the runtime spec of c: its config, the secret and the design go in as
// files, its data directory is the service's volume (shared by the replicas, as the
// SQLite WAL needs) or, with WithKeepData, the host's data directory.
func (sys *System) containerSpec(c *Component) (runtime.Spec, error) {
	s := sys.spec
	cfgPath := containerConfigDir + "/" + c.Name + ".json"
	cfgJSON, err := os.ReadFile(c.ConfigPath)
	if err != nil {
		return runtime.Spec{}, fmt.Errorf("read config: %w", err)
	}
	secret, err := os.ReadFile(filepath.Join(s.Dir, "secrets", "jwt.key"))
	if err != nil {
		return runtime.Spec{}, fmt.Errorf("read jwt secret: %w", err)
	}
	files := []runtime.File{
		{Target: cfgPath, Content: cfgJSON, Mode: 0o600},
		{Target: containerSecret, Content: secret, Mode: 0o600},
	}
	if s.DesignFile != "" {
		b, err := os.ReadFile(s.DesignFile)
		if err != nil {
			return runtime.Spec{}, fmt.Errorf("read design: %w", err)
		}
		files = append(files, runtime.File{Target: containerDesign, Content: b})
	}
	data := runtime.Mount{Volume: "data-" + c.Service, Target: containerDataDir + "/" + c.Service}
	if c.DataDir != "" {
		data = runtime.Mount{HostPath: c.DataDir, Target: data.Target}
	}
	mounts := []runtime.Mount{data}
	if sys.bindFiles {
		binds, err := bindFiles(map[string]string{
			cfgPath:         c.ConfigPath,
			containerSecret: filepath.Join(s.Dir, "secrets", "jwt.key"),
			containerDesign: s.DesignFile,
		})
		if err != nil {
			return runtime.Spec{}, err
		}
		mounts, files = append(mounts, binds...), nil
	}
	return runtime.Spec{
		Name:    c.Name,
		Command: s.Command,
		Args:    append(slices.Clone(s.Args), "--config", cfgPath),
		Env:     append(slices.Clone(s.Env), serveConfigEnv+"="+cfgPath),
		LogFile: c.LogPath,
		Labels:  map[string]string{"faultline.kind": c.Kind, "faultline.service": c.Service, "faultline.dir": s.Dir},
		Container: &runtime.ContainerSpec{
			Ports:     []int{c.ports.listen, c.ports.admin},
			HostPorts: map[int]int{c.ports.listen: c.ports.hostListen, c.ports.admin: c.ports.hostAdmin},
			Mounts:    mounts,
			Files:     files,
		},
	}, nil
}

// errNoUpProbe: only a container is up before it is ready (see System.step).
var errNoUpProbe = errors.New("no up probe for this component")

// up returns once a started component is up, before it is ready: on containers, once its
// container runs, which is when runGraph asks (see System.step); a local process is up
// only when ready.
func (sys *System) up(context.Context, string) error {
	if !sys.containers {
		return errNoUpProbe
	}
	return nil
}

// Disconnect takes the named component off the network while it keeps running (a
// container leaves the run's network: peers and published ports get no answer). It is
// only offered where the runtime controls the network (containers).
func (sys *System) Disconnect(ctx context.Context, name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("disconnect component: %w", err)
	}
	p, ok := runtime.As[runtime.Partitioner](c.Process)
	if !ok {
		return fmt.Errorf("disconnect %s: %w", name, ErrNoNetworkControl)
	}
	return p.Disconnect(ctx)
}

// Reconnect puts a disconnected component back on the network.
func (sys *System) Reconnect(ctx context.Context, name string) error {
	c, err := sys.process(name)
	if err != nil {
		return fmt.Errorf("reconnect component: %w", err)
	}
	p, ok := runtime.As[runtime.Partitioner](c.Process)
	if !ok {
		return fmt.Errorf("reconnect %s: %w", name, ErrNoNetworkControl)
	}
	return p.Reconnect(ctx)
}

// CanDisconnect reports whether Disconnect works on the named component.
func (sys *System) CanDisconnect(name string) bool {
	c, err := sys.process(name)
	if err != nil {
		return false
	}
	_, ok := runtime.As[runtime.Partitioner](c.Process)
	return ok
}

// ErrNoNetworkControl is returned by Disconnect on a runtime that does not control its
// processes' network (local processes share the host's).
var ErrNoNetworkControl = errors.New("the runtime does not control this component's network")

// bindFiles mounts each host file (value) read-only on its container path (key); an
// empty host path is skipped. The files are read here first, as copying them would.
func bindFiles(files map[string]string) ([]runtime.Mount, error) {
	var out []runtime.Mount
	for _, target := range slices.Sorted(maps.Keys(files)) {
		host := files[target]
		if host == "" {
			continue
		}
		abs, err := filepath.Abs(host)
		if err != nil {
			return nil, fmt.Errorf("bind %s: %w", target, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("bind %s: %w", target, err)
		}
		out = append(out, runtime.Mount{HostPath: abs, Target: target, ReadOnly: true})
	}
	return out, nil
}
