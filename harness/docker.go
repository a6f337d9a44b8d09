package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/sut"
	"github.com/faultline-dev/faultline/undo"
)

// On the Docker runtime the fault proxies live in one Toxiproxy container on the run's
// network, reached by its callers as toxiproxyName:<port> and by the harness through the
// ports that container publishes on 127.0.0.1.
const (
	toxiproxyName = "toxiproxy"
	// proxyPortBase is the first port, inside the Toxiproxy container, that a proxy
	// listens on; a run publishes as many as its system can need (proxyPorts).
	proxyPortBase = 20000
	// controlPorts is how many more ports, after the proxies', the container publishes
	// for the bare proxies latency measurements compare with (faults.Remote.ControlPorts):
	// enough for the links of two faults measured at once on a two-replica callee.
	controlPorts = 4
)

// containerRuntime is a runtime whose every process is a container on a network of the
// run's own (Docker's network, a Kubernetes namespace), and that lists what it started.
type containerRuntime interface {
	runtime.Containerized
	runtime.Lister
}

// containerRun is what a run on a container runtime (Docker, Kubernetes) adds to a local
// one: the runtime (everything it makes labelled with the run's undo id, so that a killed
// run is removed by the next faultline command) and the Toxiproxy container that callers
// dial for every edge.
type containerRun struct {
	rt   containerRuntime
	toxi runtime.Process
	// direct is set when the harness routes to the containers' own addresses on the
	// run's network (an engine on this host): probes then see exactly what a peer sees.
	// Otherwise they go through the ports published on 127.0.0.1, whose forwarder turns a
	// refused connection into an accepted-then-reset one.
	direct bool
}

// DockerImages builds (or finds, when the binaries have not changed) the images a Docker
// run needs, so that a suite builds them once for all its runs: Toxiproxy's, and
// faultline's, which the reference system runs and every run's reaper is. Without
// reference (a user's topology) faultline's image is only the reaper's: when it cannot be
// built (no source tree) Image stays empty and the run goes without a reaper.
func DockerImages(ctx context.Context, d Docker, reference bool) (Docker, error) {
	opts := []docker.BuildOption{docker.WithModuleRoot(d.ModuleRoot), docker.WithBuildLog(d.BuildLog)}
	var err error
	if d.Image == "" {
		if d.Image, err = docker.BuildImage(ctx, opts...); err != nil && reference {
			return d, fmt.Errorf("build faultline image: %w", err)
		}
	}
	if d.Toxiproxy == "" {
		if d.Toxiproxy, err = docker.BuildToxiproxyImage(ctx, opts...); err != nil {
			return d, fmt.Errorf("build toxiproxy image: %w", err)
		}
	}
	return d, nil
}

// containerized reports whether runtime rt runs every component in a container.
func containerized(rt string) bool { return rt == "docker" || rt == "kubernetes" }

// startContainers creates the run's container runtime rt and its Toxiproxy container. The
// returned close removes everything the runtime made; it must be called even when
// startContainers fails (it then removes what was made).
func (r *runner) startContainers(ctx context.Context, rt string, proxies int) (*containerRun, func(context.Context), error) {
	d := &containerRun{}
	closeFn := func(ctx context.Context) {
		if d.rt != nil {
			if err := d.rt.Close(ctx); err != nil {
				r.o.log.Warn("remove "+rt+" resources", "err", err)
			}
		}
	}
	var toxiImage string
	var err error
	switch rt {
	case "kubernetes":
		toxiImage, err = r.startKubernetes(ctx, d)
	default:
		toxiImage, err = r.startDocker(ctx, d)
	}
	if err != nil {
		return nil, closeFn, err
	}
	ports := []int{docker.ToxiproxyAPIPort}
	for i := range proxies + controlPorts {
		ports = append(ports, proxyPortBase+i)
	}
	began := time.Now()
	toxi, err := d.rt.Start(ctx, runtime.Spec{
		Name:    toxiproxyName,
		Command: docker.ToxiproxyPath,
		Args:    []string{"-host", "0.0.0.0", "-port", strconv.Itoa(docker.ToxiproxyAPIPort)},
		// Toxiproxy logs every connection at info level.
		Env:     []string{"LOG_LEVEL=warn"},
		LogFile: filepath.Join(r.dir, "toxiproxy.log"),
		Labels:  map[string]string{"faultline.kind": toxiproxyName},
		Container: &runtime.ContainerSpec{
			Image: toxiImage, Ports: ports,
			Ready: &runtime.HTTPReady{Port: docker.ToxiproxyAPIPort, Path: "/version"},
		},
	})
	if err != nil {
		return nil, closeFn, fmt.Errorf("start toxiproxy container: %w", err)
	}
	d.toxi = toxi
	d.direct = reachable(ctx, toxi, docker.ToxiproxyAPIPort)
	r.o.log.Info("toxiproxy container ready", "proxy ports", proxies, "took", time.Since(began), "direct", d.direct)
	return d, closeFn, nil
}

