package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/runtime"
)

// childEnv turns the test binary into a harness that starts containers and then waits to
// be SIGKILLed (TestCleanAfterKilledHarness).
const (
	childEnv       = "FAULTLINE_DOCKER_TEST_CHILD_RUN"
	childImageEnv  = "FAULTLINE_DOCKER_TEST_CHILD_IMAGE"
	childReaperEnv = "FAULTLINE_DOCKER_TEST_CHILD_REAPER" // the faultline image, for a reaper
)

func TestMain(m *testing.M) {
	if run := os.Getenv(childEnv); run != "" {
		os.Exit(runChild(run, os.Getenv(childImageEnv), os.Getenv(childReaperEnv)))
	}
	os.Exit(m.Run())
}

// runChild starts a labelled container with a volume on a labelled network and then
// blocks, like a harness in the middle of a run.
func runChild(runID, image, reaper string) int {
	ctx := context.Background()
	opts := []Option{WithRunID(runID)}
	if reaper != "" {
		opts = append(opts, WithReaper(reaper, time.Second))
	}
	rt, err := New(ctx, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := rt.Start(ctx, toxiproxySpec("toxiproxy", image, &runtime.Mount{Volume: "state", Target: "/state"})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

var (
	imagesOnce sync.Once
	imagesErr  error
	faultImage string
	toxiImage  string
)

// requireImages skips without an engine and builds both images once per test binary.
func requireImages(t *testing.T) (faultline, toxiproxy string) {
	t.Helper()
	requireDocker(t)
	imagesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		if faultImage, imagesErr = BuildImage(ctx); imagesErr != nil {
			return
		}
		toxiImage, imagesErr = BuildToxiproxyImage(ctx)
		fmt.Fprintf(os.Stderr, "built images %s and %s in %s\n", faultImage, toxiImage, time.Since(start).Round(time.Millisecond))
	})
	require.NoError(t, imagesErr, "build images")
	return faultImage, toxiImage
}

func requireDocker(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Available(ctx); err != nil {
		t.Skip("docker: no engine: " + err.Error())
	}
}

// newRuntime returns a runtime whose Close is registered before anything can fail.
func newRuntime(t *testing.T, opts ...Option) *Runtime {
	t.Helper()
	rt, err := New(context.Background(), append([]Option{WithGrace(2 * time.Second)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	return rt
}

const (
	registryClientPort = 2379
	registryAdminPort  = 8081
)

// registrySpec runs `faultline serve` for a registry component whose data lives in a
// run volume, the way a system would in containers.
func registrySpec(t *testing.T, name, image string) runtime.Spec {
	t.Helper()
	c := config.Component{
		Kind: config.KindRegistry, Name: name, Service: "registry",
		Listen:  fmt.Sprintf("0.0.0.0:%d", registryClientPort),
		Admin:   fmt.Sprintf("0.0.0.0:%d", registryAdminPort),
		Peer:    "0.0.0.0:2380",
		DataDir: "/data/registry", LeaseTTL: config.Duration(2 * time.Second),
	}
	require.Empty(t, c.Validate())
	raw, err := json.Marshal(c)
	require.NoError(t, err)
	cfgPath := "/config/" + name + ".json"
	return runtime.Spec{
		Name: name, Command: BinaryPath, Args: []string{"serve", "--config", cfgPath},
		LogFile: filepath.Join(t.TempDir(), name+".log"),
		Labels:  map[string]string{"dev.faultline.kind": config.KindRegistry},
		Container: &runtime.ContainerSpec{
			Image:  image,
			Ports:  []int{registryClientPort, registryAdminPort},
			Mounts: []runtime.Mount{{Volume: name + "-data", Target: "/data"}},
			Files:  []runtime.File{{Target: cfgPath, Content: raw}},
			Ready:  &runtime.HTTPReady{Port: registryAdminPort, Path: "/readyz"},
		},
	}
}

func toxiproxySpec(name, image string, m *runtime.Mount) runtime.Spec {
	s := runtime.Spec{
		Name: name, Command: ToxiproxyPath, Args: []string{"-host", "0.0.0.0", "-port", fmt.Sprint(ToxiproxyAPIPort)},
		Container: &runtime.ContainerSpec{
			Image: image,
			Ports: []int{ToxiproxyAPIPort, 9000},
			Ready: &runtime.HTTPReady{Port: ToxiproxyAPIPort, Path: "/version"},
		},
	}
	if m != nil {
		s.Container.Mounts = []runtime.Mount{*m}
	}
	return s
}

// probe GETs path on a fresh connection, so a frozen or unreachable target shows at once
// instead of hiding behind a pooled connection.
func probe(addr, path string, timeout time.Duration) (int, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func hostPort(t *testing.T, p runtime.Process, port int) string {
	t.Helper()
	hp, ok := p.(runtime.HostPorter)
	require.True(t, ok, "a docker process maps its ports")
	addr, err := hp.HostPort(port)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(addr, "127.0.0.1:"), "published on loopback only: %s", addr)
	return addr
}

// leftovers counts what the engine still holds with this run's label.
func leftovers(t *testing.T, runID string) (containers, networks, volumes int) {
	t.Helper()
	p, err := newProvider(nil)
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	ctx := context.Background()
	c, err := p.Client().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labelFilter(runID)})
	require.NoError(t, err)
	n, err := p.Client().NetworkList(ctx, client.NetworkListOptions{Filters: labelFilter(runID)})
	require.NoError(t, err)
	v, err := p.Client().VolumeList(ctx, client.VolumeListOptions{Filters: labelFilter(runID)})
	require.NoError(t, err)
	return len(c.Items), len(n.Items), len(v.Items)
}
