package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/console"
	"github.com/faultline-dev/faultline/undo"
)

func TestConsoleRefusesANonLoopbackAddress(t *testing.T) {
	bin := faultlineBinary(t)
	cmd := exec.Command(bin, "console", "--addr", "0.0.0.0:0", "--dir", t.TempDir())
	cmd.Env = append(os.Environ(), undo.DirEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	assert.Equal(t, 3, ee.ExitCode())
	assert.Contains(t, string(out), "loopback only")
}

// startConsole starts `faultline console`, injects a latency on gateway->product through
// its API as the page does, and returns the command and its undo record.
func startConsole(t *testing.T, bin string, env []string) (*exec.Cmd, undo.Record) {
	t.Helper()
	cmd, rec, _ := startConsoleOn(t, bin, env, "gateway->product")
	require.NotEmpty(t, rec.Processes)
	return cmd, rec
}

// consoleAPI calls a started console's API as its page does: method, path and body in,
// status and body out.
type consoleAPI func(method, path, body string) (int, string)

// startConsoleOn starts `faultline console` with args, checks its page is served, injects
// a latency on link through its API as the page does, and returns the command and its
// undo record, and its API.
func startConsoleOn(t *testing.T, bin string, env []string, link string, args ...string) (*exec.Cmd, undo.Record, consoleAPI) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"console", "--dir", filepath.Join(t.TempDir(), "console")}, args...)...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "console: "); ok {
				urls <- u
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var url string
	select {
	case url = <-urls:
	case <-time.After(3 * time.Minute): // on docker: the images built first
		t.Fatal("the console printed no URL within 3 min")
	}
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(page), "<title>Faultline console</title>")
	csrf := regexp.MustCompile(`const CSRF = "([0-9a-f]+)"`).FindSubmatch(page)
	require.NotNil(t, csrf, "the page carries its anti-CSRF token")
	base := url[:strings.Index(url, "/?")]
	api := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set(console.CSRFHeader, string(csrf[1]))
		resp, err := client.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	code, body := api("POST", "/api/faults", `{"kind":"latency","params":{"target":"`+link+`","latency":"1500ms"}}`)
	require.Equal(t, http.StatusOK, code, "%s", body)

	paths, err := undo.Pending(envUndoDir(env))
	require.NoError(t, err)
	require.Len(t, paths, 1)
	rec, err := undo.Read(paths[0])
	require.NoError(t, err)
	require.Len(t, rec.Faults, 1, "the hand fault is in the undo record")
	assert.Equal(t, "latency", rec.Faults[0].Type)
	require.NotEmpty(t, rec.Proxies)
	return cmd, rec, api
}

// envUndoDir is the undo directory a command run with env uses: the last setting, as
// os/exec keeps the last of duplicate keys (the test's own environment may set one too).
func envUndoDir(env []string) string {
	for _, e := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(e, undo.DirEnv+"="); ok {
			return v
		}
	}
	return ""
}

// requireHealed checks that nothing of rec runs or accepts any more.
func requireHealed(t *testing.T, rec undo.Record, undoDir string) {
	t.Helper()
	left, err := undo.Pending(undoDir)
	require.NoError(t, err)
	assert.Empty(t, left, "the undo record is gone")
	for _, p := range rec.Processes {
		assert.False(t, p.Alive(), "%s (pid %d) is alive", p.Name, p.PID)
	}
	assert.Empty(t, undo.Marked(rec.RunID), "a process of the console is alive")
	for _, px := range rec.Proxies {
		conn, err := net.DialTimeout("tcp", px.Listen, 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
		}
		assert.Error(t, err, "proxy %s (%s) still accepts", px.Name, px.Listen)
	}
}

