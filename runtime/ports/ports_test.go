package ports_test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/runtime/ports"
)

func TestAllocatorGivesDistinctConsecutiveAndStablePorts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	a := ports.New(path)
	seen := map[string]bool{}
	for i := range 5 {
		addr, err := a.Take("c" + strconv.Itoa(i))
		require.NoError(t, err)
		require.False(t, seen[addr], "port %s handed out twice", addr)
		seen[addr] = true
	}
	gw, err := a.TakeRange([]string{"g1", "g2", "g3"})
	require.NoError(t, err)
	require.Len(t, gw, 3)
	for i := 1; i < 3; i++ {
		assert.Equal(t, port(t, gw[0])+i, port(t, gw[i]))
	}
	require.NoError(t, a.Save())
	a.Release()

	b := ports.New(path)
	defer b.Release()
	again, err := b.Take("c0")
	require.NoError(t, err)
	var first map[string]string
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &first))
	assert.Equal(t, first["c0"], again, "a free port from the last start is reused")
	gw2, err := b.TakeRange([]string{"g1", "g2", "g3"})
	require.NoError(t, err)
	assert.Equal(t, gw, gw2)
}

func TestAllocatorMovesOffABusyPort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	require.NoError(t, os.WriteFile(path, []byte(`{"x":"`+busy.Addr().String()+`"}`), 0o644))
	a := ports.New(path)
	defer a.Release()
	got, err := a.Take("x")
	require.NoError(t, err)
	assert.NotEqual(t, busy.Addr().String(), got)
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

// TestFreeHandsOutNoDuplicates: however many ports are asked for at once, none is handed
// out twice and none comes from the kernel's ephemeral range, where an outgoing
// connection could take it before its owner binds it.
func TestFreeHandsOutNoDuplicates(t *testing.T) {
	lo, hi := ephemeralRange(t)
	tests := []struct {
		name string
		n    int
	}{
		{"none", 0},
		{"one", 1},
		{"a topology's worth", 8},
		{"many", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ports.Free(tt.n)
			require.NoError(t, err)
			require.Len(t, got, tt.n)
			seen := map[int]bool{}
			for _, p := range got {
				assert.False(t, seen[p], "port %d handed out twice", p)
				seen[p] = true
				if lo > 0 {
					assert.False(t, p >= lo && p <= hi, "port %d is in the ephemeral range %d-%d", p, lo, hi)
				}
			}
		})
	}
}

// TestAllocatorWithoutFileKeepsNothing: an allocator with no file hands out distinct
// ports and saves nowhere.
func TestAllocatorWithoutFileKeepsNothing(t *testing.T) {
	a := ports.New("")
	defer a.Release()
	x, err := a.Take("x")
	require.NoError(t, err)
	y, err := a.Take("y")
	require.NoError(t, err)
	assert.NotEqual(t, x, y)
	assert.NoError(t, a.Save())
}

// ephemeralRange reads the kernel's ephemeral port range; 0, 0 when it cannot be read or
// leaves no room outside it (the allocator then takes any port).
func ephemeralRange(t *testing.T) (lo, hi int) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	lo, _ = strconv.Atoi(f[0])
	hi, _ = strconv.Atoi(f[1])
	if lo-10000 < 2000 && 65535-hi < 2000 {
		return 0, 0
	}
	return lo, hi
}

// TestReservationOutlivesRelease: a port handed out to one process is not handed to
// another while the first lives, even after the first released its listener (its
// component binds later, or is down for a crash fault); once it is gone, the port is free.
func TestReservationOutlivesRelease(t *testing.T) {
	dir := t.TempDir()
	other := exec.Command("sleep", "60")
	require.NoError(t, other.Start())
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })

	first := filepath.Join(t.TempDir(), "ports.json")
	a := ports.New(first, ports.WithReservations(dir), ports.WithOwner(other.Process.Pid))
	got, err := a.Take("x")
	require.NoError(t, err)
	require.NoError(t, a.Save())
	a.Release()

	// A second harness whose last start had the same port prefers it, and must not get it.
	second := filepath.Join(t.TempDir(), "ports.json")
	require.NoError(t, os.WriteFile(second, []byte(`{"x":"`+got+`"}`), 0o644))
	b := ports.New(second, ports.WithReservations(dir))
	moved, err := b.Take("x")
	require.NoError(t, err)
	b.Release()
	assert.NotEqual(t, got, moved, "a port reserved by a live process is not handed out again")

	// The owner itself gets it again (a restart of its own system keeps its URLs).
	again := ports.New(first, ports.WithReservations(dir), ports.WithOwner(other.Process.Pid))
	mine, err := again.Take("x")
	require.NoError(t, err)
	again.Release()
	assert.Equal(t, got, mine)

	// The owner is gone: its reservation no longer counts.
	require.NoError(t, other.Process.Kill())
	_ = other.Wait()
	c := ports.New(second, ports.WithReservations(dir))
	freed, err := c.Take("x")
	require.NoError(t, err)
	c.Release()
	assert.Equal(t, got, freed, "a dead owner's reservation is taken over")
}
