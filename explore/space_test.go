package explore

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/result"
)

// observed is a small system: api (2 instances) calls db and cache; cache is never used
// by the load; every instance calls the registry per process.
func observed() Observed {
	return Observed{
		Links: []faults.Link{
			{From: "api", To: "db-1", ToService: "db"},
			{From: "api", To: "cache-1", ToService: "cache"},
			{From: "api-1", FromService: "api", To: "registry-1", ToService: "registry"},
			{From: "api-2", FromService: "api", To: "registry-1", ToService: "registry"},
		},
		Traffic: map[string]int{"api->db-1": 12, "api-2->registry-1": 3},
		Components: []result.Component{
			{Name: "api-1", Service: "api"}, {Name: "api-2", Service: "api"},
			{Name: "db-1", Service: "db"}, {Name: "cache-1", Service: "cache"}, {Name: "registry-1", Service: "registry"},
		},
	}
}

func TestEnumeratePrunesWhatTheLoadDidNotUse(t *testing.T) {
	sp := Enumerate(observed(), []string{"latency", "crash", "bandwidth"})
	var got []string
	for _, tg := range sp.Targets {
		g := tg.Kind + " " + tg.Name
		if tg.Kind == TargetLink {
			g += fmt.Sprintf(" %d", tg.Traffic)
		}
		got = append(got, g)
	}
	want := []string{
		"link api->db 12", "link api->registry 3",
		"instance api-1", "instance api-2", "instance db-1", "instance registry-1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets:\n got %q\nwant %q", got, want)
	}
	var pruned []string
	for _, p := range sp.Pruned {
		pruned = append(pruned, p.What)
	}
	if want := []string{"link api->cache", "instance cache-1"}; !slices.Equal(pruned, want) {
		t.Errorf("pruned: got %q, want %q", pruned, want)
	}
	if len(sp.Skipped) != 1 || sp.Skipped[0].What != "kind bandwidth" {
		t.Errorf("skipped: got %+v, want kind bandwidth", sp.Skipped)
	}
	var singles []string
	for _, c := range sp.Singles {
		singles = append(singles, c.Key())
	}
	wantSingles := []string{"latency api->db", "latency api->registry", "crash api-1", "crash api-2", "crash db-1", "crash registry-1"}
	if !slices.Equal(singles, wantSingles) {
		t.Errorf("singles:\n got %q\nwant %q", singles, wantSingles)
	}
}

func TestCandidateAttrs(t *testing.T) {
	link := Target{Kind: TargetLink, Name: "api->db", From: "api", To: "db"}
	for _, tc := range []struct {
		c    Candidate
		want string
	}{
		{Candidate{Kind: "latency", Target: link}, "map[latency:1.5s target:api->db]"},
		{Candidate{Kind: "down", Target: link}, "map[target:api->db]"},
		{Candidate{Kind: "partition", Target: link}, "map[groups:[[api] [db]]]"},
		{Candidate{Kind: "pause", Target: Target{Kind: TargetInstance, Name: "db-1"}}, "map[target:db-1]"},
	} {
		if got := fmt.Sprint(tc.c.Attrs()); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.c.Key(), got, tc.want)
		}
	}
}

func TestPairsSkipSameTargetAndFollowTheSeed(t *testing.T) {
	a := Candidate{Kind: "latency", Target: Target{Name: "api->db"}}
	b := Candidate{Kind: "down", Target: Target{Name: "api->db"}}
	c := Candidate{Kind: "crash", Target: Target{Name: "db-1"}}
	d := Candidate{Kind: "pause", Target: Target{Name: "api-1"}}
	key := func(ps [][2]Candidate) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p[0].Key()+" + "+p[1].Key())
		}
		return out
	}
	got := key(Pairs([]Candidate{a, b, c, d}, 7))
	want := []string{
		"latency api->db + crash db-1", "latency api->db + pause api-1", "down api->db + crash db-1",
		"down api->db + pause api-1", "crash db-1 + pause api-1",
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("pairs: got %q, want (in any order) %q", got, want)
	}
	if again := key(Pairs([]Candidate{a, b, c, d}, 7)); !slices.Equal(again, got) {
		t.Errorf("same seed, another order: %q then %q", got, again)
	}
	differs := false
	for s := int64(1); s < 20 && !differs; s++ {
		differs = !slices.Equal(key(Pairs([]Candidate{a, b, c, d}, s)), got)
	}
	if !differs {
		t.Error("no other seed changed the order of the pairs")
	}
	if got := Pairs([]Candidate{a}, 1); len(got) != 0 {
		t.Errorf("one candidate: got %d pairs, want 0", len(got))
	}
}

func TestValidateKinds(t *testing.T) {
	if err := ValidateKinds(DefaultKinds); err != nil {
		t.Errorf("default kinds: %v", err)
	}
	err := ValidateKinds([]string{"latency", "meteor"})
	if err == nil || !strings.Contains(err.Error(), `meteor`) || !strings.Contains(err.Error(), "known: ") {
		t.Errorf("unknown kind: got %v, want an error naming meteor and the known kinds", err)
	}
}
