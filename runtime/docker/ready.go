package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/faultline-dev/faultline/runtime/wait"
)

// httpReady waits until GET http://<published host port><path> answers 2xx. It probes the
// port published on 127.0.0.1, which the harness reaches where the engine's "host" (the
// bridge gateway when the harness itself runs in a container) would not be, and needs no
// shell in the image.
type httpReady struct {
	port     int
	path     string
	interval time.Duration
}

// wait polls until the probe passes, the container stops (no point waiting for a dead
// process) or ctx ends. The port is looked up on every attempt: the engine publishes it
// only once the container runs.
func (h httpReady) wait(ctx context.Context, p *Process) error {
	probe := wait.Func(func(ctx context.Context) (bool, error) {
		addr, err := p.HostPort(h.port)
		if err != nil {
			return false, err
		}
		err = wait.CheckHTTP(ctx, nil, "http://"+addr+h.path, 0)
		return err == nil, err
	})
	if err := wait.WhileRunning(p, probe.Every(h.interval)).Wait(ctx); err != nil {
		return fmt.Errorf("wait for GET %s on %d/tcp: %w", h.path, h.port, err)
	}
	return nil
}
