package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/harness"
	"github.com/faultline-dev/faultline/history"
	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/result"
)

func TestValidateMalformed(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: Bad Name\ndescription: x\nload:\n  rate: fast\n  duration: 5s\n  mix: {browse: 1, teleport: 2}\n"), 0o644))
	good, err := filepath.Abs(filepath.Join("..", "..", "scenarios", "baseline.yaml"))
	require.NoError(t, err)

	out, err := run(t, "validate", good, bad)
	require.Error(t, err)
	assert.Equal(t, result.ExitError, exitCode(err))
	assert.Contains(t, out, good+": ok")
	lines := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, bad+":") {
			lines++
			assert.Regexp(t, `^`+regexpQuote(bad)+`:\d+:\d+: .+`, l)
		}
	}
	assert.Equal(t, 3, lines, "name, rate and mix each get a line:\n%s", out)
	assert.Contains(t, out, "bad.yaml:4:9: ")
	assert.Contains(t, out, "(hint: ")

	out, err = run(t, "validate", good)
	require.NoError(t, err, out)
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestSchemaPrintsJSONSchema(t *testing.T) {
	out, err := run(t, "schema")
	require.NoError(t, err)
	assert.Contains(t, out, `"$schema"`)
	assert.Contains(t, out, `"faults"`)
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name string
		v    result.Verdict
		want int
	}{
		{"passed", result.Passed, 0},
		{"failed", result.Failed, 1},
		{"invalid", result.Invalid, 2},
		{"error", result.Error, 3},
		{"aborted", result.Aborted, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exitCode(verdictErr(tt.v, "why"))
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := run(t, "run")
	assert.Equal(t, result.ExitError, exitCode(err), "run without a scenario is a usage error")
	_, err = run(t, "run", "no-such-scenario")
	assert.Equal(t, result.ExitError, exitCode(err))
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// faultlineBinary builds this command once per test binary: the interrupt test needs a
// real `faultline run` process to send SIGINT to.
func faultlineBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "faultline-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "faultline")
		gotool, err := exec.LookPath("go")
		if err != nil {
			gotool = "/usr/local/go/bin/go"
		}
		out, err := exec.Command(gotool, "build", "-o", buildBin, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	require.NoError(t, buildErr)
	return buildBin
}

func TestRunInterruptedMidFault(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole system")
	}
	bin := faultlineBinary(t)
	runDir := filepath.Join(t.TempDir(), "run")
	var out bytes.Buffer
	cmd := exec.Command(bin, "run", filepath.Join("testdata", "interrupt.yaml"), "--dir", runDir)
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})

	// Wait until the fault is in: its inject event is in the history.
	require.Eventually(t, func() bool {
		r, err := history.Open(filepath.Join(runDir, harness.HistoryFile))
		if err != nil {
			return false
		}
		defer r.Close()
		for ev, err := range r.Events() {
			if err != nil {
				return false
			}
			if f, ok := ev.AsFault(); ok && f.Action == history.FaultInject {
				return true
			}
		}
		return false
	}, 90*time.Second, 100*time.Millisecond, "the fault was never injected:\n%s", &out)
	var procs []harness.ProcessRecord
	b, err := os.ReadFile(filepath.Join(runDir, harness.ProcessesFile))
	require.NoError(t, err)
	require.NoError(t, jsonUnmarshal(b, &procs))
	require.NotEmpty(t, procs)
	gw, err := config.Load(filepath.Join(runDir, "system", "config", "gateway-1.json"))
	require.NoError(t, err)
	require.True(t, gw.Routed)
	proxy := gw.Registry[0]
	conn, err := net.Dial("tcp", proxy)
	require.NoError(t, err, "the gateway's registry proxy is up while the run goes")
	_ = conn.Close()

	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	select {
	case err = <-exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("faultline run did not exit after one SIGINT:\n%s", &out)
	}
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "output:\n%s", &out)
	assert.Equal(t, result.Aborted.ExitCode(), ee.ExitCode(), "output:\n%s", &out)

	res, err := result.LoadFile(filepath.Join(runDir, harness.ResultFile))
	require.NoError(t, err)
	assert.Equal(t, result.Aborted, res.Verdict)
	require.Len(t, res.Faults, 1)
	assert.NotZero(t, res.Faults[0].Healed, "the fault was healed on the way out")
	assert.Less(t, res.Faults[0].Healed.Std(), res.Faults[0].Injected.Std()+20*time.Second, "healed at the interrupt, not at its planned end")

	for _, p := range procs {
		require.NotZero(t, p.PID, p.Name)
		err := syscall.Kill(p.PID, 0)
		assert.ErrorIs(t, err, syscall.ESRCH, "%s (pid %d) is still alive", p.Name, p.PID)
	}
	_, err = net.DialTimeout("tcp", proxy, time.Second)
	assert.Error(t, err, "the proxies (and any toxic on them) are gone with the run")
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
