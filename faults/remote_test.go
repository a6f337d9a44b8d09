package faults

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/docker"
)

func TestNewLinksRejectsABadRemote(t *testing.T) {
	tests := []struct {
		name   string
		remote Remote
		want   []string
	}{
		{"empty", Remote{}, []string{`api "": want an http:// URL`, "host is empty", "ports: want at least one"}},
		{"api without scheme", Remote{API: "127.0.0.1:8474", Host: "toxiproxy", Ports: []int{20000}},
			[]string{`api "127.0.0.1:8474"`}},
		{"api not http", Remote{API: "ftp://127.0.0.1:8474", Host: "toxiproxy", Ports: []int{20000}},
			[]string{`api "ftp://127.0.0.1:8474": want an http:// URL`}},
		{"api with a query", Remote{API: "http://127.0.0.1:8474/?x=1", Host: "toxiproxy", Ports: []int{20000}},
			[]string{"must not have a query or fragment"}},
		{"every port problem", Remote{API: "http://127.0.0.1:8474", Host: " ", Ports: []int{20000, 0, 70000, 20000, -1}},
			[]string{"host is empty", "ports[1] 0 is not a TCP port", "ports[2] 70000 is not a TCP port",
				"ports[3] 20000 repeats ports[0]", "ports[4] -1 is not a TCP port"}},
		{"control ports", Remote{API: "http://127.0.0.1:8474", Host: "toxiproxy", Ports: []int{20000}, ControlPorts: []int{20001, 20000, 0}},
			[]string{"control_ports[1] 20000 repeats ports[0]", "control_ports[2] 0 is not a TCP port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLinks(WithRemote(tt.remote))
			require.Error(t, err)
			assert.Nil(t, l)
			assert.True(t, strings.HasPrefix(err.Error(), "new links: check remote: "), err.Error())
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, len(tt.want), strings.Count(err.Error(), ";")+1, "one problem per expectation: %s", err)
		})
	}

	// A good Remote is accepted without contacting anything (nothing listens there).
	l, err := NewLinks(WithRemote(Remote{API: "http://127.0.0.1:1/", Host: "toxiproxy", Ports: []int{20001, 20000}}))
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

// TestRemoteAddWithTheServerGone: a server that refuses connections fails Add at once,
// and since nothing was created the port stays free and Close has nothing to delete.
func TestRemoteAddWithTheServerGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	api := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	l, err := NewLinks(WithRemote(Remote{API: api, Host: "toxiproxy", Ports: []int{20000}}))
	require.NoError(t, err)
	for range 2 { // the second attempt gets the same port: the first one did not keep it
		_, err = l.Add(context.Background(), Link{From: "a", To: "b", Upstream: "b:1"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), `add link "a->b": create remote proxy on port 20000`)
		assert.Contains(t, err.Error(), "connection refused")
	}
	assert.Empty(t, l.All())
	assert.False(t, l.Enabled("a->b"))
	require.NoError(t, l.Close())
}

// remoteRig is a Toxiproxy container "toxiproxy" and a plain HTTP upstream "upstream" (a
// second Toxiproxy, whose API answers GET /version) on one run network.
type remoteRig struct {
	rt        *docker.Runtime
	toxiproxy runtime.Process
	upstream  runtime.Process
	api       string
}

var remotePorts = []int{20000, 20001}

// remoteControlPorts are the rig's ports for control proxies (Remote.ControlPorts).
var remoteControlPorts = []int{20010}

var (
	toxiImageOnce sync.Once
	toxiImage     string
	toxiImageErr  error
)

// toxiproxyImage builds the image once per test binary: even with everything cached, the
// go build behind it takes seconds.
func toxiproxyImage(ctx context.Context) (string, error) {
	toxiImageOnce.Do(func() {
		start := time.Now()
		toxiImage, toxiImageErr = docker.BuildToxiproxyImage(ctx)
		fmt.Fprintf(os.Stderr, "toxiproxy image %s ready in %s\n", toxiImage, time.Since(start).Round(time.Millisecond))
	})
	return toxiImage, toxiImageErr
}

