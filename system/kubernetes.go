package system

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/faultline-dev/faultline/runtime/kubernetes"
)

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
func StartKubernetes(ctx context.Context, s Spec, k Kubernetes, opts ...Option) (*System, error) {
	began := time.Now()
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if k.Image == "" {
		fl, _, err := kubernetes.RegistryImages(ctx, "", cmp.Or(k.Registry, kubernetes.LocalImageHost))
		if err != nil {
			return nil, fmt.Errorf("start system: %w", err)
		}
		k.Image = fl
	}
	rt, err := kubernetes.New(ctx, kubernetes.WithRunID(k.RunID), kubernetes.WithKubeconfig(k.Kubeconfig),
		kubernetes.WithContext(k.Context), kubernetes.WithImage(k.Image), kubernetes.WithLogger(o.log),
		kubernetes.WithVolumeRoot(k.VolumeRoot), kubernetes.WithLeaseTTL(k.LeaseTTL))
	if err != nil {
		return nil, fmt.Errorf("start system: %w", err)
	}
	closeRT := func(err error) error {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultStopTimeout)
		defer cancel()
		return errors.Join(err, rt.Close(cctx))
	}
	phases := []Phase{{Name: "namespace", Took: time.Since(began)}}
	sys, err := Start(ctx, rt, s, append(slices.Clone(opts), func(o *options) { o.began, o.phases = began, phases })...)
	if err != nil {
		return nil, closeRT(err)
	}
	sys.owned = rt
	return sys, nil
}