// startDocker creates the run's Docker runtime in d and returns Toxiproxy's image.
func (r *runner) startDocker(ctx context.Context, d *containerRun) (string, error) {
	fi, ok := r.sys.(sut.FaultlineImage)
	imgs, err := DockerImages(ctx, r.o.docker, ok && fi.RunsFaultlineImage())
	if err != nil {
		return "", err
	}
	runID := r.journal.Record().RunID
	r.journal.SetContainerCleaner(CleanDocker)
	opts := []docker.Option{docker.WithRunID(runID), docker.WithImage(imgs.Image), docker.WithLogger(r.o.log),
		docker.WithStartTimeout(r.o.readyTimeout)}
	if imgs.Image != "" {
		opts = append(opts, docker.WithReaper(imgs.Image, 0))
	} else {
		r.o.log.Warn("no reaper for this run: the faultline image could not be built (run from the source tree, or give its image); a killed run waits for the next faultline command")
	}
	rt, err := docker.New(ctx, opts...)
	if err != nil {
		return "", fmt.Errorf("start docker runtime: %w", err)
	}
	d.rt = rt
	if err := r.journal.Update(func(rec *undo.Record) { rec.Networks = append(rec.Networks, rt.Network()) }); err != nil {
		return "", err
	}
	return imgs.Toxiproxy, nil
}

// remote is the links' view of the Toxiproxy container.
func (d *containerRun) remote(proxies int) (faults.Remote, error) {
	api, err := d.dial(net.JoinHostPort(toxiproxyName, strconv.Itoa(docker.ToxiproxyAPIPort)))
	if err != nil {
		return faults.Remote{}, fmt.Errorf("find toxiproxy api: %w", err)
	}
	ports, control := make([]int, proxies), make([]int, controlPorts)
	for i := range ports {
		ports[i] = proxyPortBase + i
	}
	for i := range control {
		control[i] = proxyPortBase + proxies + i
	}
	return faults.Remote{API: "http://" + api, Host: toxiproxyName, Ports: ports, ControlPorts: control, Dial: d.dial}, nil
}

// dial maps an address on the run's network ("api-1:9000", "toxiproxy:20003") to the
// host address its container publishes it on. It asks the engine each time: a container
// started after the call before, or restarted, is found all the same.
func (d *containerRun) dial(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", addr, err)
	}
	for _, p := range d.rt.Processes() {
		if p.Name() != host {
			continue
		}
		if na, ok := p.(networkAddresser); ok && d.direct {
			if a, err := na.NetworkAddr(n); err == nil {
				return a, nil
			}
			// Not on the network (disconnected, stopped): its published port says so.
		}
		hp, ok := p.(runtime.HostPorter)
		if !ok {
			return "", fmt.Errorf("resolve %s: the runtime does not publish ports", addr)
		}
		return hp.HostPort(n)
	}
	return "", fmt.Errorf("resolve %s: no container %q on the run's network (yet)", addr, host)
}

// CleanDocker removes every container, network and volume labelled with runID and names
// what it removed: the container cleaner of a Docker run's undo record.
func CleanDocker(ctx context.Context, runID string) ([]string, error) {
	if runID == "" {
		return nil, errors.New("clean docker run: empty run id would remove every run's resources")
	}
	rep, err := docker.Clean(ctx, runID)
	var out []string
	out = append(out, rep.Containers...)
	out = append(out, rep.Networks...)
	out = append(out, rep.Volumes...)
	return out, err
}

// networkAddresser is a container that can name its address on the run's network.
type networkAddresser interface {
	NetworkAddr(containerPort int) (string, error)
}

var _ networkAddresser = (*docker.Process)(nil)

// reachable reports whether the harness can open a connection to p's own address on the
// run's network and get an HTTP answer there.
func reachable(ctx context.Context, p runtime.Process, port int) bool {
	na, ok := p.(networkAddresser)
	if !ok {
		return false
	}
	addr, err := na.NetworkAddr(port)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/version", nil)
	if err != nil {
		return false
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
