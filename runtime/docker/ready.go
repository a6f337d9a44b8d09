package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
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
// process) or ctx ends.
func (h httpReady) wait(ctx context.Context, p *Process) error {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var last error
	for {
		if !p.Running() {
			return fmt.Errorf("wait for %d/tcp: container exited: %v", h.port, p.ExitErr())
		}
		last = h.probe(ctx, c, p)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for GET %s on %d/tcp: %w (last: %w)", h.path, h.port, ctx.Err(), last)
		case <-p.Wait():
		case <-time.After(h.interval):
		}
	}
}

func (h httpReady) probe(ctx context.Context, c *http.Client, p *Process) error {
	addr, err := p.HostPort(h.port)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.path, nil)
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
