package kubernetes

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ServeSignals answers each request on one open stream, signals the component and not
// another signaler started from the same executable (a one-shot exec beside a session
// must not stop it), and says why it refuses a name that is not a signal.
func TestServeSignals(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, filepath.Base(SignalerPath))
	copyFile(t, sleep, exe)
	comp := exec.Command(exe, "60")
	if err := comp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = comp.Process.Kill(); _, _ = comp.Process.Wait() })
	// Another signaler: a shell whose command line reads "<exe> signal", as a session's does.
	if err := os.WriteFile(filepath.Join(dir, SignalCommand), []byte("sleep 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := &exec.Cmd{Path: "/bin/sh", Args: []string{exe, SignalCommand}, Dir: dir, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-other.Process.Pid, syscall.SIGKILL); _, _ = other.Process.Wait() })

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	served := make(chan error, 1)
	hold := filepath.Join(dir, "hold")
	go func() { served <- ServeSignals(inR, outW, "/proc", exe, hold); _ = outW.Close() }()
	lines := bufio.NewScanner(outR)
	ask := func(req string) string {
		t.Helper()
		if req != "" {
			if _, err := io.WriteString(inW, req+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		if !lines.Scan() {
			t.Fatalf("no answer to %q: %v", req, lines.Err())
		}
		return lines.Text()
	}
	held := func() bool { _, err := os.Stat(hold); return err == nil }
	tests := []struct {
		req, want string
		held      bool
	}{
		{"", sessionReady, false},
		{"stop", fmt.Sprint("signalled ", []int{comp.Process.Pid}), false},
		{"CONT", fmt.Sprint("signalled ", []int{comp.Process.Pid}), false},
		{"HUP", `error: "HUP" is not one of CONT, KILL, STOP, TERM, HOLD, RELEASE`, false},
		{"HOLD", "held", true},
		{"KILL", fmt.Sprint("signalled ", []int{comp.Process.Pid}), true},
		{"RELEASE", "released", false},
		{"RELEASE", "released", false},
	}
	for _, tt := range tests {
		if got := ask(tt.req); got != tt.want {
			t.Errorf("answer to %q = %q, want %q", tt.req, got, tt.want)
		}
		if got := held(); got != tt.held {
			t.Errorf("after %q: hold file present = %t, want %t", tt.req, got, tt.held)
		}
	}
	if err := comp.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("component ended with %v, want killed", err)
	}
	if got := ask("KILL"); !strings.HasPrefix(got, "error: ") || !strings.Contains(got, ErrNoProcess.Error()) {
		t.Errorf("answer to KILL with no component = %q, want an error naming %q", got, ErrNoProcess)
	}
	if err := syscall.Kill(other.Process.Pid, 0); err != nil {
		t.Errorf("the other signaler is gone (%v): it must never be signalled", err)
	}
	_ = inW.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeSignals at the end of its input = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeSignals did not return when its input ended")
	}
}

// lineWriter hands over whole lines however the writes split them.
func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{line: func(l string) { got = append(got, l) }}
	for _, p := range []string{"rea", "dy\nsignalled [4", "2]\r\n", "\n", "err"} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"ready", "signalled [42]", ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}

// WaitHold keeps a start waiting while the hold file exists and lets it go once the file
// is removed; without a file it does not wait.
func TestWaitHold(t *testing.T) {
	hold := filepath.Join(t.TempDir(), "hold")
	WaitHold(hold) // no file: returns at once (a hang fails the test by its timeout)
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { WaitHold(hold); close(done) }()
	select {
	case <-done:
		t.Fatal("WaitHold returned while the hold file exists")
	case <-time.After(10 * holdPoll):
	}
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WaitHold did not return once the hold file was removed")
	}
}
