package loadgen

import (
	"math"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// segment is one linear piece of the rate curve: the rate goes from r0 to r1 (requests per
// second) over dur, starting at offset start when h0 requests are already due.
type segment struct {
	start, dur time.Duration
	r0, r1     float64
	h0         float64
}

// hits returns how many requests are due tau into the segment.
func (s segment) hits(tau float64) float64 {
	d := s.dur.Seconds()
	slope := 0.0
	if d > 0 {
		slope = (s.r1 - s.r0) / d
	}
	return s.r0*tau + slope*tau*tau/2
}

// at returns when, into the segment, the request number h (counted from the segment start)
// is due: the inverse of hits, in a form that stays exact when the slope is zero.
func (s segment) at(h float64) float64 {
	d := s.dur.Seconds()
	slope := 0.0
	if d > 0 {
		slope = (s.r1 - s.r0) / d
	}
	disc := s.r0*s.r0 + 2*slope*h
	den := s.r0 + math.Sqrt(max(disc, 0))
	if den <= 0 {
		return 0
	}
	return 2 * h / den
}

// Pacer paces an attack along a piecewise-linear rate curve (a constant rate and each
// step of a ramp are flat pieces; a linear step is a sloped one). Request i (from 0) is due at the moment the curve's integral reaches i, so the
// planned time of every request is a pure function of the spec. It implements
// vegeta.Pacer; vegeta's own LinearPacer cannot start a ramp at zero (it reads a zero start
// rate as "unlimited") nor chain several ramps.
type Pacer struct {
	segs  []segment
	total time.Duration
	n     uint64
}

var _ vegeta.Pacer = (*Pacer)(nil)

// newPacer builds the rate curve for a spec whose Validate passed.
func newPacer(rate Rate, ramp []Step, duration time.Duration) *Pacer {
	p := &Pacer{}
	var at time.Duration
	h := 0.0
	add := func(r0, r1 float64, d time.Duration) {
		if d <= 0 {
			return
		}
		s := segment{start: at, dur: d, r0: r0, r1: r1, h0: h}
		p.segs = append(p.segs, s)
		h += s.hits(d.Seconds())
		at += d
	}
	prev := rate.PerSecond()
	for _, st := range ramp {
		next := st.Rate.PerSecond()
		if st.Shape.Linear() {
			add(prev, next, st.Duration)
		} else {
			add(next, next, st.Duration)
		}
		prev = next
	}
	if duration > at {
		add(prev, prev, duration-at)
	}
	p.total = at
	// A request is planned when it is due strictly before the end; the epsilon absorbs
	// float error so that 50/s for 2s plans exactly 100 requests.
	if h > 1e-9 {
		p.n = uint64(math.Ceil(h - 1e-9))
	}
	return p
}

// Planned returns how many requests the whole curve calls for.
func (p *Pacer) Planned() uint64 { return p.n }

// Duration returns the length of the rate curve.
func (p *Pacer) Duration() time.Duration { return p.total }

// PlannedAt returns the offset from the start at which request i (from 0) is due.
func (p *Pacer) PlannedAt(i uint64) time.Duration {
	h := float64(i)
	for k, s := range p.segs {
		end := s.h0 + s.hits(s.dur.Seconds())
		if h < end || k == len(p.segs)-1 {
			tau := min(s.at(h-s.h0), s.dur.Seconds())
			return s.start + time.Duration(tau*1e9)
		}
	}
	return 0
}

// DueBy returns how many requests are due by offset t: the curve's integral, floored.
func (p *Pacer) DueBy(t time.Duration) uint64 {
	if t <= 0 || len(p.segs) == 0 {
		return 0
	}
	for _, s := range p.segs {
		if t <= s.start+s.dur {
			h := s.h0 + s.hits((t - s.start).Seconds())
			return min(uint64(math.Ceil(h-1e-9)), p.n)
		}
	}
	return p.n
}

// Pace tells vegeta how long to wait before request number hits, and stops it once every
// planned request has been sent.
func (p *Pacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.n {
		return 0, true
	}
	return p.PlannedAt(hits) - elapsed, false
}

// Rate returns the instantaneous planned rate, in requests per second, at elapsed.
func (p *Pacer) Rate(elapsed time.Duration) float64 {
	for _, s := range p.segs {
		if elapsed < s.start+s.dur {
			frac := (elapsed - s.start).Seconds() / s.dur.Seconds()
			return s.r0 + (s.r1-s.r0)*frac
		}
	}
	if len(p.segs) == 0 {
		return 0
	}
	return p.segs[len(p.segs)-1].r1
}
