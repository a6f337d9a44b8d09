package loadgen

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/node"
)

// clock is a manual clock for the failover's back-off.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func testFailover(t *testing.T, n int, client *http.Client, base string) (*failover, *clock) {
	t.Helper()
	targets := make([]target, n)
	for i := range targets {
		targets[i] = target{base: base}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := newFailover(ctx, targets, runConfig{}, time.Second, client)
	t.Cleanup(func() { cancel(); f.wait() })
	c := &clock{t: time.Unix(1000, 0)}
	f.now = c.now
	return f, c
}

func TestFailoverPicksHomeThenNextLive(t *testing.T) {
	f, _ := testFailover(t, 3, nil, "")
	tests := []struct {
		name   string
		event  func()
		client int
		want   int
	}{
		{"home of client 0", nil, 0, 0},
		{"home of client 4", nil, 4, 1},
		{"home of client 5", nil, 5, 2},
		{"client 0 loses its home", func() { f.failed(0, 0) }, 0, 1},
		{"client 3 shares the home but not the view", nil, 3, 0},
		{"client 0 loses the next one too", func() { f.failed(0, 1) }, 0, 2},
		{"with every target down it stays home", func() { f.failed(0, 2) }, 0, 0},
		{"an answer brings one back", func() { f.answered(0, 1, time.Unix(2000, 0)) }, 0, 1},
	}
	for _, tt := range tests {
		if tt.event != nil {
			tt.event()
		}
		assert.Equal(t, tt.want, f.pick(tt.client), tt.name)
	}
}

func TestFailoverIgnoresStaleAnswersAndRepeatFailures(t *testing.T) {
	f, c := testFailover(t, 2, nil, "")
	sentBefore := c.now()
	c.advance(time.Millisecond)
	f.failed(1, 1)
	require.Equal(t, 0, f.pick(1))
	f.answered(1, 1, sentBefore)
	assert.Equal(t, 0, f.pick(1), "an answer to a request sent before the failure proves nothing")
	c.advance(500 * time.Millisecond)
	f.failed(1, 1) // another request that was in flight
	g := f.clients[1][1]
	assert.Equal(t, time.Unix(1000, 0).Add(time.Second+time.Millisecond), g.retryAt, "a repeat failure does not push the probe back")
	f.answered(1, 1, c.now())
	assert.Equal(t, 1, f.pick(1), "an answer to a later request does")
}

func TestFailoverBackoffDoublesToItsBound(t *testing.T) {
	f, c := testFailover(t, 2, nil, "")
	f.failed(0, 0)
	var got []time.Duration
	for range 5 {
		g := f.clients[0][0]
		got = append(got, g.retryAt.Sub(c.now()))
		c.t = g.retryAt
		f.probed(0, 0, false)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	assert.Equal(t, want, got)
	f.probed(0, 0, true)
	assert.Equal(t, 0, f.pick(0))
	f.failed(0, 0)
	assert.Equal(t, time.Second, f.clients[0][0].retryAt.Sub(c.now()), "an answer resets the back-off")
}

func TestFailoverWithOneTargetNeverMoves(t *testing.T) {
	f, _ := testFailover(t, 1, nil, "")
	f.failed(3, 0)
	assert.Equal(t, 0, f.pick(3))
	assert.Empty(t, f.clients, "nothing to track with nowhere else to go")
}

func TestFailoverProbesWhenTheBackoffIsOver(t *testing.T) {
	var heads atomic.Int64
	hold := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			heads.Add(1)
		}
		<-hold
		w.WriteHeader(http.StatusNotFound) // any answer will do
	}))
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	f, c := testFailover(t, 2, srv.Client(), srv.URL)
	var once sync.Once
	releaseProbe := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(releaseProbe)

	f.failed(0, 0)
	c.advance(999 * time.Millisecond)
	assert.Equal(t, 1, f.pick(0))
	f.wait()
	assert.Zero(t, heads.Load(), "no probe during the back-off")
	c.advance(time.Millisecond)
	assert.Equal(t, 1, f.pick(0), "the request that finds the back-off over still goes elsewhere")
	require.Eventually(t, func() bool { return heads.Load() == 1 }, 30*time.Second, time.Millisecond)
	assert.Equal(t, 1, f.pick(0), "the probe has not answered yet")
	releaseProbe()
	f.wait()
	assert.Equal(t, int64(1), heads.Load(), "one probe at a time")
	assert.Equal(t, 0, f.pick(0), "the probe's answer brought the home target back")
}

func TestTransportFailure(t *testing.T) {
	refused, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	refusedAddr := refused.Addr().String()
	require.NoError(t, refused.Close())

	hangup, err := node.Listen("127.0.0.1:0") // accepts, then closes without answering
	require.NoError(t, err)
	t.Cleanup(func() { _ = hangup.Close() })
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			_, _ = c.Read(buf)
			_ = c.Close()
		}
	}()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	ln, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	slow.Listener = ln
	slow.Start()
	t.Cleanup(slow.Close)
	ok := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	ln2, err := node.Listen("127.0.0.1:0")
	require.NoError(t, err)
	ok.Listener = ln2
	ok.Start()
	t.Cleanup(ok.Close)

	tests := []struct {
		name string
		url  string
		want bool
	}{
		{"connection refused", "http://" + refusedAddr + "/", true},
		{"closed before answering", "http://" + hangup.Addr().String() + "/", true},
		{"slow answer times out", slow.URL + "/", false},
		{"5xx is an answer", ok.URL + "/", false},
	}
	tr := &http.Transport{Proxy: nil}
	t.Cleanup(tr.CloseIdleConnections)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, tt.url, nil)
			require.NoError(t, err)
			req, gotConn := traced(req)
			resp, err := tr.RoundTrip(req)
			if resp != nil {
				_ = resp.Body.Close()
			}
			assert.Equal(t, tt.want, transportFailure(err, gotConn()), "error %v", err)
		})
	}
	var dialErr error = &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}
	assert.True(t, transportFailure(dialErr, true), "a dial timeout on a retried connection")
}
