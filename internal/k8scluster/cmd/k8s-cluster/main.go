// Command k8s-cluster runs the single-node test cluster (make k8s-cluster) until Ctrl-C,
// then tears it down; -clean tears down one whose owner was killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/faultline-dev/faultline/internal/k8scluster"
)

func main() {
	dir := flag.String("dir", "/tmp/faultline-k8s-cluster", "directory for the cluster's state, logs and kubeconfig")
	clean := flag.Bool("clean", false, "tear down a cluster left under -dir by a killed owner, then exit")
	flag.Parse()
	if err := run(*dir, *clean); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-cluster:", err)
		os.Exit(1)
	}
}

func run(dir string, clean bool) error {
	if clean {
		return k8scluster.Clean(dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := k8scluster.Start(ctx, dir, k8scluster.Options{Log: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig)
	fmt.Fprintln(os.Stderr, "k8s: running; Ctrl-C tears it down")
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "k8s: tearing down")
	return c.Stop()
}
