package system_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/reference-services/registry"
	"github.com/faultline-dev/faultline/runtime/docker"
	"github.com/faultline-dev/faultline/system"
	"github.com/faultline-dev/faultline/system/containers"
)

var (
	imageOnce sync.Once
	imageTag  string
	imageErr  error
)

// requireImage skips without an engine and builds the faultline image once per binary.
func requireImage(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		t.Skip("docker: no engine: " + err.Error())
	}
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		imageTag, imageErr = docker.BuildImage(ctx)
	})
	require.NoError(t, imageErr, "build image")
	return imageTag
}

// startDocker starts the default system as containers; Stop runs at cleanup unless the
// test stops it itself.
func startDocker(t *testing.T, dir, runID string, opts ...system.Option) *system.System {
	t.Helper()
	image := requireImage(t)
	opts = append([]system.Option{system.WithLogger(testLogger(t)), system.WithReadyTimeout(2 * time.Minute)}, opts...)
	sys, err := containers.StartDocker(t.Context(), system.Spec{Dir: dir}, containers.Docker{Image: image, RunID: runID}, opts...)
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, filepath.Join(dir, "logs"))
		}
		if sys != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			assert.NoError(t, sys.Stop(ctx))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = docker.Clean(ctx, runID) // a failed test must not leave containers behind
	})
	require.NoError(t, err)
	t.Logf("containerised system ready in %s", sys.ReadyDuration())
	return sys
}

func TestDockerSystem(t *testing.T) {
	runID := "systest-" + docker.NewRunID()
	dir := t.TempDir()
	sys := startDocker(t, dir, runID)

	var names []string
	for _, c := range sys.Components() {
		names = append(names, c.Name)
		assert.True(t, strings.HasPrefix(c.Admin, "127.0.0.1:"), "%s admin %q is not a host address", c.Name, c.Admin)
		assert.True(t, strings.HasPrefix(c.Listen, "127.0.0.1:"), "%s listen %q is not a host address", c.Name, c.Listen)
	}
	require.Equal(t, []string{"registry-1", "broker-1", "merchant-1", "merchant-2", "product-1", "product-2",
		"order-1", "order-2", "gateway-1"}, names)
	require.True(t, strings.HasPrefix(sys.GatewayURL(), "http://127.0.0.1:"), sys.GatewayURL())

	// The registry is reached through its published port; instances must be registered
	// under their in-network names so that peers inside the network can dial them.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rc, err := registry.Connect(ctx, sys.RegistryEndpoints(), prometheus.NewRegistry(), testLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rc.Close() })
	watch, err := rc.Watch(ctx, "faultline-test", false, prometheus.NewRegistry())
	require.NoError(t, err)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for _, svc := range []string{"merchant", "product", "order"} {
		require.NoError(t, watch.WaitFor(wctx, svc, 2))
	}

	t.Run("instances registered by alias:port", func(t *testing.T) {
		for _, svc := range []string{"merchant", "product", "order"} {
			var got []string
			for _, in := range watch.Instances(svc) {
				got = append(got, in.Name+"="+in.Addr)
			}
			want := []string{
				fmt.Sprintf("%s-1=%s-1:%d", svc, svc, system.ContainerServicePort),
				fmt.Sprintf("%s-2=%s-2:%d", svc, svc, system.ContainerServicePort),
			}
			assert.ElementsMatch(t, want, got, svc)
		}
	})

	token, err := sys.Token("itest", time.Hour)
	require.NoError(t, err)
	gw := &gateway{url: sys.GatewayURL(), token: token, http: &http.Client{Timeout: 10 * time.Second}}
	catalog := sys.Spec().Catalog
	h := &history{}

	t.Run("tokens work as on the local runtime", func(t *testing.T) {
		got, body := gw.raw(t.Context(), http.MethodGet, "/products", "Bearer not.a.jwt", "", nil)
		assert.Equal(t, http.StatusUnauthorized, got, "body: %s", body)
		got, body = gw.raw(t.Context(), http.MethodGet, "/products", "Bearer "+token, "", nil)
		assert.Equal(t, http.StatusOK, got, "body: %s", body)
	})

	t.Run("an order through the published gateway converges", func(t *testing.T) {
		const ix = 3
		product := config.ProductID(ix)
		before := stock(t, gw, product)
		o := gw.place(t.Context(), orderReq{key: "docker-1", merchant: catalog.ProductMerchant(ix), product: product, quantity: 2, productIx: ix})
		require.True(t, o.acked(), "order not acknowledged: %v", o.err)
		h.add(o)
		require.Eventually(t, func() bool { return stock(t, gw, product) == before-2 },
			30*time.Second, 100*time.Millisecond, "stock of %s never went from %d to %d", product, before, before-2)
	})

	t.Run("SIGKILL of order-1: lease expires, gateway keeps answering", func(t *testing.T) {
		ttl := sys.Spec().LeaseTTL
		load := startLoad(t, gw, catalog, h, 4, "docker-failover")
		time.Sleep(300 * time.Millisecond)

		killed := time.Now()
		require.NoError(t, sys.Kill("order-1"))
		var dropped time.Duration
		require.Eventually(t, func() bool {
			if !contains(instanceNames(watch.Instances("order")), "order-1") {
				dropped = time.Since(killed)
				return true
			}
			return false
		}, ttl+time.Second, 10*time.Millisecond, "order-1 still registered %s after SIGKILL", ttl+time.Second)
		time.Sleep(time.Second)
		res := load.stop()
		t.Logf("registry dropped order-1 %s after SIGKILL (lease TTL %s); gateway: %d ok, %d errors %v",
			dropped, ttl, res.ok, res.errors, res.errs)
		require.Greater(t, res.ok, 0)
		assert.GreaterOrEqual(t, float64(res.ok)/float64(res.ok+res.errors), 0.9, "the gateway must keep answering with one order replica down")

		require.NoError(t, sys.Restart(t.Context(), "order-1"))
		require.Eventually(t, func() bool { return contains(instanceNames(watch.Instances("order")), "order-1") },
			30*time.Second, 20*time.Millisecond, "order-1 re-registers after restart")
		c, _ := sys.Component("order-1")
		require.Equal(t, http.StatusOK, httpStatus(t, c.AdminURL()+"/readyz"), "admin URL after restart must be the new host port")
	})

	t.Run("pause and resume by name", func(t *testing.T) {
		c, _ := sys.Component("product-2")
		require.NoError(t, sys.Pause("product-2"))
		assert.Zero(t, httpStatus(t, c.AdminURL()+"/healthz"), "a paused container answers nothing")
		require.NoError(t, sys.Resume("product-2"))
		require.Eventually(t, func() bool { return httpStatus(t, c.AdminURL()+"/healthz") == http.StatusOK },
			30*time.Second, 50*time.Millisecond, "product-2 answers again after resume")
	})

	t.Run("stop leaves nothing labelled behind", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, sys.Stop(ctx))
		rep, err := docker.Clean(ctx, runID)
		require.NoError(t, err)
		assert.True(t, rep.Empty(), "left behind after Stop: %+v", rep)
	})
}

