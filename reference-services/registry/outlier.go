package registry

import (
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// BalancerName is the load-balancing policy of client-side discovery: round robin over ready
// instances with passive outlier ejection. grpc-go's own outlier_detection policy lives in an
// internal xds package that is only registered by importing google.golang.org/grpc/xds (and
// its Envoy dependencies), so the reference system carries this small equivalent instead.
const BalancerName = "faultline_round_robin_outlier"

// OutlierConfig tunes passive ejection: an instance whose recent calls fail at FailureRatio or
// more (over at least MinCalls of the last Window calls) is left out for BaseEjection, doubled
// for each consecutive ejection up to MaxEjection. Never all instances are ejected.
type OutlierConfig struct {
	Window       int
	MinCalls     int
	FailureRatio float64
	BaseEjection time.Duration
	MaxEjection  time.Duration
}

// DefaultOutlierConfig reacts within a handful of calls: the scenarios inject faults for
// seconds, not minutes.
var DefaultOutlierConfig = OutlierConfig{Window: 20, MinCalls: 5, FailureRatio: 0.5, BaseEjection: time.Second, MaxEjection: 10 * time.Second}

func init() { balancer.Register(outlierBuilder{}) }

type outlierBuilder struct{}

var _ balancer.Builder = outlierBuilder{}

// Build gives every ClientConn its own tracker, so ejections of one caller never leak to
// another connection in the same process.
func (outlierBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	pb := &outlierPickerBuilder{t: newOutlierTracker(DefaultOutlierConfig)}
	return base.NewBalancerBuilder(BalancerName, pb, base.Config{}).Build(cc, opts)
}

func (outlierBuilder) Name() string { return BalancerName }

// failure reports whether a call's error says something about the instance (rather than the
// request): those are the errors that justify taking the instance out of rotation.
func failure(err error) bool {
	if err == nil {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

// outlierTracker is shared by the successive pickers of one connection (a picker is rebuilt
// on every connectivity change, the statistics must survive that).
type outlierTracker struct {
	cfg OutlierConfig
	now func() time.Time

	mu    sync.Mutex
	addrs map[string]*addrStats
}

type addrStats struct {
	outcomes     []bool // ring of recent outcomes, true = failure
	next, filled int
	ejectedUntil time.Time
	ejections    int
}

func newOutlierTracker(cfg OutlierConfig) *outlierTracker {
	return &outlierTracker{cfg: cfg, now: time.Now, addrs: map[string]*addrStats{}}
}

func (t *outlierTracker) ejected(addr string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.addrs[addr]
	return s != nil && now.Before(s.ejectedUntil)
}

// record adds one outcome and ejects addr when its failure ratio crosses the threshold,
// unless that would leave none of candidates (the ready instances) in rotation.
func (t *outlierTracker) record(addr string, failed bool, candidates []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.addrs[addr]
	if s == nil {
		return
	}
	now := t.now()
	if now.Before(s.ejectedUntil) {
		return // calls already in flight when it was ejected
	}
	s.outcomes[s.next] = failed
	s.next = (s.next + 1) % len(s.outcomes)
	s.filled = min(s.filled+1, len(s.outcomes))
	fails := 0
	for i := range s.filled {
		if s.outcomes[i] {
			fails++
		}
	}
	if s.filled < t.cfg.MinCalls || float64(fails) < t.cfg.FailureRatio*float64(s.filled) {
		if fails == 0 && s.filled == len(s.outcomes) {
			s.ejections = 0 // a clean window forgives past ejections
		}
		return
	}
	others := 0
	for _, a := range candidates {
		if o := t.addrs[a]; o != nil && a != addr && !now.Before(o.ejectedUntil) {
			others++
		}
	}
	if others == 0 {
		return
	}
	d := t.cfg.BaseEjection << min(s.ejections, 16)
	s.ejections++
	s.ejectedUntil = now.Add(min(d, t.cfg.MaxEjection))
	clear(s.outcomes)
	s.next, s.filled = 0, 0
}

type outlierPickerBuilder struct{ t *outlierTracker }

var _ base.PickerBuilder = (*outlierPickerBuilder)(nil)

func (b *outlierPickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &outlierPicker{t: b.t}
	var addrs []string
	for sc, in := range info.ReadySCs {
		p.scs = append(p.scs, sc)
		p.addrs = append(p.addrs, in.Address.Addr)
		addrs = append(addrs, in.Address.Addr)
	}
	b.t.keepReady(addrs)
	return p
}

// keepReady adds stats for newly ready addresses without forgetting the ones that are
// temporarily not ready (a reconnecting instance keeps its ejection).
func (t *outlierTracker) keepReady(addrs []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range addrs {
		if t.addrs[a] == nil {
			t.addrs[a] = &addrStats{outcomes: make([]bool, t.cfg.Window)}
		}
	}
}

type outlierPicker struct {
	t     *outlierTracker
	scs   []balancer.SubConn
	addrs []string
	next  atomic.Uint32
}

// Pick is round robin over ready instances that are not ejected; if every ready instance is
// ejected it falls back to all of them, because some answer beats none.
func (p *outlierPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	n := len(p.scs)
	start := int(p.next.Add(1))
	now := p.t.now()
	idx := start % n
	for i := range n {
		j := (start + i) % n
		if !p.t.ejected(p.addrs[j], now) {
			idx = j
			break
		}
	}
	addr := p.addrs[idx]
	return balancer.PickResult{
		SubConn: p.scs[idx],
		Done:    func(di balancer.DoneInfo) { p.t.record(addr, failure(di.Err), p.addrs) },
	}, nil
}
