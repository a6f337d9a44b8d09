package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// Report lists what Clean removed, by Docker name (images by tag or id).
type Report struct {
	Containers []string
	Networks   []string
	Volumes    []string
	Images     []string
}

// Empty reports whether nothing was removed.
func (r Report) Empty() bool {
	return len(r.Containers)+len(r.Networks)+len(r.Volumes)+len(r.Images) == 0
}

// CleanOption configures Clean.
type CleanOption func(*cleanConfig)

type cleanConfig struct {
	images bool
	keep   string // a container id prefix to leave alone (the reaper's own)
}

// WithImages also removes the images BuildImage and BuildToxiproxyImage made; they are
// shared by every run, so only an explicit request deletes them.
func WithImages() CleanOption { return func(c *cleanConfig) { c.images = true } }

// Clean removes every container, network and volume labelled LabelManaged, restricted to
// one run when runID is not empty: what `faultline clean` calls after a harness was killed
// before its Close ran. It removes as much as it can and reports every failure.
func Clean(ctx context.Context, runID string, opts ...CleanOption) (Report, error) {
	var cfg cleanConfig
	for _, o := range opts {
		o(&cfg)
	}
	p, err := newProvider(nil)
	if err != nil {
		return Report{}, err
	}
	defer func() { _ = p.Close() }()
	cli := p.Client()
	var rep Report
	var errs []error
	filter := labelFilter(runID)

	// Containers first: a network or volume in use cannot be removed.
	ctrs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		errs = append(errs, fmt.Errorf("list containers: %w", err))
	}
	for _, c := range ctrs.Items {
		if cfg.keep != "" && strings.HasPrefix(c.ID, cfg.keep) {
			continue
		}
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if isRemovalInProgress(err) {
			// Another remover (a Process.Stop racing with Close) got there first; the
			// network below cannot go until the container has, so wait for it.
			err = awaitContainerGone(ctx, cli, c.ID)
		}
		switch {
		case err == nil:
			rep.Containers = append(rep.Containers, name)
		case !isNotFound(err):
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
		}
	}

	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: filter})
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	for _, n := range nets.Items {
		_, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		switch {
		case err == nil:
			rep.Networks = append(rep.Networks, n.Name)
		case !isNotFound(err):
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}

	vols, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: filter})
	if err != nil {
		errs = append(errs, fmt.Errorf("list volumes: %w", err))
	}
	for _, v := range vols.Items {
		_, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
		switch {
		case err == nil:
			rep.Volumes = append(rep.Volumes, v.Name)
		case !isNotFound(err):
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}

	if cfg.images {
		imgs, err := cli.ImageList(ctx, client.ImageListOptions{Filters: labelFilter("")})
		if err != nil {
			errs = append(errs, fmt.Errorf("list images: %w", err))
		}
		for _, img := range imgs.Items {
			name := img.ID
			if len(img.RepoTags) > 0 {
				name = img.RepoTags[0]
			}
			_, err := cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			switch {
			case err == nil:
				rep.Images = append(rep.Images, name)
			case !isNotFound(err):
				errs = append(errs, fmt.Errorf("remove image %s: %w", name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("clean docker resources: %w", err)
	}
	return rep, nil
}

// isRemovalInProgress reports the engine's 409 for a container another call is already
// removing.
func isRemovalInProgress(err error) bool {
	return err != nil && strings.Contains(err.Error(), "already in progress")
}

// awaitContainerGone polls until the engine no longer knows the container (bounded: a
// removal that never finishes is reported, not waited on forever).
func awaitContainerGone(ctx context.Context, cli client.APIClient, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if isNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("await container removal: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Leftovers lists, without removing anything, the containers, networks, volumes and
// images labelled with runID (every labelled one when runID is empty): what a test or an
// operator checks after a run to prove nothing of it was left behind.
func Leftovers(ctx context.Context, runID string) (Report, error) {
	p, err := newProvider(nil)
	if err != nil {
		return Report{}, err
	}
	defer func() { _ = p.Close() }()
	cli := p.Client()
	filter := labelFilter(runID)
	var rep Report
	var errs []error
	ctrs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	errs = append(errs, err)
	for _, c := range ctrs.Items {
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		rep.Containers = append(rep.Containers, name)
	}
	nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: filter})
	errs = append(errs, err)
	for _, n := range nets.Items {
		rep.Networks = append(rep.Networks, n.Name)
	}
	vols, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: filter})
	errs = append(errs, err)
	for _, v := range vols.Items {
		rep.Volumes = append(rep.Volumes, v.Name)
	}
	imgs, err := cli.ImageList(ctx, client.ImageListOptions{Filters: filter})
	errs = append(errs, err)
	for _, img := range imgs.Items {
		name := img.ID
		if len(img.RepoTags) > 0 {
			name = img.RepoTags[0]
		}
		rep.Images = append(rep.Images, name)
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("list docker leftovers: %w", err)
	}
	return rep, nil
}
