package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// scheduler plans requests one after the other. Everything it does depends only on the
// spec and the plans before, which is what makes the schedule reproducible.
type scheduler struct {
	spec     Spec
	pacer    *Pacer
	state    *State
	journeys map[string]Journey
	// mixes are the weights in force, each from its offset on: the spec's mix from 0,
	// then each ramp step's own from the step's start.
	mixes []mixTable
	seq   uint64
}

// mixTable is one mix ready to draw from, in force from offset from.
type mixTable struct {
	from  time.Duration
	names []string // mix names in sorted order with positive weight
	cum   []int    // cumulative weights aligned with names
}

func newMixTable(from time.Duration, mix map[string]int) mixTable {
	t := mixTable{from: from}
	total := 0
	for _, name := range slices.Sorted(maps.Keys(mix)) {
		if w := mix[name]; w > 0 {
			total += w
			t.names = append(t.names, name)
			t.cum = append(t.cum, total)
		}
	}
	return t
}

func newScheduler(spec Spec) *scheduler {
	sc := &scheduler{
		spec:     spec,
		pacer:    spec.Pacer(),
		state:    newState(spec.Seed),
		journeys: map[string]Journey{},
		mixes:    []mixTable{newMixTable(0, spec.Mix)},
	}
	for _, j := range spec.Journeys {
		sc.journeys[j.Name()] = j
	}
	var at time.Duration
	for _, st := range spec.Ramp {
		if st.Mix != nil {
			sc.mixes = append(sc.mixes, newMixTable(at, st.Mix))
		}
		at += st.Duration
	}
	return sc
}

// mixAt is the mix in force at offset at.
func (sc *scheduler) mixAt(at time.Duration) mixTable {
	k := len(sc.mixes) - 1
	for k > 0 && sc.mixes[k].from > at {
		k--
	}
	return sc.mixes[k]
}

// next plans the next request. It is not safe for concurrent use.
func (sc *scheduler) next() (Plan, Journey, error) {
	sc.seq++
	rng := sc.state.Rand()
	at := sc.pacer.PlannedAt(sc.seq - 1)
	mix := sc.mixAt(at)
	draw := rng.IntN(mix.cum[len(mix.cum)-1])
	k, _ := slices.BinarySearch(mix.cum, draw+1)
	j := sc.journeys[mix.names[k]]
	p := Plan{
		Seq:     sc.seq,
		Journey: j.Name(),
		Client:  rng.IntN(sc.spec.Clients),
		Key:     KeyFor(sc.spec.Seed, sc.seq),
		At:      at,
	}
	if err := j.Plan(&p, sc.state); err != nil {
		return p, j, fmt.Errorf("plan request %d (%s): %w", p.Seq, p.Journey, err)
	}
	return p, j, nil
}

// Preview returns the first n requests spec plans (all of them when n exceeds the plan),
// without sending anything. Send-time choices (which earlier answer a journey reads back)
// are not made; everything else is exactly what Run will send.
func Preview(spec Spec, n int) ([]Plan, error) {
	spec = spec.withDefaults()
	if err := joinErrs("validate load spec", spec.Validate()); err != nil {
		return nil, err
	}
	sc := newScheduler(spec)
	n = int(min(uint64(max(n, 0)), sc.pacer.Planned()))
	out := make([]Plan, 0, n)
	for range n {
		p, _, err := sc.next()
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
	return out, nil
}
