package scenarios

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// catalogItems loads the real catalog (scenarios/*.yaml) with each file's expected duration.
func catalogItems(t *testing.T) []ShardItem {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var items []ShardItem
	for _, f := range files {
		sc, err := Load(f)
		require.NotNil(t, sc, "%s: %v", f, err)
		items = append(items, ShardItem{File: f, Expected: ExpectedDuration(sc)})
	}
	return items
}

func filesOf(items []ShardItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.File
	}
	return out
}

func TestExpectedDuration(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want time.Duration
	}{
		{"load only", "name: a\ndescription: d\nload: {rate: 10/s, duration: 6s, mix: {browse: 1}}\n", StartupCost + 6*time.Second},
		{"longest convergence bound", `name: a
description: d
load: {rate: 10/s, duration: 5s, mix: {browse: 1}}
steady_state:
  - {check: consistency, exactly_once: true, converge_within: 2s}
expect:
  overall:
    - {check: consistency, stock_matches: true, converge_within: 5s}
`, StartupCost + 10*time.Second},
		{"docker start-up", "name: a\ndescription: d\nsystem: {runtime: docker}\nload: {rate: 10/s, duration: 6s, mix: {browse: 1}}\n", DockerStartupCost + 6*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse("a.yaml", []byte(tt.yaml))
			require.NotNil(t, sc, "%v", err)
			assert.Equal(t, tt.want, ExpectedDuration(sc))
		})
	}
	assert.Equal(t, StartupCost, ExpectedDuration(nil), "a file that does not parse still runs and fails fast")
}

func TestExpectedDurationOfCatalogFile(t *testing.T) {
	sc, err := Load("baseline.yaml")
	require.NotNil(t, sc, "%v", err)
	// 6 s of load, 3 s convergence bound.
	assert.Equal(t, StartupCost+9*time.Second, ExpectedDuration(sc))
}

func TestParseShard(t *testing.T) {
	tests := []struct {
		in      string
		k, n    int
		wantErr string
	}{
		{in: "1/1", k: 1, n: 1},
		{in: "1/2", k: 1, n: 2},
		{in: "2/2", k: 2, n: 2},
		{in: " 3/5 ", k: 3, n: 5},
		{in: "0/2", wantErr: "K must be between 1 and N (2)"},
		{in: "3/2", wantErr: "K must be between 1 and N (2)"},
		{in: "1/0", wantErr: "N must be at least 1"},
		{in: "a/b", wantErr: "whole numbers"},
		{in: "2", wantErr: "want K/N"},
		{in: "", wantErr: "want K/N"},
		{in: "-1/2", wantErr: "K must be between 1 and N"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, n, err := ParseShard(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, [2]int{tt.k, tt.n}, [2]int{k, n})
		})
	}
}

// TestShardsCoverCatalogOnce: over shards 1/N..N/N every catalog scenario runs exactly
// once, and the largest shard's expected time is within the longest scenario of the
// smallest's.
func TestShardsCoverCatalogOnce(t *testing.T) {
	items := catalogItems(t)
	var longest time.Duration
	for _, it := range items {
		longest = max(longest, it.Expected)
	}
	for n := 1; n <= 5; n++ {
		count := map[string]int{}
		var lo, hi time.Duration = 1 << 62, 0
		for k := 1; k <= n; k++ {
			shard, err := Shard(items, k, n)
			require.NoError(t, err)
			var total time.Duration
			for _, it := range shard {
				count[it.File]++
				total += it.Expected
			}
			lo, hi = min(lo, total), max(hi, total)
		}
		for _, it := range items {
			assert.Equal(t, 1, count[it.File], "N=%d: %s", n, it.File)
		}
		assert.Len(t, count, len(items), "N=%d", n)
		assert.LessOrEqual(t, hi, lo+longest, "N=%d: largest shard %s, smallest %s, longest scenario %s", n, hi, lo, longest)
		t.Logf("N=%d: shards between %s and %s of expected time (longest scenario %s)", n, lo, hi, longest)
	}
}

// TestShardsStable: the same files give the same shards whatever order they come in.
func TestShardsStable(t *testing.T) {
	items := catalogItems(t)
	reversed := slices.Clone(items)
	slices.Reverse(reversed)
	rotated := append(slices.Clone(items[3:]), items[:3]...)
	for n := 1; n <= 5; n++ {
		want, err := Shards(items, n)
		require.NoError(t, err)
		for _, other := range [][]ShardItem{reversed, rotated, slices.Clone(items)} {
			got, err := Shards(other, n)
			require.NoError(t, err)
			for k := range want {
				w, g := filesOf(want[k]), filesOf(got[k])
				slices.Sort(w)
				slices.Sort(g)
				assert.Equal(t, w, g, "N=%d shard %d", n, k+1)
			}
		}
	}
}

func TestShardsBoundaries(t *testing.T) {
	s := time.Second
	tests := []struct {
		name  string
		items []ShardItem
		n     int
		want  [][]string
	}{
		{"no items", nil, 2, [][]string{nil, nil}},
		{"more shards than items", []ShardItem{{"a", s}}, 3, [][]string{{"a"}, nil, nil}},
		{"one shard keeps the order given", []ShardItem{{"b", s}, {"a", 2 * s}}, 1, [][]string{{"b", "a"}}},
		{"longest first, equal ones by name", []ShardItem{{"c", s}, {"b", s}, {"a", 3 * s}, {"d", s}}, 2, [][]string{{"a"}, {"c", "b", "d"}}},
		{"ties go to the lowest shard", []ShardItem{{"x", s}, {"y", s}}, 2, [][]string{{"x"}, {"y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shards, err := Shards(tt.items, tt.n)
			require.NoError(t, err)
			var got [][]string
			for _, sh := range shards {
				var fs []string
				if len(sh) > 0 {
					fs = filesOf(sh)
				}
				got = append(got, fs)
			}
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := Shards([]ShardItem{{"a", s}, {"./a", s}}, 2)
	assert.ErrorContains(t, err, "listed twice")
	_, err = Shards(nil, 0)
	assert.Error(t, err)
	_, err = Shard(nil, 3, 2)
	assert.Error(t, err)
}
