package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/faultline-dev/faultline/runtime"
)

// Process is one container; Restart starts the same container again, so its writable
// layer, volumes and network identity survive, as a process's data directory does.
type Process struct {
	rt   *Runtime
	spec runtime.Spec

	// ctl serialises Stop/Restart/Disconnect/Reconnect so that two faults on one
	// container cannot interleave.
	ctl sync.Mutex

	mu           sync.Mutex
	id           string
	pid          int
	starting     bool // guarded by rt.mu: the name is reserved, the container not yet up
	prepared     bool // guarded by rt.mu: created by Prepare, not started yet
	done         chan struct{}
	exitErr      error
	disconnected bool
}

// Name is the Spec's name, which is also the container's alias on the run's network.
func (p *Process) Name() string { return p.spec.Name }

// Spec returns a copy of the spec the container was started from.
func (p *Process) Spec() runtime.Spec { return p.spec.ContainerClone() }

// ContainerID is the engine's id of the container, for tools that talk to Docker directly.
func (p *Process) ContainerID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.id
}

// PID is the host pid of the container's main process in the current run, 0 when unknown.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Wait is closed when the current run of the container exits.
func (p *Process) Wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr is why the last run ended: nil after exit code 0.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Running reports whether the current run has not exited; a paused container is running.
func (p *Process) Running() bool {
	select {
	case <-p.Wait():
		return false
	default:
		return true
	}
}

// create creates and starts the container for the first time.
func (p *Process) create(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.rt.startTimeout)
	defer cancel()
	if err := p.createContainer(ctx); err != nil {
		return err
	}
	if err := p.start(ctx); err != nil {
		return errors.Join(fmt.Errorf("start container %s: %w", p.spec.Name, err), p.remove(context.WithoutCancel(ctx)))
	}
	return nil
}

// createContainer creates the container and writes its files, without starting it.
func (p *Process) createContainer(ctx context.Context) error {
	r := p.rt
	began := time.Now()
	res, err := r.cli.ContainerCreate(ctx, r.createOptions(p.spec))
	if err != nil {
		return fmt.Errorf("create container %s: %w", p.spec.Name, err)
	}
	created := time.Now()
	defer func() {
		r.log.Debug("container created", "name", p.spec.Name, "create", created.Sub(began), "files", time.Since(created))
	}()
	p.mu.Lock()
	p.id = res.ID
	p.mu.Unlock()
	if files := p.spec.Container.Files; len(files) > 0 {
		archive, err := filesArchive(files)
		if err == nil {
			_, err = r.cli.CopyToContainer(ctx, res.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: bytes.NewReader(archive)})
		}
		if err != nil {
			return errors.Join(fmt.Errorf("copy files into container %s: %w", p.spec.Name, err), p.remove(context.WithoutCancel(ctx)))
		}
	}
	return nil
}

// start starts the created (or stopped) container, follows it and, with Container.Ready,
// waits for its probe.
func (p *Process) start(ctx context.Context) error {
	since := time.Now()
	if _, err := p.rt.cli.ContainerStart(ctx, p.ContainerID(), client.ContainerStartOptions{}); err != nil {
		return err
	}
	started := time.Now()
	if err := p.watch(ctx, since); err != nil {
		return err
	}
	p.rt.log.Debug("container started", "name", p.spec.Name, "start", started.Sub(since), "watch", time.Since(started))
	if rd := p.spec.Container.Ready; rd != nil {
		return httpReady{port: rd.Port, path: rd.Path, interval: 100 * time.Millisecond}.wait(ctx, p)
	}
	return nil
}