func TestConsoleStopsAndHeals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the reference system twice")
	}
	bin := faultlineBinary(t)
	t.Run("ctrl-c heals and stops everything", func(t *testing.T) {
		undoDir := t.TempDir()
		env := append(os.Environ(), undo.DirEnv+"="+undoDir)
		cmd, rec := startConsole(t, bin, env)
		require.NoError(t, cmd.Process.Signal(os.Interrupt))
		require.NoError(t, cmd.Wait(), "the console exits 0 on Ctrl-C")
		requireHealed(t, rec, undoDir)
	})
	t.Run("SIGKILL is healed by the next command", func(t *testing.T) {
		undoDir := t.TempDir()
		env := append(os.Environ(), undo.DirEnv+"="+undoDir)
		cmd, rec := startConsole(t, bin, env)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		next := exec.Command(bin, "version")
		next.Env = env
		healed, err := next.CombinedOutput()
		require.NoError(t, err, "%s", healed)
		assert.Contains(t, string(healed), "healed run "+rec.RunID)
		requireHealed(t, rec, undoDir)
	})
}

// TestConsoleOnATopology: `faultline console --topology FILE` starts a user's topology
// (harness/testdata's two httpd components and their web->api link) through the same
// pipeline, serves the page, takes a hand fault on the topology's link, and Ctrl-C heals
// and stops everything.
func TestConsoleOnATopology(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a topology's processes")
	}
	bin := faultlineBinary(t)
	tools := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(tools, "httpd"), "../../harness/testdata/custom/httpd").CombinedOutput()
	require.NoError(t, err, "build httpd: %s", out)
	const file = "../../harness/testdata/custom/link-latency.yaml"
	for _, tt := range []struct {
		name string
		args []string
		load bool
	}{
		{"the topology alone", []string{"--topology", file}, false},
		{"the scenario holding it, with its load's targets", []string{file}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			undoDir := t.TempDir()
			env := append(os.Environ(), undo.DirEnv+"="+undoDir, "PATH="+tools+string(os.PathListSeparator)+os.Getenv("PATH"))
			cmd, rec, api := startConsoleOn(t, bin, env, "web->api", tt.args...)
			var names []string
			for _, p := range rec.Processes {
				names = append(names, p.Name)
			}
			assert.ElementsMatch(t, []string{"api", "web"}, names, "the topology's components started")
			code, body := api("POST", "/api/load", `{"rate":20}`)
			if !tt.load {
				assert.Equal(t, http.StatusBadRequest, code, "no targets, no load: %s", body)
				assert.Contains(t, body, "no targets")
			} else {
				require.Equal(t, http.StatusOK, code, "%s", body)
				// The scenario's templated target, rendered by the started topology, answers
				// through web (slowed by the hand latency on web->api, 1.5 s, under the 3 s timeout).
				require.Eventually(t, func() bool {
					_, body := api("GET", "/api/state", "")
					var st console.State
					require.NoError(t, json.Unmarshal([]byte(body), &st))
					return st.Load != nil && st.Load.Issued-st.Load.Failed >= 5
				}, 20*time.Second, 200*time.Millisecond, "requests served")
			}
			require.NoError(t, cmd.Process.Signal(os.Interrupt))
			require.NoError(t, cmd.Wait(), "the console exits 0 on Ctrl-C")
			requireHealed(t, rec, undoDir)
		})
	}
}

func TestConsoleTopologyRefusals(t *testing.T) {
	bin := faultlineBinary(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"scenario and topology", []string{"baseline", "--topology", "../../harness/testdata/custom/link-latency.yaml"}, "not both"},
		{"no such file", []string{"--topology", "no-such-topology.yaml"}, "no-such-topology.yaml"},
		{"a malformed topology", []string{"--topology", "../../harness/testdata/malformed.yaml"}, "malformed.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"console", "--dir", t.TempDir()}, tt.args...)...)
			cmd.Env = append(os.Environ(), undo.DirEnv+"="+t.TempDir())
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "%s", out)
			assert.Equal(t, 3, ee.ExitCode(), "%s", out)
			assert.Contains(t, string(out), tt.want)
		})
	}
}
