package faults

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoOnce writes payload on c and waits for its echo.
func echoOnce(t *testing.T, c net.Conn, payload string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Write([]byte(payload))
	require.NoError(t, err)
	buf := make([]byte, len(payload))
	_, err = c.Read(buf)
	require.NoError(t, err)
}

// TestWatchCountsTheSystemsTrafficNotTheProbes holds the proxies' own count to its
// boundary with a real echo server and a real Toxiproxy proxy: the harness's probes never
// count, a long-lived connection counts in a window it carries a request in and not in
// one it stays idle through, and a fault's toxic does not hide what entered the proxy.
func TestWatchCountsTheSystemsTrafficNotTheProbes(t *testing.T) {
	l := newLinks(t)
	proxy, _ := echoLink(t, l)
	const name = "caller->echo-1"
	probe := func() {
		p, err := l.Probe(context.Background(), name, ProbeSpec{})
		require.NoError(t, err)
		require.Equal(t, OutcomeAnswered, p.Outcome)
	}
	longLived, err := net.Dial("tcp", proxy)
	require.NoError(t, err)
	t.Cleanup(func() { _ = longLived.Close() })
	echoOnce(t, longLived, "hello") // opened and used before any watch

	t.Run("only probes", func(t *testing.T) {
		w := l.Watch([]string{name})
		for range 5 {
			probe()
		}
		got := w.Stop()
		assert.True(t, got.Observed)
		assert.Equal(t, 0, got.Connections, "%+v", got)
		assert.Equal(t, 5, got.Probes, "%+v", got)
		assert.Positive(t, got.Bytes, "the probes' bytes crossed the proxy")
	})
	t.Run("a long-lived connection carries a request", func(t *testing.T) {
		w := l.Watch([]string{name})
		probe()
		echoOnce(t, longLived, "again")
		got := w.Stop()
		assert.Equal(t, 1, got.Connections, "%+v", got)
	})
	t.Run("a new connection under a fault", func(t *testing.T) {
		env := NewEnv(l, nil)
		f := &Latency{Target: name, Latency: 20 * time.Millisecond}
		require.NoError(t, f.Inject(context.Background(), env))
		t.Cleanup(func() { _ = f.Heal(context.Background(), env) })
		require.Equal(t, []string{name}, f.InjectedLinks())
		w := l.Watch(f.InjectedLinks())
		c, err := net.Dial("tcp", proxy)
		require.NoError(t, err)
		defer c.Close()
		echoOnce(t, c, "x")
		_, err = f.Measure(context.Background(), env)
		require.NoError(t, err)
		got := w.Stop()
		assert.Equal(t, 1, got.Connections, "%+v", got)
		assert.Positive(t, got.Probes, "%+v", got)
	})
	t.Run("counting survives HealAll and stays out of the toxic list", func(t *testing.T) {
		require.NoError(t, l.HealAll(context.Background()))
		names, err := l.ToxicNames(name)
		require.NoError(t, err)
		assert.Empty(t, names)
		w := l.Watch([]string{name})
		echoOnce(t, longLived, "after heal")
		assert.Equal(t, 1, w.Stop().Connections)
	})
	t.Run("an unknown link is not observed", func(t *testing.T) {
		assert.False(t, l.Watch([]string{"nobody->nothing"}).Stop().Observed)
	})
}

// TestWatchDoesNotSubtractACustomProbersRequests: a custom prober may never touch the
// proxy (or send real requests through it); its probes are not set apart, so they can
// never hide the system's one connection.
func TestWatchDoesNotSubtractACustomProbersRequests(t *testing.T) {
	l := newLinks(t, WithProber(bypassProber))
	proxy, _ := echoLink(t, l)
	const name = "caller->echo-1"
	w := l.Watch([]string{name})
	for range 5 {
		_, err := l.Probe(context.Background(), name, ProbeSpec{})
		require.NoError(t, err)
	}
	c, err := net.Dial("tcp", proxy)
	require.NoError(t, err)
	defer c.Close()
	echoOnce(t, c, "one request")
	got := w.Stop()
	assert.Equal(t, 1, got.Connections, "%+v", got)
	assert.Zero(t, got.Probes, "%+v", got)
}

// TestHandResetKeepsCounting: a teacher's POST /reset through the API removes every
// toxic; the counter comes back at once, and it cannot be deleted by hand.
func TestHandResetKeepsCounting(t *testing.T) {
	l := newLinks(t)
	proxy, _ := echoLink(t, l)
	addr, err := l.ServeAPI("127.0.0.1:0")
	require.NoError(t, err)
	do := func(method, path string) int {
		req, err := http.NewRequest(method, "http://"+addr+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusForbidden, do("DELETE", "/proxies/caller-%3Eecho-1/toxics/"+trafficToxicName))
	require.Less(t, do("POST", "/reset"), 300)
	w := l.Watch([]string{"caller->echo-1"})
	c, err := net.Dial("tcp", proxy)
	require.NoError(t, err)
	defer c.Close()
	echoOnce(t, c, "after a hand reset")
	assert.Equal(t, 1, w.Stop().Connections)
}