// watch records the pid of the run that just started and follows it until it exits.
func (p *Process) watch(ctx context.Context, since time.Time) error {
	r := p.rt
	id := p.ContainerID()
	// "not-running" answers at once for a container that has already exited, so a run
	// that dies before the wait reaches the engine still closes done.
	res := r.cli.ContainerWait(r.bg, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	info, err := r.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", p.spec.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.done, p.exitErr = done, nil
	if info.Container.State != nil {
		p.pid = info.Container.State.Pid
	}
	p.mu.Unlock()
	go func() {
		var exitErr error
		select {
		case w := <-res.Result:
			exitErr = exitError(w)
		case err := <-res.Error:
			exitErr = fmt.Errorf("wait for container: %w", err)
		}
		p.mu.Lock()
		p.exitErr = exitErr
		p.mu.Unlock()
		close(done)
	}()
	if p.spec.LogFile != "" {
		r.tails.Go(func() { p.follow(id, since) })
	}
	return nil
}

func exitError(w container.WaitResponse) error {
	switch {
	case w.Error != nil && w.Error.Message != "":
		return fmt.Errorf("wait for container: %s", w.Error.Message)
	case w.StatusCode == 0:
		return nil
	case w.StatusCode == 137:
		return errors.New("exit code 137 (killed)")
	default:
		return fmt.Errorf("exit code %d", w.StatusCode)
	}
}

// follow appends the container's output since the current run started to Spec.LogFile;
// it ends when the run exits.
func (p *Process) follow(id string, since time.Time) {
	log := p.rt.log.With("name", p.spec.Name)
	if err := os.MkdirAll(filepath.Dir(p.spec.LogFile), 0o755); err != nil {
		log.Warn("create log directory", "err", err)
		return
	}
	f, err := os.OpenFile(p.spec.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Warn("open log file", "err", err)
		return
	}
	defer f.Close()
	rc, err := p.rt.cli.ContainerLogs(p.rt.bg, id, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: true,
		Since: strconv.FormatInt(since.Unix(), 10) + "." + fmt.Sprintf("%09d", since.Nanosecond()),
	})
	if err != nil {
		log.Warn("follow container logs", "err", err)
		return
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(f, f, rc); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
		log.Debug("follow container logs", "err", err)
	}
}

// Kill sends SIGKILL and returns once the engine reports the container stopped.
func (p *Process) Kill() error {
	done := p.Wait()
	if !p.Running() {
		return fmt.Errorf("kill %s: %w", p.spec.Name, runtime.ErrNotRunning)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := p.rt.cli.ContainerKill(ctx, p.ContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", p.spec.Name, notRunning(err))
	}
	select {
	case <-done:
		return nil
	case <-time.After(reapTimeout):
		return fmt.Errorf("kill %s: still running %s after SIGKILL", p.spec.Name, reapTimeout)
	}
}

// Pause freezes every process in the container (cgroup freezer): sockets stay open,
// nothing answers. Pausing a paused container is not an error.
func (p *Process) Pause() error {
	return p.freeze(true)
}

// Resume thaws a paused container; resuming a running one is not an error.
func (p *Process) Resume() error {
	return p.freeze(false)
}

func (p *Process) freeze(pause bool) error {
	verb := map[bool]string{true: "pause", false: "resume"}[pause]
	if !p.Running() {
		return fmt.Errorf("%s %s: %w", verb, p.spec.Name, runtime.ErrNotRunning)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	paused, err := p.paused(ctx)
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, p.spec.Name, err)
	}
	if paused == pause {
		return nil
	}
	if pause {
		_, err = p.rt.cli.ContainerPause(ctx, p.ContainerID(), client.ContainerPauseOptions{})
	} else {
		_, err = p.rt.cli.ContainerUnpause(ctx, p.ContainerID(), client.ContainerUnpauseOptions{})
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, p.spec.Name, notRunning(err))
	}
	return nil
}

func (p *Process) paused(ctx context.Context) (bool, error) {
	info, err := p.rt.cli.ContainerInspect(ctx, p.ContainerID(), client.ContainerInspectOptions{})
	if err != nil {
		return false, fmt.Errorf("inspect container: %w", notRunning(err))
	}
	if info.Container.State == nil || !info.Container.State.Running {
		return false, runtime.ErrNotRunning
	}
	return info.Container.State.Paused, nil
}

// notRunning maps the engine's "container is not running / gone" answers onto
// runtime.ErrNotRunning so that a fault can tell "already dead" from a failure.
func notRunning(err error) error {
	if cerrdefs.IsConflict(err) || cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%w: %w", runtime.ErrNotRunning, err)
	}
	return err
}

// Stop sends SIGTERM, SIGKILL after the grace period, and waits until the container has
// stopped. A paused container is thawed first so that it can handle SIGTERM.
func (p *Process) Stop(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	return p.stop(ctx)
}

func (p *Process) stop(ctx context.Context) error {
	done := p.Wait()
	if !p.Running() {
		return nil
	}
	if err := p.Resume(); err != nil && !errors.Is(err, runtime.ErrNotRunning) {
		return fmt.Errorf("stop %s: %w", p.spec.Name, err)
	}
	secs := int((p.rt.grace + time.Second - 1) / time.Second)
	if _, err := p.rt.cli.ContainerStop(ctx, p.ContainerID(), client.ContainerStopOptions{Timeout: &secs}); err != nil && !isNotFound(err) {
		return fmt.Errorf("stop %s: %w", p.spec.Name, err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", p.spec.Name, ctx.Err())
	case <-time.After(reapTimeout):
		return fmt.Errorf("stop %s: still running %s after stop", p.spec.Name, reapTimeout)
	}
}

// Restart stops the container if it runs and starts the same container again: its
// writable layer, volumes, aliases and network state (a disconnected container stays
// disconnected) survive; host ports the spec did not pin (HostPorts) may change.
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
	ctx, cancel := context.WithTimeout(ctx, p.rt.startTimeout)
	defer cancel()
	if err := p.start(ctx); err != nil {
		return fmt.Errorf("restart %s: %w", p.spec.Name, err)
	}
	return nil
}

