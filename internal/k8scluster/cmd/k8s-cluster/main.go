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
	"github.com/faultline-dev/faultline/runtime/images"
)

func main() {
	dir := flag.String("dir", "/tmp/faultline-k8s-cluster", "directory for the cluster's state, logs and kubeconfig")
	clean := flag.Bool("clean", false, "tear down a cluster left under -dir by a killed owner, then exit")
	withImages := flag.Bool("images", true, "import this source tree's faultline and Toxiproxy images, as faultline up --runtime kubernetes names them")
	flag.Parse()
	if err := run(*dir, *clean, *withImages); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-cluster:", err)
		os.Exit(1)
	}
}

func run(dir string, clean, withImages bool) error {
	if clean {
		return k8scluster.Clean(dir)
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
				return fmt.Errorf("build image %s: %w", r.Repo, err)
			}
			fmt.Fprintln(os.Stderr, "k8s: importing", img.Ref)
			imgs = append(imgs, img)
		}
	}
	c, err := k8scluster.Start(ctx, dir, k8scluster.Options{Images: imgs, Log: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig)
	fmt.Fprintln(os.Stderr, "k8s: running; Ctrl-C tears it down")
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "k8s: tearing down")
	return c.Stop()
}
