package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults of the failover back-off (see WithBackoff).
const (
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 5 * time.Second
)

// WithBackoff sets how long a client avoids a target after a transport failure there
// (initial) and the bound the back-off doubles up to while the target stays unreachable
// (max). Zero or negative values keep the defaults, 1 s and 5 s; max is raised to initial
// when smaller. It matters only to RunTargets with several targets.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *runConfig) {
		if initial > 0 {
			c.backoff = initial
		}
		if max > 0 {
			c.maxBackoff = max
		}
	}
}

// target is one base URL of a run.
type target struct {
	url  *url.URL
	base string // url without a trailing slash, the prefix of every request's URL
}

// gwState is what one client believes about one target.
type gwState struct {
	down    bool
	since   time.Time     // when it was marked down: answers to requests sent earlier are stale
	retryAt time.Time     // when the client may probe it again
	backoff time.Duration // the wait after the next failed probe
	probing bool
}

// failover models the clients of a deployment with several entry points (gateways behind
// client-side load balancing): each virtual client has a home target (client mod n) and
// its own view of which targets are down. A transport failure (the connection could not be
// made or broke before an answer) marks the target down for that client, whose following
// requests go to the next target it believes up. After the back-off the client probes the
// down target off the schedule, with a HEAD of the base URL, the way a client library
// reconnects in the background instead of risking a user's request: any HTTP answer brings
// it back, a failure doubles the back-off up to its bound. Every choice is made at send
// time; nothing here touches the schedule.
type failover struct {
	ctx             context.Context // ends when the run returns: probes stop with it
	targets         []target
	initial, maxOff time.Duration
	timeout         time.Duration // of one probe
	client          *http.Client  // for probes; nil disables them (tests)
	now             func() time.Time

	mu      sync.Mutex
	clients map[int][]gwState
	probes  sync.WaitGroup
}

func newFailover(ctx context.Context, targets []target, cfg runConfig, timeout time.Duration, client *http.Client) *failover {
	initial, maxOff := cfg.backoff, cfg.maxBackoff
	if initial <= 0 {
		initial = DefaultBackoff
	}
	if maxOff <= 0 {
		maxOff = DefaultMaxBackoff
	}
	return &failover{
		ctx: ctx, targets: targets, initial: initial, maxOff: max(maxOff, initial),
		timeout: timeout, client: client, now: time.Now, clients: map[int][]gwState{},
	}
}

// state returns the client's view of the targets; the caller holds f.mu.
func (f *failover) state(client int) []gwState {
	st := f.clients[client]
	if st == nil {
		st = make([]gwState, len(f.targets))
		f.clients[client] = st
	}
	return st
}

// pick chooses the target of the client's next request: its home target if it believes it
// up, else the next one it believes up, else its home target (with every target down there
// is nowhere better to go). It starts the probes that are due.
func (f *failover) pick(client int) int {
	n := len(f.targets)
	if n == 1 {
		return 0
	}
	home := client % n
	if home < 0 {
		home += n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.clients[client]
	if !ok {
		return home // nothing has gone wrong for this client yet
	}
	now, chosen := f.now(), -1
	for k := range n {
		i := (home + k) % n
		g := &st[i]
		if !g.down {
			if chosen < 0 {
				chosen = i
			}
			continue
		}
		if !g.probing && !now.Before(g.retryAt) && f.client != nil && f.ctx.Err() == nil {
			g.probing = true
			f.probes.Add(1)
			go f.probe(client, i)
		}
	}
	if chosen < 0 {
		return home
	}
	return chosen
}

// failed records a transport failure of a request the client sent to target i.
func (f *failover) failed(client, i int) {
	if len(f.targets) == 1 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g := &f.state(client)[i]
	if g.down {
		return // already known: requests in flight when it went down fail one by one
	}
	now := f.now()
	*g = gwState{down: true, since: now, retryAt: now.Add(f.initial), backoff: min(2*f.initial, f.maxOff)}
}

// answered records that target i gave an HTTP answer to a request sent at sent: it is up,
// unless the request left before the client marked the target down.
func (f *failover) answered(client, i int, sent time.Time) {
	if len(f.targets) == 1 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.clients[client]
	if !ok {
		return
	}
	if g := &st[i]; g.down && !sent.Before(g.since) {
		*g = gwState{}
	}
}

// probed records the outcome of a probe of target i.
func (f *failover) probed(client, i int, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := &f.state(client)[i]
	g.probing = false
	if !g.down {
		return
	}
	if up {
		*g = gwState{}
		return
	}
	g.retryAt = f.now().Add(g.backoff)
	g.backoff = min(2*g.backoff, f.maxOff)
}

func (f *failover) probe(client, i int) {
	defer f.probes.Done()
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	up := false
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, f.targets[i].base+"/", nil)
	if err == nil {
		var resp *http.Response
		if resp, err = f.client.Do(req); err == nil {
			_ = resp.Body.Close()
			up = true
		}
	}
	if f.ctx.Err() != nil {
		return // the run is over; what the probe saw no longer matters
	}
	f.probed(client, i, up)
}

// wait returns once every probe has finished; the caller has ended f.ctx.
func (f *failover) wait() { f.probes.Wait() }

// traced adds a trace to req that reports whether a connection was obtained.
func traced(req *http.Request) (*http.Request, func() bool) {
	var mu sync.Mutex
	got := false
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		mu.Lock()
		got = true
		mu.Unlock()
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	return req, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// transportFailure reports whether err says the target could not be reached: no
// connection was made (refused, unreachable, dial timeout) or it broke before an answer
// (reset, closed). A request that timed out on a working connection is not one: the
// target is slow, not gone, and another target would not be faster to ask.
func transportFailure(err error, gotConn bool) bool {
	if err == nil {
		return false
	}
	if !gotConn {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "server closed idle connection") || strings.Contains(msg, "transport connection broken")
}