// Disconnect removes the container from the run's network while it keeps running: every
// peer's connection to it fails (and the host's published ports stop answering).
func (p *Process) Disconnect(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	if p.isDisconnected() {
		return nil
	}
	_, err := p.rt.cli.NetworkDisconnect(ctx, p.rt.netID, client.NetworkDisconnectOptions{Container: p.ContainerID(), Force: true})
	if err != nil {
		return fmt.Errorf("disconnect %s: %w", p.spec.Name, err)
	}
	p.setDisconnected(true)
	return nil
}

// Reconnect attaches the container to the run's network again with the same aliases; its
// address on the network may change, its names do not.
func (p *Process) Reconnect(ctx context.Context) error {
	p.ctl.Lock()
	defer p.ctl.Unlock()
	if !p.isDisconnected() {
		return nil
	}
	aliases := append([]string{p.spec.Name}, p.spec.Container.Aliases...)
	_, err := p.rt.cli.NetworkConnect(ctx, p.rt.netID, client.NetworkConnectOptions{
		Container: p.ContainerID(), EndpointConfig: &network.EndpointSettings{Aliases: aliases},
	})
	if err != nil {
		return fmt.Errorf("reconnect %s: %w", p.spec.Name, err)
	}
	p.setDisconnected(false)
	return nil
}

func (p *Process) isDisconnected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.disconnected
}

func (p *Process) setDisconnected(v bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disconnected = v
}

// HostPort returns "127.0.0.1:port", the host address published for containerPort (one
// of Spec.Container.Ports). It asks the engine each time: a restart may move the port.
func (p *Process) HostPort(containerPort int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	info, err := p.rt.cli.ContainerInspect(ctx, p.ContainerID(), client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect container %s: %w", p.spec.Name, err)
	}
	if info.Container.NetworkSettings != nil {
		for port, bindings := range info.Container.NetworkSettings.Ports {
			if int(port.Num()) != containerPort || port.Proto() != network.TCP {
				continue
			}
			for _, b := range bindings {
				if b.HostPort != "" && b.HostPort != "0" {
					return "127.0.0.1:" + b.HostPort, nil
				}
			}
		}
	}
	return "", fmt.Errorf("map port %s:%d: not published (is the container running and connected?)", p.spec.Name, containerPort)
}

// State asks the engine what it says of the container now: a check of last resort for a fault's effect where the container
// has no health endpoint to probe (a TCP port is accepted by the forwarder even when the
// container is frozen or off the network).
func (p *Process) State(ctx context.Context) (runtime.State, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	info, err := p.rt.cli.ContainerInspect(ctx, p.ContainerID(), client.ContainerInspectOptions{})
	if err != nil {
		return runtime.State{}, fmt.Errorf("inspect container %s: %w", p.spec.Name, notRunning(err))
	}
	var st runtime.State
	if s := info.Container.State; s != nil {
		st.Running, st.Paused = s.Running, s.Paused
	}
	if ns := info.Container.NetworkSettings; ns != nil {
		st.Attached = ns.Networks[p.rt.network] != nil
	}
	return st, nil
}

// NetworkAddr returns "ip:port", the container's address on the run's network: what its
// peers reach. A harness on the engine's host can usually route to it too, and sees
// exactly what a peer sees (a refused connection is refused, where a published port's
// forwarder accepts and then resets it). It asks the engine each time: a restart may
// change the address.
func (p *Process) NetworkAddr(containerPort int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	info, err := p.rt.cli.ContainerInspect(ctx, p.ContainerID(), client.ContainerInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect container %s: %w", p.spec.Name, err)
	}
	if ns := info.Container.NetworkSettings; ns != nil {
		if ep := ns.Networks[p.rt.network]; ep != nil && ep.IPAddress.IsValid() {
			return net.JoinHostPort(ep.IPAddress.String(), strconv.Itoa(containerPort)), nil
		}
	}
	return "", fmt.Errorf("find %s on network %s: not connected", p.spec.Name, p.rt.network)
}

// remove deletes the container (not its named volumes, which the runtime owns).
func (p *Process) remove(ctx context.Context) error {
	id := p.ContainerID()
	if id == "" {
		return nil
	}
	_, err := p.rt.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !isNotFound(err) && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("remove container %s: %w", p.spec.Name, err)
	}
	return nil
}
