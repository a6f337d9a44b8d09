package docker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime"
)

func TestHostImageValidate(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, []byte("data"), 0o644))
	exe := filepath.Join(dir, "exe")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/true\n"), 0o755))
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name string
		h    HostImage
		want []string
	}{
		{"valid", HostImage{Binaries: []string{exe}, Files: []string{plain, dir}, Dirs: []string{"/run"}}, nil},
		{"zero value", HostImage{}, []string{"binaries is empty"}},
		{"only files", HostImage{Files: []string{plain}}, []string{"binaries is empty"}},
		{"relative binary", HostImage{Binaries: []string{"bin/redis-server"}}, []string{
			`binaries[0] "bin/redis-server" is not an absolute path`,
		}},
		{"empty binary", HostImage{Binaries: []string{""}}, []string{`binaries[0] "" is not an absolute path`}},
		{"missing binary", HostImage{Binaries: []string{missing}}, []string{
			fmt.Sprintf("binaries[0] %q does not exist", missing),
		}},
		{"binary is not executable", HostImage{Binaries: []string{plain}}, []string{
			fmt.Sprintf("binaries[0] %q is not executable", plain),
		}},
		{"binary is a directory", HostImage{Binaries: []string{dir}}, []string{
			fmt.Sprintf("binaries[0] %q is not a regular file", dir),
		}},
		{"files and dirs", HostImage{
			Binaries: []string{exe},
			Files:    []string{"etc/mime.types", missing, "/", "/dev/null"},
			Dirs:     []string{"var/lib/nginx", "/run"},
		}, []string{
			`files[0] "etc/mime.types" is not an absolute path`,
			fmt.Sprintf("files[1] %q does not exist", missing),
			`files[2] "/" is the root directory`,
			`files[3] "/dev/null" is neither a regular file nor a directory`,
			`dirs[0] "var/lib/nginx" is not an absolute path`,
		}},
		{"every problem at once", HostImage{
			Binaries: []string{"nginx", missing, plain},
			Files:    []string{"mime.types"},
			Dirs:     []string{"run"},
		}, []string{
			`binaries[0] "nginx" is not an absolute path`,
			fmt.Sprintf("binaries[1] %q does not exist", missing),
			fmt.Sprintf("binaries[2] %q is not executable", plain),
			`files[0] "mime.types" is not an absolute path`,
			`dirs[0] "run" is not an absolute path`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, err := range tt.h.Validate() {
				got = append(got, err.Error())
			}
			assert.Equal(t, tt.want, got)
			if tt.want == nil {
				return
			}
			// BuildHostImage checks before it touches ldd or the engine, so this needs neither.
			_, err := BuildHostImage(context.Background(), tt.h)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "validate host image: "), err.Error())
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestHostImageParseLDD(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		libs    []string
		static  bool
		wantErr string
	}{
		{"dynamic", "\tlinux-vdso.so.1 (0x00007ffd5b3e1000)\n" +
			"\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f2c51641000)\n" +
			"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c50e1e000)\n" +
			"\t/lib64/ld-linux-x86-64.so.2 (0x00007f2c51927000)\n",
			[]string{"/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}, false, ""},
		{"old vdso form and duplicates", "\tlinux-gate.so.1 =>  (0xf7f2e000)\n" +
			"\tlibc.so.6 => /lib/libc.so.6 (0x1)\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n",
			[]string{"/lib/libc.so.6"}, false, ""},
		{"path with a space", "\tlibx.so.1 => /opt/my libs/libx.so.1 (0x1)\n", []string{"/opt/my libs/libx.so.1"}, false, ""},
		{"statically linked", "\tstatically linked\n", nil, true, ""},
		{"not dynamic", "\n\tnot a dynamic executable\n", nil, true, ""},
		{"missing library", "\tlibfoo.so.1 => not found\n\tlibbar.so.2 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n",
			nil, false, "libraries not found: libfoo.so.1, libbar.so.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			libs, static, err := parseLDD(tt.out)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.libs, libs)
			assert.Equal(t, tt.static, static)
		})
	}
}

// TestHostImageTree checks the layout without an engine: binary, libraries, defaults,
// parents and modes, and that the tag moves with the content and the dirs.
func TestHostImageTree(t *testing.T) {
	if _, err := os.Stat("/usr/bin/true"); err != nil {
		t.Skip("no /usr/bin/true on this host")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	require.NoError(t, os.MkdirAll(filepath.Join(conf, "sub"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(conf, "sub", "a.conf"), []byte("a"), 0o600))
	require.NoError(t, os.Symlink("sub/a.conf", filepath.Join(conf, "link.conf")))
	require.NoError(t, os.Symlink("..", filepath.Join(conf, "sub", "up"))) // a loop

	h := HostImage{Binaries: []string{"/usr/bin/true"}, Files: []string{conf}, Dirs: []string{"/run", "/tmp"}}
	var log bytes.Buffer
	tree, err := collectHostTree(context.Background(), h, &log)
	require.NoError(t, err)
	for path, want := range map[string]struct {
		dir  bool
		mode int64
	}{
		"/usr/bin/true": {false, 0o755}, "/usr": {true, 0o755}, "/run": {true, 0o755}, "/tmp": {true, 0o1777},
		"/etc/passwd": {false, 0o644}, "/etc/group": {false, 0o644},
		conf: {true, 0o750}, filepath.Join(conf, "sub", "a.conf"): {false, 0o600}, filepath.Join(conf, "link.conf"): {false, 0o600},
	} {
		e, ok := tree[path]
		if assert.True(t, ok, "image has %s", path) {
			assert.Equal(t, want.dir, e.dir, path)
			assert.Equal(t, want.mode, e.mode, "mode of %s", path)
		}
	}
	assert.NotContains(t, tree, filepath.Join(conf, "sub", "up"))
	assert.Contains(t, log.String(), "symlink loop")
	var loader bool
	for path := range tree {
		loader = loader || strings.Contains(path, "ld-linux")
	}
	assert.True(t, loader, "the dynamic loader is copied")

	sum, err := tree.digest(nil)
	require.NoError(t, err)
	_, built, err := hostBuildContext(tree)
	require.NoError(t, err)
	assert.Equal(t, sum, built, "the context hashes as the lookup did")

	h.Dirs = append(h.Dirs, "/var/lib/x")
	tree2, err := collectHostTree(context.Background(), h, io.Discard)
	require.NoError(t, err)
	sum2, err := tree2.digest(nil)
	require.NoError(t, err)
	assert.NotEqual(t, sum, sum2, "a new dir is a new image")

	require.NoError(t, os.WriteFile(filepath.Join(conf, "sub", "a.conf"), []byte("b"), 0o600))
	sum3, err := tree2.digest(nil)
	require.NoError(t, err)
	assert.NotEqual(t, sum2, sum3, "new content is a new image")
}

// requireHostBinary skips when the Debian package that ships path is not installed.
func requireHostBinary(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skip("host image: " + path + " is not installed (apt-get install it)")
	}
}

// buildHostImage builds h, logs time and size, and checks that a second build of the same
// input finds the image without building.
func buildHostImage(t *testing.T, h HostImage) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	tag, err := BuildHostImage(ctx, h)
	require.NoError(t, err)
	built := time.Since(start)

	p, err := newProvider(nil)
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	info, err := p.Client().ImageInspect(ctx, tag)
	require.NoError(t, err)
	assert.Equal(t, "true", info.Config.Labels[LabelManaged])
	// The first call builds unless an earlier run (or another caller) already did.
	t.Logf("first call: %s in %s, image size %.1f MB", tag, built.Round(time.Millisecond), float64(info.Size)/1e6)

	var buildLog bytes.Buffer
	start = time.Now()
	again, err := BuildHostImage(ctx, h, WithBuildLog(&buildLog))
	require.NoError(t, err)
	t.Logf("same input again: %s in %s", again, time.Since(start).Round(time.Millisecond))
	assert.Equal(t, tag, again)
	assert.Empty(t, buildLog.String(), "an unchanged set is found, not rebuilt")
	return tag
}

// dumpLog shows a container's output when a test fails: a missing library or account
// shows there and nowhere else.
func dumpLog(t *testing.T, path string) {
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(path)
			t.Logf("%s:\n%s", filepath.Base(path), b)
		}
	})
}

