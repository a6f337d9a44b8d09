// Command k8s-cluster runs the single-node test cluster (make k8s-cluster) until Ctrl-C,
// then tears it down; -clean tears down one whose owner was killed. Given a command after
// "--", it runs that command with KUBECONFIG set instead of waiting, checks that nothing
// labelled by Faultline is left in the cluster, tears it down and exits with the
// command's status (make suite-k8s).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/faultline-dev/faultline/internal/k8scluster"
	"github.com/faultline-dev/faultline/runtime/images"
	"github.com/faultline-dev/faultline/runtime/kubernetes"
	"github.com/faultline-dev/faultline/runtime/kubernetes/lease"
	"github.com/faultline-dev/faultline/runtime/wait"
)

func main() {
	dir := flag.String("dir", "/tmp/faultline-k8s-cluster", "directory for the cluster's state, logs and kubeconfig")
	clean := flag.Bool("clean", false, "tear down a cluster left under -dir by a killed owner, then exit")
	withImages := flag.Bool("images", true, "import this source tree's faultline and Toxiproxy images, as faultline up --runtime kubernetes names them")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: k8s-cluster [-dir DIR] [-clean] [-images=false] [-- COMMAND ARGS...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	code, err := run(*dir, *clean, *withImages, flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-cluster:", err)
		os.Exit(max(code, 1))
	}
	os.Exit(code)
}

func run(dir string, clean, withImages bool, command []string) (int, error) {
	if clean {
		return 0, k8scluster.Clean(dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Without a registry the nodes hold the run's images only when imported: the ones of
	// this tree, named as faultline names them (a rebuilt binary needs a new cluster, or
	// faultline images push and --registry).
	var imgs []k8scluster.Image
	if withImages {
		for _, r := range []images.Recipe{images.Faultline, images.Toxiproxy} {
			img, err := k8scluster.LocalImage(ctx, r)
			if err != nil {
				return 0, fmt.Errorf("build image %s: %w", r.Repo, err)
			}
			fmt.Fprintln(os.Stderr, "k8s: importing", img.Ref)
			imgs = append(imgs, img)
		}
	}
	c, err := k8scluster.Start(ctx, dir, k8scluster.Options{Images: imgs, Log: os.Stderr})
	if err != nil {
		return 0, err
	}
	if len(command) > 0 {
		code, err := runOn(ctx, c, command)
		fmt.Fprintln(os.Stderr, "k8s: tearing down")
		return code, errors.Join(err, c.Stop())
	}
	fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig)
	fmt.Fprintln(os.Stderr, "k8s: running; Ctrl-C tears it down")
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "k8s: tearing down")
	return 0, c.Stop()
}

// runOn runs command against c (KUBECONFIG set) and returns its exit status; then, since
// every run must remove what it made on every exit path, anything labelled by Faultline
// still in the cluster is an error.
func runOn(ctx context.Context, c *k8scluster.Cluster, command []string) (int, error) {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	// Ctrl-C reaches the command too (same process group): let it heal, then stop.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	code := 0
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return 1, fmt.Errorf("run %s: %w", command[0], err)
		}
		code = max(exit.ExitCode(), 1)
	}
	cfg, err := kubernetes.LoadConfig(c.Kubeconfig, "")
	if err != nil {
		return max(code, 1), fmt.Errorf("check leftovers: %w", err)
	}
	cs, err := kubernetes.NewClientset(cfg)
	if err != nil {
		return max(code, 1), fmt.Errorf("check leftovers: %w", err)
	}
	// A run ends once its system's pods are gone; its namespace's controller deletes the
	// namespace a few seconds later. So what is left is what is still there a minute on.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leftoversWait)
	defer cancel()
	var left []string
	err = wait.Func(func(ctx context.Context) (bool, error) {
		var lerr error
		if left, lerr = lease.Leftovers(ctx, cs); lerr != nil {
			return false, wait.Permanent(lerr)
		}
		return len(left) == 0, nil
	}).Every(time.Second).Wait(lctx)
	if len(left) == 0 && err != nil {
		return max(code, 1), err
	}
	if len(left) > 0 {
		return max(code, 1), fmt.Errorf("check leftovers: left in the cluster after %s: %s", command[0], strings.Join(left, ", "))
	}
	fmt.Fprintln(os.Stderr, "k8s: nothing labelled by faultline left in the cluster")
	return code, nil
}

// leftoversWait is how long after the command what it labelled may still be going away.
const leftoversWait = time.Minute