// stock reads a product's stock through the gateway.
func stock(t *testing.T, gw *gateway, product string) int64 {
	t.Helper()
	st, body := gw.raw(t.Context(), http.MethodGet, "/products/"+product, "Bearer "+gw.token, "", nil)
	require.Equal(t, http.StatusOK, st, "body: %s", body)
	var p struct {
		Stock int64 `json:"stock"`
	}
	require.NoError(t, json.Unmarshal(body, &p))
	return p.Stock
}

// httpStatus is the status of GET url, 0 when nothing answers within a second.
func httpStatus(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// recordingInterposer records what it is asked and then stops the plan, so that nothing
// starts.
type recordingInterposer struct{ asked []string }

func (r *recordingInterposer) Interpose(c system.Component, target, addr string) (string, error) {
	r.asked = append(r.asked, c.Name+"->"+target+"="+addr)
	return "", errors.New("stop planning here")
}

// TestDockerInterposesInNetworkAddresses: on the container runtime the harness's proxies
// sit on the run's network, so the interposer is handed the addresses a container dials
// (peers by name and fixed port), never a host address.
func TestDockerInterposesInNetworkAddresses(t *testing.T) {
	requireImage(t)
	rt, err := docker.New(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, rt.Close(ctx))
	})
	ip := &recordingInterposer{}
	_, err = system.Start(t.Context(), rt, system.Spec{Dir: t.TempDir()}, system.WithInterposer(ip))
	require.ErrorContains(t, err, "stop planning here")
	require.NotEmpty(t, ip.asked)
	assert.Equal(t, "merchant-1->registry-1=registry-1:2379", ip.asked[0], "the first caller planned dials the registry by name")
	assert.Empty(t, rt.Processes(), "a plan that fails starts nothing")
}
