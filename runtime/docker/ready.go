package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// httpReady waits until GET http://127.0.0.1:<published port><path> answers 2xx. It
// replaces wait.ForHTTP, which dials the daemon's "host" — the bridge gateway when the
// harness itself runs in a container — where ports published on 127.0.0.1 only are not
// reachable; and wait.ForListeningPort, which needs a shell in the image.
type httpReady struct {
	port     int
	path     string
	interval time.Duration
}

var _ wait.Strategy = httpReady{}

// WaitUntilReady polls until the probe passes, the container stops (no point waiting for
// a dead process) or ctx ends.
func (h httpReady) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	port := strconv.Itoa(h.port) + "/tcp"
	var last error
	for {
		state, err := target.State(ctx)
		switch {
		case err != nil:
			last = fmt.Errorf("inspect container: %w", err)
		case !state.Running:
			return fmt.Errorf("wait for %s: container exited with code %d", port, state.ExitCode)
		default:
			last = h.probe(ctx, c, target, port)
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for GET %s on %s: %w (last: %w)", h.path, port, ctx.Err(), last)
		case <-time.After(h.interval):
		}
	}
}

func (h httpReady) probe(ctx context.Context, c *http.Client, target wait.StrategyTarget, port string) error {
	mapped, err := target.MappedPort(ctx, port)
	if err != nil {
		return fmt.Errorf("map port: %w", err)
	}
	if mapped == (network.Port{}) {
		return fmt.Errorf("map port: %s not published yet", port)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+mapped.Port()+h.path, nil)
	if err != nil {
		return fmt.Errorf("build probe: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe: status %d", resp.StatusCode)
	}
	return nil
}