func startRemoteRig(t *testing.T) remoteRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	avail, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if err := docker.Available(avail); err != nil {
		t.Skip("docker: no engine: " + err.Error())
	}
	img, err := toxiproxyImage(ctx)
	require.NoError(t, err, "build toxiproxy image")

	rt, err := docker.New(ctx, docker.WithRunID("faults-"+docker.NewRunID()), docker.WithGrace(time.Second))
	t.Cleanup(func() {
		if rt == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("close runtime: %v", err)
		}
	})
	require.NoError(t, err)
	spec := func(name string, ports ...int) runtime.Spec {
		return runtime.Spec{
			Name: name, Command: docker.ToxiproxyPath,
			Args: []string{"-host", "0.0.0.0", "-port", strconv.Itoa(docker.ToxiproxyAPIPort)},
			Env:  []string{"LOG_LEVEL=warn"},
			Container: &runtime.ContainerSpec{
				Image: img, Ports: append([]int{docker.ToxiproxyAPIPort}, ports...),
				Ready: &runtime.HTTPReady{Port: docker.ToxiproxyAPIPort, Path: "/version"},
			},
		}
	}
	start := time.Now()
	tp, err := rt.Start(ctx, spec("toxiproxy", append(slices.Clone(remotePorts), remoteControlPorts...)...))
	require.NoError(t, err)
	up, err := rt.Start(ctx, spec("upstream"))
	require.NoError(t, err)
	t.Logf("containers started in %s", time.Since(start).Round(time.Millisecond))
	api, err := tp.(runtime.HostPorter).HostPort(docker.ToxiproxyAPIPort)
	require.NoError(t, err)
	return remoteRig{rt: rt, toxiproxy: tp, upstream: up, api: "http://" + api}
}

// dial maps "<container>:<port>" on the run's network to its published host address,
// asking the engine every time as a harness must.
func (r remoteRig) dial(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", err
	}
	procs := map[string]runtime.Process{"toxiproxy": r.toxiproxy, "upstream": r.upstream}
	p, ok := procs[host]
	if !ok {
		return "", fmt.Errorf("no container %q", host)
	}
	return p.(runtime.HostPorter).HostPort(n)
}

// networkIP is a container's address on the run's network, the one callers reach; the
// harness host can route to it when the engine runs on this machine.
func (r remoteRig) networkIP(t *testing.T, name string) string {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := cli.ContainerInspect(ctx, r.rt.ContainerName(name), client.ContainerInspectOptions{})
	require.NoError(t, err)
	ep := info.Container.NetworkSettings.Networks[r.rt.Network()]
	require.NotNil(t, ep, "%s is on %s", name, r.rt.Network())
	return ep.IPAddress.String()
}

// httpGet asks path on a fresh connection, so a proxy that went down shows at once.
func httpGet(addr, path string) (int, string, time.Duration, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, "", time.Since(start), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), time.Since(start), err
}

