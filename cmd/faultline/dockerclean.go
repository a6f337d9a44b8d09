package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Labels runtime/docker puts on what it creates (runtime/docker.LabelManaged and
// LabelRun). They are repeated here because importing runtime/docker pulls in
// testcontainers-go, whose package initialisation costs every faultline process (each
// `serve` child included) 20-35 ms; healing needs three Engine API calls, not a client.
const (
	dockerLabelManaged = "dev.faultline.managed"
	dockerLabelRun     = "dev.faultline.run"
)

// dockerClean removes every container, network and volume labelled as faultline's (of
// one run when runID is not empty) through the Docker Engine API, and lists what it
// removed. Containers go first: a network or volume in use cannot be removed.
func dockerClean(ctx context.Context, runID string) ([]string, error) {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		sock = strings.TrimPrefix(h, "unix://")
	}
	cli := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	labels := []string{dockerLabelManaged + "=true"}
	if runID != "" {
		labels = append(labels, dockerLabelRun+"="+runID)
	}
	fb, _ := json.Marshal(map[string][]string{"label": labels})
	filters := url.QueryEscape(string(fb))
	call := func(method, path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, nil)
		if err != nil {
			return err
		}
		resp, err := cli.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		switch {
		case resp.StatusCode == http.StatusNotFound && method == http.MethodDelete:
			return nil
		case resp.StatusCode >= 300:
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
		case out != nil:
			return json.Unmarshal(body, out)
		}
		return nil
	}
	var removed []string
	var errs []error
	var ctrs []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
	}
	if err := call(http.MethodGet, "/containers/json?all=1&filters="+filters, &ctrs); err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range ctrs {
		name := c.ID[:min(12, len(c.ID))]
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		if err := call(http.MethodDelete, "/containers/"+c.ID+"?force=1&v=1", nil); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
			continue
		}
		removed = append(removed, "container "+name)
	}
	var nets []struct{ ID, Name string }
	if err := call(http.MethodGet, "/networks?filters="+filters, &nets); err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	for _, n := range nets {
		if err := call(http.MethodDelete, "/networks/"+n.ID, nil); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed = append(removed, "network "+n.Name)
	}
	var vols struct{ Volumes []struct{ Name string } }
	if err := call(http.MethodGet, "/volumes?filters="+filters, &vols); err != nil {
		errs = append(errs, fmt.Errorf("list volumes: %w", err))
	}
	for _, v := range vols.Volumes {
		if err := call(http.MethodDelete, "/volumes/"+v.Name+"?force=1", nil); err != nil {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		removed = append(removed, "volume "+v.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("clean docker resources: %w", err)
	}
	return removed, nil
}
