package faults

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/Shopify/toxiproxy/v2/toxics"
)

// trafficToxicType is the Toxiproxy toxic type that counts a link's traffic, and
// trafficToxicName the name it has on every link of an in-process server. It is the first
// toxic of each proxy's upstream (caller to callee) chain, ahead of any fault's toxic, so
// it sees every request that entered the proxy even when a later toxic delays, swallows
// or resets it. It changes nothing: it passes each chunk on as it came.
const (
	trafficToxicType = "faultline_traffic"
	trafficToxicName = "faultline_traffic"
)

func init() { toxics.Register(trafficToxicType, new(trafficToxic)) }

// trafficCounters maps a counter's key (a toxic attribute, since Toxiproxy builds toxics
// from JSON) to the link's counter.
var (
	trafficCounters sync.Map // string -> *linkTraffic
	trafficSeq      atomic.Uint64
)

// trafficToxic is the counting toxic. Its per-connection state is the connection's
// identity, so a long-lived connection (gRPC's HTTP/2) counts in every window it carries
// a request in, not only in the one it was opened in.
type trafficToxic struct {
	Key string `json:"key"`
}

type connTraffic struct{ t *linkTraffic }

// NewState is one connection's state: its identity for the watches.
func (t *trafficToxic) NewState() any {
	v, _ := trafficCounters.Load(t.Key)
	lt, _ := v.(*linkTraffic)
	return &connTraffic{t: lt}
}

// Pipe passes every chunk on unchanged, counting it first.
func (t *trafficToxic) Pipe(stub *toxics.ToxicStub) {
	c, _ := stub.State.(*connTraffic)
	for {
		select {
		case <-stub.Interrupt:
			return
		case chunk := <-stub.Input:
			if chunk == nil {
				stub.Close()
				return
			}
			if c != nil && c.t != nil && len(chunk.Data) > 0 {
				c.t.carried(c, len(chunk.Data))
			}
			stub.Output <- chunk
		}
	}
}

// linkTraffic is one link's counter: it hands what it sees to the watches open on it.
type linkTraffic struct {
	key     string
	mu      sync.Mutex
	watches map[*TrafficWatch]bool
}

func newLinkTraffic() *linkTraffic {
	t := &linkTraffic{key: fmt.Sprintf("link-%d", trafficSeq.Add(1)), watches: map[*TrafficWatch]bool{}}
	trafficCounters.Store(t.key, t)
	return t
}

func (t *linkTraffic) release() { trafficCounters.Delete(t.key) }

func (t *linkTraffic) toxic() Toxic {
	return Toxic{Name: trafficToxicName, Type: trafficToxicType, Stream: "upstream", Toxicity: 1, Attributes: map[string]any{"key": t.key}}
}

func (t *linkTraffic) carried(c *connTraffic, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for w := range t.watches {
		w.carried(c, n)
	}
}

func (t *linkTraffic) open() []*TrafficWatch {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*TrafficWatch, 0, len(t.watches))
	for w := range t.watches {
		out = append(out, w)
	}
	return out
}

// Traffic is what crossed a fault's links while it was in place, as the proxies counted
// it: connections that carried bytes from the caller towards the callee, less the
// connections of the harness's own probes.
type Traffic struct {
	// Links are the links watched.
	Links []string
	// Connections carried at least one byte towards the callee during the watch and were
	// not the harness's probes.
	Connections int
	// Bytes is every byte towards the callee, the probes' included.
	Bytes int64
	// Probes is how many probes of the harness crossed the links during the watch.
	Probes int
	// Observed is false when the links' proxies cannot count (a remote Toxiproxy server);
	// the counts then mean nothing.
	Observed bool
}

// TrafficWatch counts the traffic crossing some links from Watch to Stop.
type TrafficWatch struct {
	links    []string
	counters []*linkTraffic
	observed bool

	mu     sync.Mutex
	seen   map[*connTraffic]bool
	bytes  int64
	probes int
	done   bool
}

func (w *TrafficWatch) carried(c *connTraffic, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.seen[c] = true
	w.bytes += int64(n)
}

func (w *TrafficWatch) probed(d int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.probes += d
	}
}

// Watch starts counting the traffic that crosses the named links, as their proxies see
// it, until Stop. The harness's own probes through the links (Probe) are counted apart,
// so that what remains is the system's traffic. Links that cannot count (a remote
// server, an unknown name) make the watch unobserved rather than empty.
func (l *Links) Watch(names []string) *TrafficWatch {
	w := &TrafficWatch{links: slices.Clone(names), seen: map[*connTraffic]bool{}, observed: len(names) > 0}
	for _, name := range names {
		e, err := l.entry(name)
		if err != nil || e.traffic == nil {
			w.observed = false
			continue
		}
		e.traffic.mu.Lock()
		e.traffic.watches[w] = true
		e.traffic.mu.Unlock()
		w.counters = append(w.counters, e.traffic)
	}
	return w
}

// Stop ends the watch and reports what crossed the links meanwhile. Stopping twice
// reports the same.
func (w *TrafficWatch) Stop() Traffic {
	for _, t := range w.counters {
		t.mu.Lock()
		delete(t.watches, w)
		t.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	return Traffic{Links: slices.Clone(w.links), Connections: max(len(w.seen)-w.probes, 0), Bytes: w.bytes, Probes: w.probes, Observed: w.observed}
}

// LinkFault is implemented by faults that act through links' proxies, so that the
// traffic crossing them during the fault can be counted: a fault no request crossed
// showed nothing. InjectedLinks names the links the fault is in place on, empty when
// their proxies cannot see the traffic (a link held down refuses connections before the
// proxy could count them).
type LinkFault interface {
	InjectedLinks() []string
}