func TestHostImageRedis(t *testing.T) {
	requireDocker(t)
	requireHostBinary(t, "/usr/bin/redis-server")
	tag := buildHostImage(t, HostImage{Binaries: []string{"/usr/bin/redis-server"}})

	rt := newRuntime(t)
	logFile := filepath.Join(t.TempDir(), "redis.log")
	dumpLog(t, logFile)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := rt.Start(ctx, runtime.Spec{
		Name: "redis", Command: "/usr/bin/redis-server",
		Args:      []string{"--port", "6379", "--bind", "0.0.0.0", "--save", "", "--appendonly", "no", "--protected-mode", "no"},
		LogFile:   logFile,
		Container: &runtime.ContainerSpec{Image: tag, Ports: []int{6379}},
	})
	require.NoError(t, err)
	addr := hostPort(t, p, 6379)

	// The published port's forwarder accepts before redis listens, so retry until it answers.
	var reply string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if reply, err = redisPing(addr); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, err)
	assert.Equal(t, "+PONG", reply)
}

// redisPing sends an inline PING and returns the first reply line.
func redisPing(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func TestHostImageNginx(t *testing.T) {
	requireDocker(t)
	requireHostBinary(t, "/usr/sbin/nginx")
	tag := buildHostImage(t, HostImage{
		Binaries: []string{"/usr/sbin/nginx"},
		Dirs:     []string{"/var/lib/nginx", "/var/log/nginx", "/run"},
	})

	rt := newRuntime(t)
	logFile := filepath.Join(t.TempDir(), "nginx.log")
	dumpLog(t, logFile)
	const conf = "/etc/faultline-nginx.conf"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := rt.Start(ctx, runtime.Spec{
		Name: "nginx", Command: "/usr/sbin/nginx",
		Args:    []string{"-g", "daemon off;", "-e", "stderr", "-c", conf},
		LogFile: logFile,
		Container: &runtime.ContainerSpec{
			Image: tag, Ports: []int{8080},
			Files: []runtime.File{{Target: conf, Content: []byte(
				"pid /run/nginx.pid;\nevents {}\nhttp { server { listen 8080; location / { return 200 \"ok\\n\"; } } }\n")}},
			Ready: &runtime.HTTPReady{Port: 8080, Path: "/"},
		},
	})
	require.NoError(t, err)
	addr := hostPort(t, p, 8080)

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok\n", string(body))

	// The workers run as nobody: the master found the account in the image's /etc/passwd.
	// ps on the host names uid 65534 "nobody" too (Debian's passwd).
	top, err := rt.cli.ContainerTop(ctx, p.(*Process).ContainerID(), client.ContainerTopOptions{})
	require.NoError(t, err)
	var worker bool
	for _, proc := range top.Processes {
		line := strings.Join(proc, " ")
		worker = worker || (len(proc) > 0 && proc[0] == "nobody" && strings.Contains(line, "worker process"))
	}
	assert.True(t, worker, "an nginx worker runs as nobody: %v", top.Processes)
}
