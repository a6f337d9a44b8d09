package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/faultline-dev/faultline/runtime"
	"github.com/faultline-dev/faultline/runtime/images"
)

func TestRegistryKillRestartKeepsData(t *testing.T) {
	image, _ := requireImages(t)
	rt := newRuntime(t)
	ctx := context.Background()

	start := time.Now()
	p, err := rt.Start(ctx, registrySpec(t, "registry-1", image))
	require.NoError(t, err)
	t.Logf("start to /readyz 200: %s", time.Since(start).Round(time.Millisecond))
	code, err := probe(hostPort(t, p, registryAdminPort), "/readyz", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	assert.Positive(t, p.PID(), "the container's host pid")

	put := func(key, value string) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{hostPort(t, p, registryClientPort)}, DialTimeout: 10 * time.Second})
		require.NoError(t, err)
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = cli.Put(cctx, key, value)
		require.NoError(t, err)
	}
	get := func(key string) string {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{hostPort(t, p, registryClientPort)}, DialTimeout: 10 * time.Second})
		require.NoError(t, err)
		defer cli.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := cli.Get(cctx, key)
		require.NoError(t, err)
		if len(resp.Kvs) == 0 {
			return ""
		}
		return string(resp.Kvs[0].Value)
	}
	put("/faultline/test/survives", "restart")

	start = time.Now()
	require.NoError(t, p.Kill())
	t.Logf("kill: container gone after %s", time.Since(start).Round(time.Millisecond))
	assert.False(t, p.Running())
	assert.ErrorContains(t, p.ExitErr(), "137")
	assert.ErrorIs(t, p.Kill(), runtime.ErrNotRunning, "a dead container cannot be killed again")
	assert.ErrorIs(t, p.Pause(), runtime.ErrNotRunning)
	_, err = probe(hostPort0(p, registryAdminPort), "/readyz", time.Second)
	assert.Error(t, err, "nothing answers after a kill")

	start = time.Now()
	require.NoError(t, p.Restart(ctx))
	t.Logf("restart to /readyz 200: %s", time.Since(start).Round(time.Millisecond))
	assert.True(t, p.Running())
	assert.Equal(t, "restart", get("/faultline/test/survives"), "the data volume survives a SIGKILL and restart")

	require.NoError(t, p.Stop(ctx))
	assert.False(t, p.Running())
	assert.NoError(t, p.ExitErr(), "faultline exits 0 on SIGTERM")
	assert.NoError(t, p.Stop(ctx), "stopping a stopped container is not an error")

	logs, err := os.ReadFile(p.(runtime.Specced).Spec().LogFile)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(logs), `"component starting"`), "one start line per run, no duplicates:\n%s", logs)
}

// hostPort0 returns the published address or an address that refuses connections.
func hostPort0(p runtime.Process, port int) string {
	addr, err := p.(runtime.HostPorter).HostPort(port)
	if err != nil {
		return "127.0.0.1:1"
	}
	return addr
}

