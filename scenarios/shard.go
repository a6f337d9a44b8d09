package scenarios

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fixed costs of a run besides its load, used only to balance shards (see
// ExpectedDuration); they are estimates, not bounds.
const (
	// StartupCost is a local run's cost around its load: starting the system (median
	// 0.5 s, p90 1.3 s under load, README's benchmarks) plus the steady-state probe and the
	// stop — the ~2 s a catalog run of a 6 s load takes beyond its load.
	StartupCost = 2 * time.Second
	// DockerStartupCost is the same for containers, whose start alone takes 3–5 s.
	DockerStartupCost = 5 * time.Second
)

// ExpectedDuration estimates how long a run of sc takes, from the scenario alone, so a
// suite can be split into shards of equal wall time without a record of earlier runs.
// The rule: the load's duration, plus the start-up cost of its runtime (StartupCost, or
// DockerStartupCost for system.runtime docker), plus the longest bound a check may wait
// after the load for the system to settle (a kind's Settler capability, such as the
// reference system's converge_within). A nil scenario (a file that does not parse)
// costs StartupCost: it still runs, and fails fast.
func ExpectedDuration(sc *Scenario) time.Duration {
	if sc == nil {
		return StartupCost
	}
	d := StartupCost
	if sc.System.Runtime == "docker" {
		d = DockerStartupCost
	}
	d += sc.Load.Duration.Std()
	var converge time.Duration
	for _, c := range sc.allChecks() {
		if st, ok := c.Spec.(Settler); ok {
			converge = max(converge, st.SettleBound())
		}
	}
	return d + converge
}

// allChecks lists every check of the scenario, in every phase.
func (s *Scenario) allChecks() []Check {
	out := slices.Concat(s.SteadyState, s.AbortWhen, s.Expect.Before, s.Expect.After, s.Expect.Overall)
	for _, cs := range s.Expect.During {
		out = append(out, cs...)
	}
	return out
}

// ShardItem is one scenario of a suite to be assigned to a shard: its file (as the suite
// was given it) and its expected duration.
type ShardItem struct {
	File     string
	Expected time.Duration
}

// ParseShard reads "K/N", shard K of N, 1 ≤ K ≤ N.
func ParseShard(s string) (k, n int, err error) {
	ks, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, fmt.Errorf("parse shard %q: want K/N, such as 1/2", s)
	}
	k, kerr := strconv.Atoi(strings.TrimSpace(ks))
	n, nerr := strconv.Atoi(strings.TrimSpace(ns))
	switch {
	case kerr != nil || nerr != nil:
		return 0, 0, fmt.Errorf("parse shard %q: K and N must be whole numbers, such as 1/2", s)
	case n < 1:
		return 0, 0, fmt.Errorf("parse shard %q: N must be at least 1, the number of shards", s)
	case k < 1 || k > n:
		return 0, 0, fmt.Errorf("parse shard %q: K must be between 1 and N (%d), shards count from 1", s, n)
	}
	return k, n, nil
}

// Shards splits items into n shards of nearly equal expected time. The assignment is
// stable: it depends only on the set of items (files and expected durations), not on
// their order, so every CI machine given the same directory computes the same shards. It
// is greedy longest-first: items in order of expected duration (longest first, then by
// file), each to the shard with the least expected time so far (the lowest index on a
// tie). That keeps the largest shard's expected time within the longest single item of
// the smallest's: each item goes to a smallest shard, so after it no shard exceeds the
// smallest by more than that item. Each shard lists its items in the order given.
func Shards(items []ShardItem, n int) ([][]ShardItem, error) {
	if n < 1 {
		return nil, fmt.Errorf("split into shards: %d shards, want at least 1", n)
	}
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		x, y := items[a], items[b]
		if x.Expected != y.Expected {
			if x.Expected > y.Expected {
				return -1
			}
			return 1
		}
		return strings.Compare(shardKey(x.File), shardKey(y.File))
	})
	seen := map[string]bool{}
	for _, it := range items {
		key := shardKey(it.File)
		if seen[key] {
			return nil, fmt.Errorf("split into shards: %s is listed twice", it.File)
		}
		seen[key] = true
	}
	totals := make([]time.Duration, n)
	owner := make([]int, len(items))
	for _, i := range order {
		best := 0
		for s := 1; s < n; s++ {
			if totals[s] < totals[best] {
				best = s
			}
		}
		totals[best] += items[i].Expected
		owner[i] = best
	}
	out := make([][]ShardItem, n)
	for i, it := range items {
		out[owner[i]] = append(out[owner[i]], it)
	}
	return out, nil
}

// Shard returns shard k (1-based) of n; see Shards.
func Shard(items []ShardItem, k, n int) ([]ShardItem, error) {
	if k < 1 || k > n {
		return nil, errors.New("select shard: want 1 ≤ K ≤ N")
	}
	all, err := Shards(items, n)
	if err != nil {
		return nil, err
	}
	return all[k-1], nil
}

// shardKey is what orders a file among equals: its cleaned path, so "scenarios/a.yaml"
// and "scenarios//a.yaml" are one file.
func shardKey(file string) string { return filepath.ToSlash(filepath.Clean(file)) }
