package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
)

func newReapCmd() *cobra.Command {
	var (
		runID, listen string
		grace         time.Duration
		kube          kubeReapFlags
	)
	cmd := &cobra.Command{
		Use:    "reap --run-id ID | reap --kubernetes --namespace NS",
		Short:  "Remove a run once its harness is gone (the run's reaper container or pod)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kube.on {
				return reapKubernetes(cmd, kube)
			}
			if runID == "" {
				return usagef("reap: --run-id is required")
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("reap: %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			rep, err := docker.Reap(ctx, ln, runID, grace, log)
			var removed []string
			for _, l := range [][]string{rep.Containers, rep.Networks, rep.Volumes} {
				removed = append(removed, l...)
			}
			if len(removed) > 0 {
				log.Info("removed", "run", runID, "what", strings.Join(removed, ", "))
			}
			if ctx.Err() != nil {
				return nil // stopped by a harness that cleans up itself
			}
			return err
		},
	}
	cmd.Flags().StringVar(&runID, "run-id", "", "the run whose labelled containers, network and volumes to remove")
	cmd.Flags().StringVar(&listen, "listen", "0.0.0.0:7474", "where the harness connects (inside the reaper's container)")
	cmd.Flags().DurationVar(&grace, "grace", docker.DefaultReaperGrace, "how long no harness may be connected before the run is removed")
	cmd.Flags().BoolVar(&kube.on, "kubernetes", false, "reap a Kubernetes run from inside its namespace: delete the namespace once its Lease is not renewed within its TTL")
	cmd.Flags().StringVar(&kube.namespace, "namespace", "", "with --kubernetes: the run's namespace")
	cmd.Flags().StringVar(&kube.lease, "lease", lease.LeaseName, "with --kubernetes: the Lease the harness renews")
	cmd.Flags().DurationVar(&kube.ttl, "ttl", lease.DefaultTTL, "with --kubernetes: the TTL until the Lease has been read (it carries its own)")
	cmd.Flags().DurationVar(&kube.poll, "poll", lease.DefaultReaperPoll, "with --kubernetes: how often to read the Lease")
	cmd.Flags().StringVar(&kube.server, "server", "", "with --kubernetes: the API server's URL instead of the in-cluster address (the service account's token and CA are kept)")
	return cmd
}

type kubeReapFlags struct {
	on               bool
	namespace, lease string
	server           string
	ttl, poll        time.Duration
}

// reapKubernetes runs the reaper of a Kubernetes run in its pod, with the pod's service
// account.
func reapKubernetes(cmd *cobra.Command, f kubeReapFlags) error {
	if f.namespace == "" {
		return usagef("reap: --kubernetes needs --namespace")
	}
	var cfg *rest.Config
	if f.server != "" {
		// The pod's service account credentials, another address: the in-cluster one
		// (the kubernetes Service) may not exist or lead nowhere.
		const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"
		cfg = &rest.Config{Host: f.server, BearerTokenFile: sa + "token", TLSClientConfig: rest.TLSClientConfig{CAFile: sa + "ca.crt"}}
	} else {
		var err error
		if cfg, err = rest.InClusterConfig(); err != nil {
			return fmt.Errorf("reap: %w", err)
		}
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	log.Info("watching lease", "namespace", f.namespace, "lease", f.lease)
	err = lease.Reap(ctx, client, lease.ReapConfig{Namespace: f.namespace, Lease: f.lease, TTL: f.ttl, Poll: f.poll, Log: log})
	if ctx.Err() != nil {
		return nil // its Deployment deleted by a harness that cleans up itself
	}
	if err != nil {
		return err
	}
	log.Info("namespace deleted", "namespace", f.namespace)
	// Stay until the namespace takes this pod: a Deployment would start another reaper.
	<-ctx.Done()
	return nil
}