func TestPauseResume(t *testing.T) {
	image, _ := requireImages(t)
	rt := newRuntime(t)
	ctx := context.Background()
	p, err := rt.Start(ctx, registrySpec(t, "registry-1", image))
	require.NoError(t, err)
	admin := hostPort(t, p, registryAdminPort)

	start := time.Now()
	require.NoError(t, p.Pause())
	require.Eventually(t, func() bool {
		_, err := probe(admin, "/readyz", 300*time.Millisecond)
		return err != nil
	}, 20*time.Second, 50*time.Millisecond, "a paused container does not answer")
	t.Logf("pause: /readyz times out %s after Pause", time.Since(start).Round(time.Millisecond))
	assert.True(t, p.Running(), "a paused container still runs")
	require.NoError(t, p.Pause(), "pausing twice is not an error")

	start = time.Now()
	require.NoError(t, p.Resume())
	require.Eventually(t, func() bool {
		code, err := probe(admin, "/readyz", time.Second)
		return err == nil && code == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "a resumed container answers again")
	t.Logf("resume: /readyz answers %s after Resume", time.Since(start).Round(time.Millisecond))
	require.NoError(t, p.Resume(), "resuming a running container is not an error")

	// A paused container must still die on Kill (the engine thaws it for SIGKILL).
	require.NoError(t, p.Pause())
	start = time.Now()
	require.NoError(t, p.Kill())
	t.Logf("kill of a paused container: gone after %s", time.Since(start).Round(time.Millisecond))
	assert.False(t, p.Running())
}

func TestDisconnectPartitionsFromPeers(t *testing.T) {
	image, toxi := requireImages(t)
	rt := newRuntime(t)
	ctx := context.Background()
	reg, err := rt.Start(ctx, registrySpec(t, "registry-1", image))
	require.NoError(t, err)
	proxy, err := rt.Start(ctx, toxiproxySpec("toxiproxy", toxi, nil))
	require.NoError(t, err)

	// The proxy dials the registry by its alias from inside the network: a
	// container-to-container path that the partition must cut.
	body, _ := json.Marshal(map[string]any{
		"name": "registry-admin", "listen": "0.0.0.0:9000", "upstream": "registry-1:8081", "enabled": true,
	})
	resp, err := http.Post("http://"+hostPort(t, proxy, ToxiproxyAPIPort)+"/proxies", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	through := hostPort(t, proxy, 9000)
	require.Eventually(t, func() bool {
		code, err := probe(through, "/readyz", time.Second)
		return err == nil && code == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "the registry answers through the proxy")

	part, ok := reg.(runtime.Partitioner)
	require.True(t, ok)
	start := time.Now()
	require.NoError(t, part.Disconnect(ctx))
	require.Eventually(t, func() bool {
		code, err := probe(through, "/readyz", time.Second)
		return err != nil || code != http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "a peer on the network cannot reach a disconnected container")
	t.Logf("disconnect: peer path fails %s after Disconnect", time.Since(start).Round(time.Millisecond))
	assert.True(t, reg.Running(), "a partitioned container keeps running")
	_, err = probe(hostPort0(reg, registryAdminPort), "/readyz", time.Second)
	assert.Error(t, err, "the host's published port is cut off too")
	require.NoError(t, part.Disconnect(ctx), "disconnecting twice is not an error")

	start = time.Now()
	require.NoError(t, part.Reconnect(ctx))
	require.Eventually(t, func() bool {
		code, err := probe(through, "/readyz", time.Second)
		return err == nil && code == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "the alias resolves and answers again after Reconnect")
	t.Logf("reconnect: peer path answers %s after Reconnect", time.Since(start).Round(time.Millisecond))
	require.NoError(t, part.Reconnect(ctx), "reconnecting twice is not an error")
	require.Eventually(t, func() bool {
		addr, err := reg.(runtime.HostPorter).HostPort(registryAdminPort)
		if err != nil {
			return false
		}
		code, err := probe(addr, "/readyz", time.Second)
		return err == nil && code == http.StatusOK
	}, 20*time.Second, 100*time.Millisecond, "the host port answers again after Reconnect")
}

func TestCloseRemovesEverything(t *testing.T) {
	_, toxi := requireImages(t)
	ctx := context.Background()
	rt, err := New(ctx, WithGrace(time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = Clean(context.Background(), rt.RunID()) })
	a, err := rt.Start(ctx, toxiproxySpec("proxy-a", toxi, &runtime.Mount{Volume: "shared", Target: "/state"}))
	require.NoError(t, err)
	b, err := rt.Start(ctx, toxiproxySpec("proxy-b", toxi, &runtime.Mount{Volume: "shared", Target: "/state"}))
	require.NoError(t, err)
	_, err = rt.Start(ctx, toxiproxySpec("proxy-a", toxi, nil))
	assert.ErrorContains(t, err, "already running", "names are unique among running containers")
	require.NoError(t, a.Kill())

	c, n, v := leftovers(t, rt.RunID())
	assert.Equal(t, []int{2, 1, 1}, []int{c, n, v}, "containers (one killed), the network, one shared volume")
	assert.Len(t, rt.Processes(), 2)
	require.NoError(t, b.Pause(), "Close must also end a frozen container")

	require.NoError(t, rt.Close(ctx))
	c, n, v = leftovers(t, rt.RunID())
	assert.Equal(t, []int{0, 0, 0}, []int{c, n, v}, "Close leaves no labelled container, network or volume")
	_, err = rt.Start(ctx, toxiproxySpec("proxy-c", toxi, nil))
	assert.ErrorIs(t, err, runtime.ErrClosed)
	require.NoError(t, rt.Close(ctx), "closing twice is safe")
}

func TestStartFailureLeavesNothing(t *testing.T) {
	image, _ := requireImages(t)
	rt := newRuntime(t, WithImage(image))
	ctx := context.Background()
	s := registrySpec(t, "broken", "")
	s.Container.Files = nil // serve cannot read its config and exits 1
	start := time.Now()
	_, err := rt.Start(ctx, s)
	require.Error(t, err)
	t.Logf("a container that exits at start fails Start after %s: %v", time.Since(start).Round(time.Millisecond), err)
	c, _, _ := leftovers(t, rt.RunID())
	assert.Zero(t, c, "the failed container is removed")
	assert.Empty(t, rt.Processes())
}

func TestCleanAfterKilledHarness(t *testing.T) {
	_, toxi := requireImages(t)
	runID := "killed-" + NewRunID()
	t.Cleanup(func() { _, _ = Clean(context.Background(), runID) })

	killChild(t, startChild(t, childEnv+"="+runID, childImageEnv+"="+toxi))

	c, n, v := leftovers(t, runID)
	require.Equal(t, []int{1, 1, 1}, []int{c, n, v}, "a SIGKILLed harness leaves its container, network and volume")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Clean(ctx, runID)
	require.NoError(t, err)
	assert.Equal(t, []string{"faultline-" + runID + "-toxiproxy"}, rep.Containers)
	assert.Equal(t, []string{"faultline-" + runID}, rep.Networks)
	assert.Equal(t, []string{"faultline-" + runID + "-state"}, rep.Volumes)
	assert.Empty(t, rep.Images, "images are kept unless asked for")
	c, n, v = leftovers(t, runID)
	assert.Equal(t, []int{0, 0, 0}, []int{c, n, v}, "Clean leaves nothing with the run's label")

	rep, err = Clean(ctx, runID)
	require.NoError(t, err)
	assert.True(t, rep.Empty(), "a second Clean finds nothing")
}

func TestBuildImageCacheHit(t *testing.T) {
	_, toxi := requireImages(t)
	ctx := context.Background()
	p, err := newProvider(nil)
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	list := func() []string {
		imgs, err := p.Client().ImageList(ctx, client.ImageListOptions{Filters: labelFilter("")})
		require.NoError(t, err)
		var ids []string
		for _, i := range imgs.Items {
			ids = append(ids, i.ID)
		}
		return ids
	}
	before := list()
	require.NotEmpty(t, before, "built images carry the managed label")

	start := time.Now()
	got, err := BuildToxiproxyImage(ctx)
	require.NoError(t, err)
	t.Logf("cached BuildToxiproxyImage: %s", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, toxi, got, "same binary, same tag")
	assert.ElementsMatch(t, before, list(), "a cache hit creates no image")
	inspect, err := p.Client().ImageInspect(ctx, got)
	require.NoError(t, err)
	assert.Equal(t, "true", inspect.Config.Labels[LabelManaged])
	assert.Equal(t, []string{ToxiproxyPath}, inspect.Config.Entrypoint)
}

func TestPingWithoutEngine(t *testing.T) {
	// testcontainers falls back to the default socket when DOCKER_HOST is dead, so an
	// absent engine is simulated with a client of its own on a socket that does not exist.
	cli, err := client.New(client.WithHost("unix://" + t.TempDir() + "/docker.sock"))
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = ping(ctx, cli)
	require.Error(t, err)
	assert.ErrorContains(t, err, "ping docker engine: ")
	assert.ErrorContains(t, err, "docker.sock", "the error names the endpoint it tried")
}

func BenchmarkBuildToxiproxyImageCached(b *testing.B) {
	requireDocker(b)
	ctx := context.Background()
	if _, err := BuildToxiproxyImage(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := BuildToxiproxyImage(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKillRestart measures a crash fault and its heal on a container with a
// readiness probe: the cost a crash-loop scenario pays per cycle.
func BenchmarkKillRestart(b *testing.B) {
	requireDocker(b)
	ctx := context.Background()
	toxi, err := BuildToxiproxyImage(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rt, err := New(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close(context.Background()) })
	p, err := rt.Start(ctx, toxiproxySpec("toxiproxy", toxi, nil))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := p.Kill(); err != nil {
			b.Fatal(err)
		}
		if err := p.Restart(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReaperRemovesARunWhoseHarnessWasKilled: with a reaper, a SIGKILLed harness's
// container, network and volume are gone within the grace period, with no command run.
func TestReaperRemovesARunWhoseHarnessWasKilled(t *testing.T) {
	faultline, toxi := requireImages(t)
	runID := "reaped-" + NewRunID()
	t.Cleanup(func() { _, _ = Clean(context.Background(), runID) })

	child := startChild(t, childEnv+"="+runID, childImageEnv+"="+toxi, childReaperEnv+"="+faultline)
	c, n, v := leftovers(t, runID)
	require.Equal(t, []int{2, 1, 1}, []int{c, n, v}, "the container and the reaper, the network, the volume")
	killChild(t, child)
	killed := time.Now()
	for {
		c, n, v = leftovers(t, runID)
		if c+n+v == 0 {
			break
		}
		require.Less(t, time.Since(killed), 30*time.Second, "the reaper removed the run (left: %d containers, %d networks, %d volumes)", c, n, v)
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("run removed by its reaper %s after the harness was killed (grace 1s)", time.Since(killed).Round(100*time.Millisecond))
}

// TestReaperLeavesARunThatIsClosedNormally: Close removes everything (the reaper first),
// and the reaper does not outlive it.
func TestReaperLeavesARunThatIsClosedNormally(t *testing.T) {
	faultline, toxi := requireImages(t)
	rt := newRuntime(t, WithReaper(faultline, time.Second))
	_, err := rt.Start(context.Background(), toxiproxySpec("toxiproxy", toxi, nil))
	require.NoError(t, err)
	c, _, _ := leftovers(t, rt.RunID())
	require.Equal(t, 2, c, "the container and the reaper")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, rt.Close(ctx))
	c, n, v := leftovers(t, rt.RunID())
	assert.Equal(t, []int{0, 0, 0}, []int{c, n, v})
}

// TestReaperThatFailsFailsTheStart: the reaper starts in the background; when it cannot
// start, the Start that would have run unwatched fails with its error, and Close still
// removes the container that was started meanwhile.
func TestReaperThatFailsFailsTheStart(t *testing.T) {
	_, toxi := requireImages(t)
	rt := newRuntime(t, WithReaper("faultline:no-such-image-"+NewRunID(), time.Second))
	_, err := rt.Start(context.Background(), toxiproxySpec("toxiproxy", toxi, nil))
	require.ErrorContains(t, err, "start reaper")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, rt.Close(ctx))
	c, n, v := leftovers(t, rt.RunID())
	assert.Equal(t, []int{0, 0, 0}, []int{c, n, v})
}

// startChild runs this test binary as a harness (runChild) with env added and returns once
// it says it is ready: its containers run.
func startChild(t *testing.T, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "the child harness started its containers")
	require.Equal(t, "ready\n", line)
	return cmd
}

// killChild SIGKILLs the child harness: no Close, no cleanup of its own.
func killChild(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
}

// TestBuildImageSecondStartBuildsNothing: the faultline command looks the image of its own
// binary up and starts from it: no go build (whose up-to-date check alone costs a second
// or two of every start) and no image build. The first call, with an empty cache, builds
// the binary (and the image, unless the engine holds it already); the second does
// neither and returns the same tag. The binary's id stands in for the command's.
func TestBuildImageSecondStartBuildsNothing(t *testing.T) {
	requireDocker(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	id, err := goBuildID(exe)
	require.NoError(t, err, "the test binary carries a Go build id")
	require.NotEmpty(t, id)

	oldID, oldDir := selfID, imageCacheDir
	t.Cleanup(func() { selfID, imageCacheDir = oldID, oldDir })
	cache := t.TempDir()
	selfID = func() string { return id }
	imageCacheDir = func() (string, error) { return cache, nil }

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	goBefore := goBuilds.Load()
	first, err := BuildImage(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), goBuilds.Load()-goBefore, "an empty cache asks go build once")

	goBefore, imgBefore := goBuilds.Load(), imageBuilds.Load()
	start := time.Now()
	second, err := BuildImage(ctx)
	require.NoError(t, err)
	t.Logf("second BuildImage: %s", time.Since(start).Round(time.Millisecond))
	assert.Equal(t, first, second, "same binary, same image")
	assert.Zero(t, goBuilds.Load()-goBefore, "the second start runs no go build")
	assert.Zero(t, imageBuilds.Load()-imgBefore, "the second start builds no image")

	// A binary that is not the command (no id) keeps asking go build: its id would not
	// change with cmd/faultline's source.
	selfID = func() string { return "" }
	goBefore = goBuilds.Load()
	third, err := BuildImage(ctx)
	require.NoError(t, err)
	assert.Equal(t, first, third)
	assert.Equal(t, int64(1), goBuilds.Load()-goBefore)
}

func TestGoBuildIDOfANonGoFile(t *testing.T) {
	_, err := goBuildID("/bin/sh")
	require.Error(t, err)
	_, err = goBuildID(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
}

// TestPrepareThenStartStartsThePreparedContainer: Prepare creates the container (files
// written, nothing running) and the Start of the same spec starts that very container
// instead of creating another; a prepared container is not listed before it starts, and
// Close removes one that never started.
func TestPrepareThenStartStartsThePreparedContainer(t *testing.T) {
	_, toxi := requireImages(t)
	ctx := context.Background()
	rt, err := New(ctx, WithGrace(time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = Clean(context.Background(), rt.RunID()) })

	s := toxiproxySpec("proxy-a", toxi, nil)
	s.Container.Files = []runtime.File{{Target: "/etc/faultline/a.json", Content: []byte(`{"a":1}`)}}
	require.NoError(t, rt.Prepare(ctx, s))
	require.NoError(t, rt.Prepare(ctx, toxiproxySpec("never-started", toxi, nil)))
	assert.Error(t, rt.Prepare(ctx, s), "a name is prepared once")
	assert.Empty(t, rt.Processes(), "prepared containers are not processes yet")
	c, _, _ := leftovers(t, rt.RunID())
	assert.Equal(t, 2, c, "both containers exist")
	rt.mu.Lock()
	preparedID := rt.procs["proxy-a"].id
	rt.mu.Unlock()

	p, err := rt.Start(ctx, s)
	require.NoError(t, err)
	assert.Equal(t, preparedID, p.(*Process).ContainerID(), "Start started the prepared container")
	assert.True(t, p.Running())
	assert.Len(t, rt.Processes(), 1)
	c, _, _ = leftovers(t, rt.RunID())
	assert.Equal(t, 2, c, "no second container was created")

	require.NoError(t, rt.Close(ctx))
	c, n, v := leftovers(t, rt.RunID())
	assert.Equal(t, []int{0, 0, 0}, []int{c, n, v}, "Close removes the started and the never-started container")
}

func TestFilesArchiveHasParentsOnce(t *testing.T) {
	b, err := filesArchive([]runtime.File{
		{Target: "/config/a.json", Content: []byte("a")},
		{Target: "/config/b.json", Content: []byte("b"), Mode: 0o600},
		{Target: "/secrets/jwt.key", Content: []byte("k"), Mode: 0o600},
	})
	require.NoError(t, err)
	tr := tar.NewReader(bytes.NewReader(b))
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, fmt.Sprintf("%s %o", h.Name, h.Mode))
	}
	assert.Equal(t, []string{"config/ 755", "config/a.json 644", "config/b.json 600", "secrets/ 755", "secrets/jwt.key 600"}, got)
}

// TestLoadImageIsTheRegistryImage: the image the engine runs is the OCI image `faultline
// images push` sends (runtime/images), loaded as it is: same entrypoint, arguments, working
// directory, labels and directories, and it runs.
func TestLoadImageIsTheRegistryImage(t *testing.T) {
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := images.ModuleRoot(ctx, "go")
	require.NoError(t, err)
	bin, _, err := images.Build(ctx, "go", root, images.Toxiproxy, nil)
	require.NoError(t, err)
	img, err := images.Image(images.Toxiproxy, bin, managedLabels(""))
	require.NoError(t, err)
	p, err := newProvider(nil)
	require.NoError(t, err)
	defer p.Close()
	tag := fmt.Sprintf("faultline-load-test:%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = p.Client().ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true})
	})
	require.NoError(t, loadImage(ctx, p.Client(), img, tag))

	inspect, err := p.Client().ImageInspect(ctx, tag)
	require.NoError(t, err)
	assert.Equal(t, []string{images.ToxiproxyPath}, inspect.Config.Entrypoint)
	assert.Equal(t, images.Toxiproxy.Cmd, inspect.Config.Cmd)
	assert.Equal(t, "/data", inspect.Config.WorkingDir)
	assert.Equal(t, "true", inspect.Config.Labels[LabelManaged])
	d, err := img.ConfigName()
	require.NoError(t, err)
	assert.Equal(t, d.String(), inspect.ID, "the engine holds exactly the OCI image")

	// A broken archive is an error, not a silent no-op.
	err = loadImage(ctx, p.Client(), brokenImage{img}, tag+"-broken")
	require.Error(t, err)
}

// brokenImage fails to give its layers, as a truncated download would.
type brokenImage struct{ v1.Image }

func (brokenImage) Layers() ([]v1.Layer, error) { return nil, errors.New("no layers") }
