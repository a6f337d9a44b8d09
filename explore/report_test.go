package explore

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleReport() *Report {
	db := Target{Kind: TargetLink, Name: "api->db", From: "api", To: "db"}
	inst := Target{Kind: TargetInstance, Name: "db-1"}
	return &Report{
		Scenario: "shop", Design: "default", Depth: 2, Kinds: []string{"latency", "down", "crash", "bandwidth"},
		Targets: []Target{db, inst},
		Trials: []Trial{
			{N: 1, Faults: []Candidate{{Kind: "latency", Target: db}}, Outcome: Passed},
			{N: 2, Faults: []Candidate{{Kind: "down", Target: db}}, Outcome: Failed, Broke: []BrokenCheck{
				{Name: "overall/error_rate", Phase: "overall", Figure: 0.25, Op: "<=", Threshold: 0.01, Unit: "ratio"},
			}, Repro: &Repro{File: "/x/repro/002.yaml", Verified: true, Verdict: "failed", Broke: []string{"overall/error_rate"}}},
			{N: 3, Faults: []Candidate{{Kind: "latency", Target: db}, {Kind: "crash", Target: inst}}, Outcome: Invalid, Reason: "fault did not land"},
		},
		Coverage: Coverage{Targets: 2, Kinds: 3, Cells: 3, TriedSingles: 2, NotTried: 1},
	}
}

func TestMatrix(t *testing.T) {
	m := sampleReport().Matrix()
	if got, want := strings.Join(m.Kinds, ","), "latency,down,crash"; got != want {
		t.Errorf("kinds: got %s, want %s (bandwidth has no rule)", got, want)
	}
	got := map[string]string{}
	for _, row := range m.Rows {
		for _, c := range row {
			got[c.Target+" "+c.Kind] = c.Outcome + " " + strings.Join(c.Broke, ";")
		}
	}
	want := map[string]string{
		"api->db latency": "passed ",
		"api->db down":    "failed overall/error_rate: 0.25 > 0.01 ratio",
		"api->db crash":   "n/a ",
		"db-1 latency":    "n/a ",
		"db-1 down":       "n/a ",
		"db-1 crash":      "not tried ",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("cell %s: got %q, want %q", k, got[k], w)
		}
	}
}

func TestWriteOutputs(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, ReportMarkdown))
	for _, want := range []string{
		"| target | latency | down | crash |",
		"| `api->db` | passed | **FAILED** overall/error_rate: 0.25 > 0.01 ratio (reproduced) | n/a |",
		"| latency api->db + crash db-1 | invalid: fault did not land |",
		"Minimal scenario: `/x/repro/002.yaml` — reproduced: overall/error_rate",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	h, _ := os.ReadFile(filepath.Join(dir, ReportHTML))
	for _, want := range []string{`<td class="failed"`, `<td class="na"`, `<td class="nottried"`, "api-&gt;db"} {
		if !strings.Contains(string(h), want) {
			t.Errorf("heat map lacks %q", want)
		}
	}
	for _, banned := range []string{"<script", "http://", "https://"} {
		if strings.Contains(string(h), banned) {
			t.Errorf("heat map is not self-contained: it holds %q", banned)
		}
	}
	var back struct {
		Matrix Matrix  `json:"matrix"`
		Trials []Trial `json:"trials"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Trials) != 3 || back.Matrix.Rows[0][1].Outcome != Failed || !back.Matrix.Rows[0][1].Verified {
		t.Errorf("json: got %d trials and cell %+v; want 3 and a verified failure", len(back.Trials), back.Matrix.Rows[0][1])
	}
}
