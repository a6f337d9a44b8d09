package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// The reaper is a run's dead-man on the engine, in the manner of testcontainers' Ryuk
// (whose image cannot be pulled here): a container of the faultline image holding the
// engine's socket, outside the run's network so that it can remove that network too. The
// harness keeps a connection to it open for the whole run; when none has been open for
// the grace period — the harness was SIGKILLed, or its machine lost it — the reaper
// removes every container, network and volume labelled with the run and exits, and its
// own container goes with it (AutoRemove). A harness that ends normally removes
// everything itself, the reaper first.
const (
	// ReaperPort is the port the reaper listens on inside its container.
	ReaperPort = 7474
	// DefaultReaperGrace is how long the reaper waits, with no harness connected, before
	// it removes the run: long enough for a connection blip, short enough that a killed
	// run's faults do not outlive it by much.
	DefaultReaperGrace = 10 * time.Second
	// reaperFirstWait is how long a reaper that never saw its harness waits for it.
	reaperFirstWait = time.Minute
	// reaperName is the reaper's LabelName; it is not one of the runtime's processes.
	reaperName = "reaper"
)

// WithReaper starts a reaper from image (one BuildImage made) alongside the runtime's
// first containers, so that a harness killed without a chance to Close leaves nothing
// running beyond grace (0 means DefaultReaperGrace); every Start returns only once the
// reaper watches, and fails when it could not be started. It needs the engine's Unix socket; with an
// engine reached over TCP the runtime runs without one and says so in its log.
func WithReaper(image string, grace time.Duration) Option {
	return func(r *Runtime) {
		r.reaperImage = image
		r.reaperGrace = cmpOr(grace, DefaultReaperGrace)
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// LocalEngine reports whether the engine is reached through a Unix socket, and so (the
// usual laptop and CI set-up) sees this host's files: a runtime.Mount's HostPath names a
// file here.
func LocalEngine() bool { return engineSocket() != "" }

// engineSocket is the host path of the engine's Unix socket, or "" when the engine is
// reached some other way.
func engineSocket() string {
	h := os.Getenv("DOCKER_HOST")
	switch {
	case h == "":
		return "/var/run/docker.sock"
	case strings.HasPrefix(h, "unix://"):
		return strings.TrimPrefix(h, "unix://")
	default:
		return ""
	}
}

// startReaper starts the run's reaper and connects to it. Its container is labelled with
// the run, so Close's sweep removes it with the rest. It calls the engine directly: the
// reaper is on every run's start path.
func (r *Runtime) startReaper(ctx context.Context) error {
	sock := engineSocket()
	if sock == "" {
		r.log.Warn("no reaper: the engine is not reached through a Unix socket; a killed run is removed by the next faultline command", "DOCKER_HOST", os.Getenv("DOCKER_HOST"))
		return nil
	}
	labels := managedLabels(r.runID)
	labels[LabelName] = reaperName
	port := network.MustParsePort(strconv.Itoa(ReaperPort) + "/tcp")
	res, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: r.ContainerName(reaperName),
		Config: &container.Config{
			Image:        r.reaperImage,
			Entrypoint:   []string{BinaryPath},
			Cmd:          []string{"reap", "--run-id", r.runID, "--listen", "0.0.0.0:" + strconv.Itoa(ReaperPort), "--grace", r.reaperGrace.String()},
			Labels:       labels,
			ExposedPorts: network.PortSet{port: struct{}{}},
		},
		HostConfig: &container.HostConfig{
			AutoRemove:   true,
			PortBindings: network.PortMap{port: []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}},
			Binds:        []string{sock + ":/var/run/docker.sock"},
		},
	})
	if err != nil {
		return fmt.Errorf("start reaper: %w", err)
	}
	began := time.Now()
	if _, err := r.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start reaper: %w", err)
	}
	r.log.Debug("container started", "name", reaperName, "start", time.Since(began))
	defer func() { r.log.Debug("reaper watching", "after", time.Since(began)) }()
	info, err := r.cli.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("start reaper: %w", err)
	}
	var addr string
	if ns := info.Container.NetworkSettings; ns != nil {
		for _, b := range ns.Ports[port] {
			if b.HostPort != "" && b.HostPort != "0" {
				addr = net.JoinHostPort("127.0.0.1", b.HostPort)
			}
		}
	}
	if addr == "" {
		return fmt.Errorf("start reaper: port %s not published", port)
	}
	deadline := time.Now().Add(r.startTimeout)
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			// The forwarder accepts before the reaper does; a byte back says it is there.
			if err = awaitHello(conn); err == nil {
				r.reaper = conn
				return nil
			}
			_ = conn.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("connect reaper at %s: %w", addr, errors.Join(err, ctx.Err()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reaperHello is the byte a reaper greets each connection with.
const reaperHello = 'R'

func awaitHello(conn net.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(conn, b); err != nil {
		return fmt.Errorf("read reaper greeting: %w", err)
	}
	if b[0] != reaperHello {
		return fmt.Errorf("read reaper greeting: got %q", b[0])
	}
	return conn.SetReadDeadline(time.Time{})
}

// Reap is the reaper itself (`faultline reap`, inside its container): it serves ln until
// no connection has been open for grace (or none ever came within a minute), then removes
// everything labelled with runID except its own container, and returns what it removed.
// A cancelled ctx ends it without removing anything: that is its container being stopped
// by a harness that cleans up itself.
func Reap(ctx context.Context, ln net.Listener, runID string, grace time.Duration, log *slog.Logger) (Report, error) {
	if runID == "" {
		return Report{}, errors.New("reap: empty run id would remove every run")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	deltas := make(chan int)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				select {
				case deltas <- 1:
				case <-ctx.Done():
					return
				}
				_, _ = c.Write([]byte{reaperHello})
				_, _ = io.Copy(io.Discard, c) // until the harness goes
				select {
				case deltas <- -1:
				case <-ctx.Done():
				}
			}()
		}
	}()
	timer := time.NewTimer(reaperFirstWait)
	defer timer.Stop()
	active := 0
	for waiting := true; waiting; {
		select {
		case <-ctx.Done():
			return Report{}, ctx.Err()
		case d := <-deltas:
			active += d
			timer.Stop()
			if active == 0 {
				timer.Reset(grace)
			}
		case <-timer.C:
			waiting = active > 0
		}
	}
	_ = ln.Close()
	self, _ := os.Hostname() // the engine names a container's host after its id
	log.Info("harness gone: removing the run", "run", runID, "grace", grace)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	return Clean(cctx, runID, keepContainer(self))
}

// keepContainer leaves the container whose id starts with prefix alone: the reaper must
// not remove itself before it has removed the rest (AutoRemove takes it when it exits).
func keepContainer(prefix string) CleanOption {
	return func(c *cleanConfig) { c.keep = prefix }
}
