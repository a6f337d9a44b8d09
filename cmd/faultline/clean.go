package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
	"github.com/faultline-dev/faultline/undo"
)

// healTimeout bounds healing leftovers before a command runs: killing processes takes
// milliseconds, removing containers a few seconds.
const healTimeout = 60 * time.Second

// noHealHook lists the commands that must not heal leftovers first: serve is a run's own
// child (healing there would race its parent), reap runs inside a run's reaper container,
// clean heals by itself, and cobra's
// completion helpers must answer at once.
var noHealHook = map[string]bool{"serve": true, "reap": true, "signal": true, "clean": true, "__complete": true, "__completeNoDesc": true, "completion": true, "help": true}

// healLeftovers is the root's pre-run hook: before any command, it heals the runs whose
// harness died without cleaning up (see undo.Journal). With no undo record it costs
// one directory read.
func healLeftovers(cmd *cobra.Command, _ []string) error {
	if noHealHook[cmd.Name()] || os.Getenv(undo.MarkerEnv) != "" {
		return nil
	}
	dir := undo.DefaultDir()
	paths, err := undo.Pending(dir)
	if err != nil || len(paths) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(contextOf(cmd), healTimeout)
	defer cancel()
	reps, err := undo.HealPending(ctx, dir, undo.WithContainerCleaner(cleanContainers), undo.WithNamespaceCleaner(cleanNamespaces))
	printHeal(cmd.ErrOrStderr(), reps, false)
	if err != nil {
		// A command the user asked for still runs; the record stays for `faultline clean`.
		fmt.Fprintf(cmd.ErrOrStderr(), "faultline: could not heal everything a killed run left (run faultline clean): %v\n", err)
	}
	return nil
}

func contextOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// printHeal prints one line per healed run; runs in progress only when verbose.
func printHeal(w io.Writer, reps []undo.HealReport, verbose bool) {
	for _, r := range reps {
		if r.InProgress && !verbose {
			continue
		}
		fmt.Fprintln(w, "faultline:", r.String())
	}
}

// cleanContainers removes a container run's leftovers by its label (every run's when
// runID is empty), with the one Docker cleaner, and names what it removed.
func cleanContainers(ctx context.Context, runID string) ([]string, error) {
	rep, err := docker.Clean(ctx, runID)
	var removed []string
	for _, group := range []struct {
		kind  string
		names []string
	}{{"container", rep.Containers}, {"network", rep.Networks}, {"volume", rep.Volumes}} {
		for _, n := range group.names {
			removed = append(removed, group.kind+" "+n)
		}
	}
	return removed, err
}

// cleanNamespaces deletes a dead Kubernetes run's namespaces (and its reaper's
// cluster-scoped rights), each through the kubeconfig and context the run used.
func cleanNamespaces(ctx context.Context, _ string, nss []undo.Namespace) ([]string, error) {
	var deleted []string
	var errs []error
	for _, ns := range nss {
		client, err := kubeClient(ns.Kubeconfig, ns.Context)
		if err == nil {
			err = lease.DeleteRun(ctx, client, ns.Name)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, "namespace "+ns.Name)
	}
	return deleted, errors.Join(errs...)
}

// kubeClient is a client of the cluster a kubeconfig names: path "" follows the usual
// loading rules ($KUBECONFIG, then ~/.kube/config), context "" is its current one.
func kubeClient(path, context string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return client, nil
}

func newCleanCmd() *cobra.Command {
	var (
		dir, kubeconfig      string
		force, alldk, images bool
		kube                 bool
	)
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Heal what killed runs left behind: processes, stopped processes, containers",
		Long: "Clean reads the undo records runs write before they create anything and heals every\n" +
			"run whose harness is gone: it kills the run's processes (a process is identified by\n" +
			"its pid and start time, so a recycled pid is never touched; a stopped one dies too),\n" +
			"and removes the containers and networks of container runs and the namespaces of\n" +
			"Kubernetes runs. Runs still in progress are left alone unless --force. Every other\n" +
			"faultline command does the same first. --kubernetes also finds run namespaces by\n" +
			"their label whose Lease expired (a run of another machine, or one without a record).\n" +
			"Exit code 3 when something could not be healed (its record is kept).",
		Example: "  faultline clean\n  faultline clean --force --docker\n  faultline clean --docker --images\n  faultline clean --kubernetes --kubeconfig ~/.kube/ci",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if images && !alldk {
				return usagef("clean: --images needs --docker (an image goes only with every container of every run)")
			}
			if dir == "" {
				dir = undo.DefaultDir()
			}
			var opts []undo.HealOption
			opts = append(opts, undo.WithContainerCleaner(cleanContainers), undo.WithNamespaceCleaner(cleanNamespaces))
			if force {
				opts = append(opts, undo.WithForce())
			}
			ctx, cancel := context.WithTimeout(contextOf(cmd), healTimeout)
			defer cancel()
			reps, err := undo.HealPending(ctx, dir, opts...)
			printHeal(cmd.OutOrStdout(), reps, true)
			if alldk {
				removed, derr := cleanContainers(ctx, "")
				if len(removed) > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "faultline: removed docker leftovers: %s\n", strings.Join(removed, ", "))
				}
				err = errors.Join(err, derr)
			}
			if images {
				rep, derr := docker.Clean(ctx, "", docker.WithImages())
				if len(rep.Images) > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "faultline: removed images: %s\n", strings.Join(rep.Images, ", "))
				}
				err = errors.Join(err, derr)
			}
			if kube {
				client, kerr := kubeClient(kubeconfig, "")
				if kerr == nil {
					var deleted []string
					deleted, kerr = lease.CleanStale(ctx, client)
					if len(deleted) > 0 {
						fmt.Fprintf(cmd.OutOrStdout(), "faultline: deleted kubernetes leftovers: %s\n", strings.Join(deleted, ", "))
					}
				}
				err = errors.Join(err, kerr)
			}
			if len(reps) == 0 && !alldk && !images && !kube && err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "faultline: nothing to clean in %s\n", dir)
			}
			if err != nil {
				return fmt.Errorf("clean: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "undo-dir", "", "where undo records are (default $"+undo.DirEnv+", else $XDG_STATE_HOME/faultline/undo)")
	cmd.Flags().BoolVar(&force, "force", false, "also heal runs whose harness is still alive, killing that harness first")
	cmd.Flags().BoolVar(&alldk, "docker", false, "also remove every container, network and volume labelled by faultline, whatever its run")
	cmd.Flags().BoolVar(&kube, "kubernetes", false, "also delete the run namespaces (labelled "+lease.ManagedSelector+") whose Lease expired, whatever machine ran them, and reaper rights left by a deleted namespace")
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "with --kubernetes: the cluster's kubeconfig (default $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().BoolVar(&images, "images", false, "with --docker: also remove the images faultline built (a cache: the next docker run builds them again)")
	return cmd
}
