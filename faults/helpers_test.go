package faults

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/node"
)

// startEcho runs a TCP echo server on loopback; it closes a connection once the client
// half-closes, so transfers have a clean end.
func startEcho(t testing.TB) string {
	t.Helper()
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// startHTTP runs a real HTTP server on loopback.
func startHTTP(t *testing.T) string {
	t.Helper()
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}), ReadHeaderTimeout: 5 * time.Second}
	t.Cleanup(func() { _ = srv.Close() })
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String()
}

func newLinks(t *testing.T, opts ...Option) *Links {
	t.Helper()
	l, err := NewLinks(append([]Option{WithProbeTimeout(400 * time.Millisecond)}, opts...)...)
	t.Cleanup(func() {
		if l != nil {
			_ = l.Close()
		}
	})
	require.NoError(t, err)
	return l
}

func addLink(t *testing.T, l *Links, link Link) string {
	t.Helper()
	addr, err := l.Add(context.Background(), link)
	require.NoError(t, err)
	return addr
}

// roundTrip writes payload to addr and reads until as many bytes came back or the
// connection ended, timing it. It does not half-close: Toxiproxy would close the upstream.
func roundTrip(t *testing.T, addr string, payload []byte) (got []byte, reads int, elapsed time.Duration, err error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	start := time.Now()
	go func() {
		_, _ = c.Write(payload)
	}()
	buf := make([]byte, 64<<10)
	for {
		n, rerr := c.Read(buf)
		if n > 0 {
			reads++
			got = append(got, buf[:n]...)
			if len(got) >= len(payload) {
				return got, reads, time.Since(start), nil
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = nil
			}
			return got, reads, time.Since(start), rerr
		}
	}
}

// sleepProcs is a tiny Processes over real /bin/sleep processes.
type sleepProcs struct {
	mu       sync.Mutex
	services map[string][]string
	procs    map[string]*sleeper
}

type sleeper struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func newSleepProcs(t *testing.T, services map[string][]string) *sleepProcs {
	t.Helper()
	p := &sleepProcs{services: services, procs: map[string]*sleeper{}}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.procs {
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.done
		}
	})
	for _, names := range services {
		for _, n := range names {
			require.NoError(t, p.start(n))
		}
	}
	return p
}

func (p *sleepProcs) start(name string) error {
	cmd := exec.Command("/bin/sleep", "60")
	if err := cmd.Start(); err != nil {
		return err
	}
	s := &sleeper{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	p.mu.Lock()
	p.procs[name] = s
	p.mu.Unlock()
	return nil
}

func (p *sleepProcs) get(name string) (*sleeper, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.procs[name]
	if !ok {
		return nil, errors.New("no such process " + name)
	}
	return s, nil
}

func (p *sleepProcs) signal(name string, sig syscall.Signal) error {
	s, err := p.get(name)
	if err != nil {
		return err
	}
	return s.cmd.Process.Signal(sig)
}

func (p *sleepProcs) Kill(name string) error   { return p.signal(name, syscall.SIGKILL) }
func (p *sleepProcs) Pause(name string) error  { return p.signal(name, syscall.SIGSTOP) }
func (p *sleepProcs) Resume(name string) error { return p.signal(name, syscall.SIGCONT) }

func (p *sleepProcs) Restart(_ context.Context, name string) error {
	s, err := p.get(name)
	if err != nil {
		return err
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	return p.start(name)
}

func (p *sleepProcs) Running(name string) bool {
	s, err := p.get(name)
	if err != nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (p *sleepProcs) Instances(service string) []string { return p.services[service] }

func (p *sleepProcs) PID(name string) (int, bool) {
	s, err := p.get(name)
	if err != nil {
		return 0, false
	}
	return s.cmd.Process.Pid, true
}

var (
	_ Processes = (*sleepProcs)(nil)
	_ PIDs      = (*sleepProcs)(nil)
)