func TestRemoteLinksDriveAToxiproxyContainer(t *testing.T) {
	rig := startRemoteRig(t)
	began := time.Now()
	ctx := context.Background()
	l := newLinks(t, WithRemote(Remote{API: rig.api, Host: "toxiproxy", Ports: remotePorts, ControlPorts: remoteControlPorts, Dial: rig.dial}))
	env := NewEnv(l, nil)
	const name = "caller->upstream-1"

	listen := addLink(t, l, Link{From: "caller", To: "upstream-1", ToService: "upstream", Upstream: "upstream:8474"})
	assert.Equal(t, "toxiproxy:20000", listen, "the lowest port, by the name callers dial")
	got, err := l.ListenAddr(name)
	require.NoError(t, err)
	assert.Equal(t, listen, got)
	published, err := rig.dial(listen)
	require.NoError(t, err)
	assertAnswers := func(what string) time.Duration {
		t.Helper()
		status, body, took, err := httpGet(published, "/version")
		require.NoError(t, err, what)
		assert.Equal(t, http.StatusOK, status, what)
		assert.Contains(t, body, `"version"`, what)
		return took
	}
	t.Logf("GET /version through %s (%s): %s", listen, published, assertAnswers("through the proxy"))

	// A 300 ms latency, measured the way a run measures it.
	lat := &Latency{Target: "caller->upstream", Latency: 300 * time.Millisecond}
	eff := injectMeasure(t, env, lat)
	t.Logf("latency effect: %+v", eff)
	assert.True(t, eff.Landed, "effect %+v", eff)
	assert.InDelta(t, 300, eff.Measured, 75, "effect %+v", eff)
	assert.Contains(t, eff.Detail, "through a bare proxy", "the baseline crossed the same server")
	proxies, err := toxiclient.NewClient(rig.api).Proxies()
	require.NoError(t, err)
	assert.Len(t, proxies, 1, "the control proxy is deleted after the measurement: %v", slices.Collect(maps.Keys(proxies)))
	assert.GreaterOrEqual(t, assertAnswers("with latency"), 270*time.Millisecond, "a real request pays the latency")
	names, err := l.ToxicNames(name)
	require.NoError(t, err)
	assert.Len(t, names, 1)
	require.NoError(t, lat.Heal(ctx, env))
	names, err = l.ToxicNames(name)
	require.NoError(t, err)
	assert.Empty(t, names)
	require.NoError(t, l.RemoveToxic(ctx, name, "never-added"), "removing a missing toxic is not an error")

	// Disable: the server closes its listener; callers on the network are refused.
	ip := rig.networkIP(t, "toxiproxy")
	inNetwork := net.JoinHostPort(ip, "20000")
	routable := TCPProbe(ctx, inNetwork, ProbeSpec{Timeout: time.Second}).Outcome == OutcomeAnswered
	require.NoError(t, l.Disable(ctx, name, "test", 0))
	assert.False(t, l.Enabled(name))
	if routable {
		p := TCPProbe(ctx, inNetwork, ProbeSpec{Timeout: time.Second})
		assert.Equal(t, OutcomeRefused, p.Outcome, "a caller on the network dialling %s: %+v", inNetwork, p)
		t.Logf("disabled link from the run's network (%s): %s", inNetwork, p.Outcome)
	} else {
		t.Logf("the run's network (%s) is not routable from here; refusal checked through the published port only", ip)
	}
	// The published port is docker-proxy's: it accepts, fails to reach the proxy and drops
	// the connection, so through it a disabled link answers nothing rather than refusing.
	p, err := l.Probe(ctx, name, ProbeSpec{})
	require.NoError(t, err)
	assert.NotEqual(t, OutcomeAnswered, p.Outcome, "probe %+v", p)
	assert.Zero(t, p.Bytes)
	t.Logf("disabled link through the published port: %s (%s)", p.Outcome, p.Err)
	_, _, _, err = httpGet(published, "/version")
	assert.Error(t, err)

	require.NoError(t, l.Enable(ctx, name, "test"))
	assert.True(t, l.Enabled(name))
	got, err = l.ListenAddr(name)
	require.NoError(t, err)
	assert.Equal(t, listen, got, "back on the same port")
	assertAnswers("after enable")
	if routable {
		assert.Equal(t, OutcomeAnswered, TCPProbe(ctx, inNetwork, ProbeSpec{Timeout: time.Second}).Outcome)
	}

	// SetUpstream re-points the proxy and keeps its port: here at the toxiproxy server's
	// own API, which lists the link's proxy.
	require.NoError(t, l.SetUpstream(ctx, name, "toxiproxy:8474"))
	status, body, _, err := httpGet(published, "/proxies")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"upstream":"toxiproxy:8474"`)
	assert.True(t, l.Enabled(name), "the upstream change keeps the proxy enabled")
	require.NoError(t, l.SetUpstream(ctx, name, "upstream:8474"))
	lk, _ := l.Get(name)
	assert.Equal(t, "upstream:8474", lk.Upstream)

	// Hand injection goes through ServeAPI to the container; the proxies stay the harness's.
	apiAddr, err := l.ServeAPI(":0")
	require.NoError(t, err)
	hand := toxiclient.NewClient("http://" + apiAddr)
	_, err = hand.AddToxic(&toxiclient.ToxicOptions{ProxyName: name, ToxicName: "by_hand", ToxicType: "latency",
		Stream: "downstream", Toxicity: 1, Attributes: toxiclient.Attributes{"latency": 200}})
	require.NoError(t, err)
	_, err = hand.CreateProxy("sneaky", "0.0.0.0:20001", "upstream:8474")
	require.Error(t, err, "guardAPI refuses to create proxies")
	onServer, err := toxiclient.NewClient(rig.api).Proxies()
	require.NoError(t, err)
	assert.NotContains(t, onServer, "sneaky")
	assert.Len(t, onServer, 1)

	// HealAll removes every toxic (the hand-made one, one with a dead-man timer) and
	// lifts every hold.
	_, err = l.AddToxic(ctx, name, Toxic{Type: "timeout", Attributes: map[string]any{"timeout": 0}, TTL: time.Minute})
	require.NoError(t, err)
	require.NoError(t, l.Disable(ctx, name, "a", 0))
	require.NoError(t, l.Disable(ctx, name, "b", 0))
	names, err = l.ToxicNames(name)
	require.NoError(t, err)
	assert.Len(t, names, 2)
	require.NoError(t, l.HealAll(ctx))
	names, err = l.ToxicNames(name)
	require.NoError(t, err)
	assert.Empty(t, names)
	assert.True(t, l.Enabled(name))
	assert.Less(t, assertAnswers("after heal all"), 150*time.Millisecond, "no latency left")

	// A dead-man timer removes a forgotten toxic on the server.
	_, err = l.AddToxic(ctx, name, Toxic{Type: "latency", Attributes: map[string]any{"latency": 100}, TTL: 200 * time.Millisecond})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		names, err := l.ToxicNames(name)
		return err == nil && len(names) == 0
	}, 5*time.Second, 20*time.Millisecond)

	// Two ports: the second link takes the other, a third has none.
	assert.Equal(t, "toxiproxy:20001", addLink(t, l, Link{From: "caller", To: "upstream-2", ToService: "upstream", Upstream: "upstream:8474"}))
	_, err = l.Add(ctx, Link{From: "caller", To: "upstream-3", ToService: "upstream", Upstream: "upstream:8474"})
	require.Error(t, err)
	assert.Equal(t, `add link "caller->upstream-3": take remote port: all 2 ports are in use`, err.Error())
	assert.Len(t, l.All(), 2)

	// Close with the container gone: an error, promptly.
	require.NoError(t, rig.toxiproxy.Kill())
	assert.False(t, l.Enabled(name), "an unreachable server reports links as not enabled")
	start := time.Now()
	err = l.Close()
	took := time.Since(start)
	require.Error(t, err)
	t.Logf("close with the server gone: %s in %s", err, took.Round(time.Millisecond))
	assert.Less(t, took, 5*time.Second)
	fmt.Fprintf(os.Stderr, "remote links test body took %s\n", time.Since(began).Round(time.Millisecond))
}

// TestRemoteCloseDeletesTheProxies: Close removes what the Links created and nothing else
// is left on the server.
func TestRemoteCloseDeletesTheProxies(t *testing.T) {
	rig := startRemoteRig(t)
	l, err := NewLinks(WithRemote(Remote{API: rig.api, Host: "toxiproxy", Ports: remotePorts, Dial: rig.dial}))
	require.NoError(t, err)
	addLink(t, l, Link{From: "caller", To: "upstream-1", Upstream: "upstream:8474"})
	addLink(t, l, Link{From: "caller", To: "upstream-2", Upstream: "upstream:8474"})
	server := toxiclient.NewClient(rig.api)
	proxies, err := server.Proxies()
	require.NoError(t, err)
	assert.Len(t, proxies, 2)
	require.NoError(t, l.Close())
	proxies, err = server.Proxies()
	require.NoError(t, err)
	assert.Empty(t, proxies)
	require.NoError(t, l.Close(), "closing twice is fine")
}
