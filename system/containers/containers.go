// Package containers starts the reference system on a container runtime made for it alone:
// Docker (StartDocker) or a Kubernetes cluster (StartKubernetes). It is apart from package
// system so that a user of the system on a given runtime (the reference adapter, its
// tests, the fuzzers) does not link the Docker and Kubernetes clients.
package containers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/system"
)

// Docker configures StartDocker.
type Docker struct {
	// Image holds the faultline binary at system.ImageBinaryPath. Empty builds it with
	// docker.BuildImage from the module (tagged by the binary's hash, so an unchanged
	// binary is only looked up, never rebuilt).
	Image string
	// ModuleRoot is the module BuildImage builds from; empty asks the go command from the
	// working directory.
	ModuleRoot string
	// RunID labels the network, every container and volume; empty is random.
	RunID string
	// BuildLog receives the go build and image build output; nil discards it.
	BuildLog io.Writer
}

// StartDocker starts the system as containers on a new runtime/docker runtime of its own:
// one private network, every component listening on fixed ports inside its container and
// dialling its peers by name, admin and main ports published on 127.0.0.1. Stop removes
// every container, the network and (unless system.WithKeepData) the data volumes.
func StartDocker(ctx context.Context, s system.Spec, d Docker, opts ...system.Option) (*system.System, error) {
	began := time.Now()
	log := system.LoggerOf(opts)
	var phases []system.Phase
	image := d.Image
	if image == "" {
		tag, err := docker.BuildImage(ctx, docker.WithModuleRoot(d.ModuleRoot), docker.WithBuildLog(d.BuildLog))
		if err != nil {
			return nil, fmt.Errorf("start system: %w", err)
		}
		image = tag
		phases = append(phases, system.Phase{Name: "image", Took: time.Since(began)})
	}
	// The reaper removes the system if whoever started it is killed before Stop; it starts
	// alongside the registry and the broker, whose starts return once it watches.
	rtBegan := time.Now()
	rt, err := docker.New(ctx, docker.WithRunID(d.RunID), docker.WithImage(image), docker.WithLogger(log), docker.WithReaper(image, 0))
	if err != nil {
		return nil, fmt.Errorf("start system: %w", err)
	}
	phases = append(phases, system.Phase{Name: "network", Took: time.Since(rtBegan)})
	return startOwned(ctx, rt, s, began, phases, opts)
}

// Kubernetes configures StartKubernetes.
type Kubernetes struct {
	// Kubeconfig is the kubeconfig file; empty follows KUBECONFIG, else ~/.kube/config.
	// Context is its context; empty is the current one.
	Kubeconfig, Context string
	// Image holds the faultline binary at /faultline. Empty names the image of this
	// source tree's binary in Registry, or, when that is empty too, as imported into the
	// nodes (kubernetes.LocalImages), which must be there.
	Image string
	// Registry (HOST[:PORT][/PATH]) is where faultline images push --registry pushed this
	// source tree's images (kubernetes.RegistryImages names them the same way).
	Registry string
	// RunID labels the namespace and everything in it; empty is random.
	RunID string
	// VolumeRoot is the node directory of the run's volumes (kubernetes.WithVolumeRoot).
	VolumeRoot string
	// LeaseTTL is how long the run's Lease lives without renewal before its reaper
	// deletes the namespace (lease.DefaultTTL when 0).
	LeaseTTL time.Duration
}

// StartKubernetes starts the system in a namespace of its own on a cluster: every
// component a one-pod Deployment with a Service named after it, dialling its peers by
// Service name, its admin and main ports forwarded through the API server to the same
// 127.0.0.1 ports a process would use. Stop deletes the namespace with everything in it.
func StartKubernetes(ctx context.Context, s system.Spec, k Kubernetes, opts ...system.Option) (*system.System, error) {
	began := time.Now()
	if k.Image == "" {
		fl, _, err := kubernetes.RegistryImages(ctx, "", cmp.Or(k.Registry, kubernetes.LocalImageHost))
		if err != nil {
			return nil, fmt.Errorf("start system: %w", err)
		}
		k.Image = fl
	}
	rt, err := kubernetes.New(ctx, kubernetes.WithRunID(k.RunID), kubernetes.WithKubeconfig(k.Kubeconfig),
		kubernetes.WithContext(k.Context), kubernetes.WithImage(k.Image), kubernetes.WithLogger(system.LoggerOf(opts)),
		kubernetes.WithVolumeRoot(k.VolumeRoot), kubernetes.WithLeaseTTL(k.LeaseTTL))
	if err != nil {
		return nil, fmt.Errorf("start system: %w", err)
	}
	return startOwned(ctx, rt, s, began, []system.Phase{{Name: "namespace", Took: time.Since(began)}}, opts)
}

// startOwned starts the system on rt, made for it: the system closes rt when it ends, and
// a failed start closes it here.
func startOwned(ctx context.Context, rt runtime.Runtime, s system.Spec, began time.Time, phases []system.Phase, opts []system.Option) (*system.System, error) {
	opts = append(slices.Clone(opts), system.WithStartedAt(began, phases...), system.WithOwnedRuntime())
	sys, err := system.Start(ctx, rt, s, opts...)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), system.DefaultStopTimeout)
		defer cancel()
		return nil, errors.Join(err, rt.Close(cctx))
	}
	return sys, nil
}
