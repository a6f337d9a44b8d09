package loadgen

import (
	"fmt"
	"maps"
	"slices"
)

// scheduler plans requests one after the other. Everything it does depends only on the
// spec and the plans before, which is what makes the schedule reproducible.
type scheduler struct {
	spec     Spec
	pacer    *Pacer
	state    *State
	journeys map[string]Journey
	names    []string // mix names in sorted order with positive weight
	cum      []int    // cumulative weights aligned with names
	seq      uint64
}

func newScheduler(spec Spec) *scheduler {
	sc := &scheduler{
		spec:     spec,
		pacer:    spec.Pacer(),
		state:    newState(spec.Seed),
		journeys: map[string]Journey{},
	}
	for _, j := range spec.Journeys {
		sc.journeys[j.Name()] = j
	}
	total := 0
	for _, name := range slices.Sorted(maps.Keys(spec.Mix)) {
		if w := spec.Mix[name]; w > 0 {
			total += w
			sc.names = append(sc.names, name)
			sc.cum = append(sc.cum, total)
		}
	}
	return sc
}

// next plans the next request. It is not safe for concurrent use.
func (sc *scheduler) next() (Plan, Journey, error) {
	sc.seq++
	rng := sc.state.Rand()
	draw := rng.IntN(sc.cum[len(sc.cum)-1])
	k, _ := slices.BinarySearch(sc.cum, draw+1)
	j := sc.journeys[sc.names[k]]
	p := Plan{
		Seq:     sc.seq,
		Journey: j.Name(),
		Client:  rng.IntN(sc.spec.Clients),
		Key:     KeyFor(sc.spec.Seed, sc.seq),
		At:      sc.pacer.PlannedAt(sc.seq - 1),
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
