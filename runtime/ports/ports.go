// Package ports is the one port allocator of the harness: every system under test (the
// reference system, a user's topology) gets its loopback ports here. Ports come from
// outside the kernel's ephemeral range and stay bound until released, so that neither an
// outgoing connection's local end nor another component can take one between allocation
// and the moment its owner binds it. Across processes (several harnesses, parallel test
// binaries) a port handed out is also reserved for as long as the process that got it
// lives, so another harness cannot take it while its component is not yet bound, or is
// down for a crash fault and about to bind it again.
package ports

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Free allocates n distinct free ports on 127.0.0.1, outside the ephemeral range. Each is
// held until all are found, so two of them cannot be the same, and released on return.
func Free(n int) ([]int, error) {
	a := New("")
	defer a.Release()
	out := make([]int, 0, n)
	for i := range n {
		addr, err := a.Take(strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("allocate port: %w", err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("allocate port: %w", err)
		}
		out = append(out, port)
	}
	return out, nil
}

// Allocator hands out 127.0.0.1 ports outside the ephemeral range, preferring those of the
// previous start of the same run directory (its file) so URLs (and an etcd member's peer
// URL) stay stable across restarts. Each port stays bound until Release, so no two
// components get the same one.
type Allocator struct {
	path     string
	prev     map[string]string
	got      map[string]string
	held     []net.Listener
	reserved string // directory of the machine's reservations
	owner    int    // the pid a reservation names
}

// Option configures an Allocator.
type Option func(*Allocator)

// WithReservations keeps the machine's reservations in dir instead of the default under
// the temporary directory: tests use it to stay apart from harnesses running beside them.
func WithReservations(dir string) Option { return func(a *Allocator) { a.reserved = dir } }

// WithOwner names pid as the owner of the ports handed out instead of the current
// process: a reservation lasts while its owner lives.
func WithOwner(pid int) Option { return func(a *Allocator) { a.owner = pid } }

// New returns an allocator that remembers its ports in the file path ("": nowhere).
func New(path string, opts ...Option) *Allocator {
	a := &Allocator{path: path, prev: map[string]string{}, got: map[string]string{},
		reserved: filepath.Join(os.TempDir(), fmt.Sprintf("faultline-ports-%d", os.Getuid())),
		owner:    os.Getpid()}
	for _, o := range opts {
		o(a)
	}
	if path == "" {
		return a
	}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &a.prev) // a corrupt file only costs stable ports
	}
	return a
}

func (a *Allocator) hold(addr string) (string, bool) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", false
	}
	if !a.reserve(ln.Addr().(*net.TCPAddr).Port) {
		_ = ln.Close()
		return "", false
	}
	a.held = append(a.held, ln)
	return ln.Addr().String(), true
}

// reserve records the port as the owner's for the machine, unless another live process
// holds it. The listener held meanwhile is the lock: no two allocators get here for the
// same port at once. A reservation that cannot be written costs only the protection.
func (a *Allocator) reserve(port int) bool {
	file := filepath.Join(a.reserved, strconv.Itoa(port))
	if b, err := os.ReadFile(file); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != a.owner && alive(pid) {
			return false
		}
	}
	if err := os.MkdirAll(a.reserved, 0o700); err != nil {
		return true
	}
	tmp, err := os.CreateTemp(a.reserved, ".new-*")
	if err != nil {
		return true
	}
	_, werr := tmp.WriteString(strconv.Itoa(a.owner))
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		_ = os.Remove(tmp.Name())
		return true
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		_ = os.Remove(tmp.Name())
	}
	return true
}

// alive reports whether a process with pid exists (EPERM: it exists, owned by another user).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Take allocates one port for key: the one key had last time when it is free.
func (a *Allocator) Take(key string) (string, error) {
	if prev, ok := a.prev[key]; ok {
		if addr, ok := a.hold(prev); ok {
			a.got[key] = addr
			return addr, nil
		}
	}
	out, err := a.TakeRange([]string{key})
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// TakeRange allocates consecutive ports, one per key, so that N gateways are easy to find
// and to type; the same ones as last time when they are free.
func (a *Allocator) TakeRange(keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if out, ok := a.tryRange(keys, a.prevBase(keys)); ok {
		return out, nil
	}
	lo, hi := portRange()
	for range 200 {
		if out, ok := a.tryRange(keys, lo+rand.IntN(hi-lo-len(keys))); ok {
			return out, nil
		}
	}
	return nil, fmt.Errorf("allocate %d consecutive ports: none free", len(keys))
}

// portRange is where fresh ports come from: below the kernel's ephemeral range, because a
// port handed out from that range (":0") can be taken by some outgoing connection's local
// end between the moment the harness releases it and the moment the child binds it — one
// component's dial to the registry was enough to make a gateway fail with EADDRINUSE.
func portRange() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	var eLo, eHi int
	if _, err := fmt.Sscan(string(b), &eLo, &eHi); err != nil {
		return lo, hi
	}
	switch {
	case eLo-lo >= 2000:
		return lo, eLo // below the ephemeral range
	case 65535-eHi >= 2000:
		return eHi + 1, 65535 // above it
	default:
		return 1024, 65535 // no room outside it: take our chances anywhere
	}
}

func (a *Allocator) prevBase(keys []string) int {
	addr, ok := a.prev[keys[0]]
	if !ok {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(p)
	return port
}

func (a *Allocator) tryRange(keys []string, base int) ([]string, bool) {
	if base <= 0 || base+len(keys) > 65535 {
		return nil, false
	}
	mark := len(a.held)
	var out []string
	for i := range keys {
		addr, ok := a.hold(net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
		if !ok {
			for _, ln := range a.held[mark:] {
				_ = ln.Close()
			}
			a.held = a.held[:mark]
			return nil, false
		}
		out = append(out, addr)
	}
	for i, k := range keys {
		a.got[k] = out[i]
	}
	return out, true
}

// Save writes the ports handed out to the allocator's file for the next start; without
// a file it does nothing.
func (a *Allocator) Save() error {
	if a.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(a.got, "", "  ")
	if err != nil {
		return fmt.Errorf("encode ports: %w", err)
	}
	if err := os.WriteFile(a.path, b, 0o644); err != nil {
		return fmt.Errorf("write ports: %w", err)
	}
	return nil
}

// Release closes the listeners that held the ports, just before their owners bind them.
func (a *Allocator) Release() {
	for _, ln := range a.held {
		_ = ln.Close()
	}
	a.held = nil
}
