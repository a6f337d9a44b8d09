package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/faultline-dev/faultline/internal/k8scluster"
	"github.com/faultline-dev/faultline/runtime/images"
)

// The cluster every test of the binary shares, and the images imported into it.
var (
	cluster          *k8scluster.Cluster
	skip             string
	faultlineImage   string
	toxiproxyImage   string
	volumeRoot       string
	clusterStartTook time.Duration
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := k8scluster.Supported(""); err != nil {
		skip = "no test cluster here: " + err.Error()
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var imgs []k8scluster.Image
	for _, r := range []images.Recipe{images.Faultline, images.Toxiproxy} {
		img, err := k8scluster.LocalImage(ctx, r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "build image:", err)
			return 1
		}
		imgs = append(imgs, img)
	}
	faultlineImage, toxiproxyImage = imgs[0].Ref, imgs[1].Ref
	dir, err := os.MkdirTemp("", "fl-k8s-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Run volumes live under the cluster's directory, so the teardown takes them too.
	volumeRoot = filepath.Join(dir, "volumes")
	began := time.Now()
	c, err := k8scluster.Start(ctx, filepath.Join(dir, "cluster"), k8scluster.Options{Images: imgs, Log: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start cluster:", err)
		return 1
	}
	clusterStartTook = time.Since(began)
	cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop cluster:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// needCluster skips with one line when there is no cluster.
func needCluster(t *testing.T) {
	t.Helper()
	if cluster == nil {
		t.Skip(skip)
	}
}
