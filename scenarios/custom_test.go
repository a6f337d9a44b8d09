package scenarios

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTopologyFileProblemsArePlacedInEitherFile(t *testing.T) {
	file := filepath.Join("testdata", "topology", "uses-file.yaml")
	topo := filepath.Join("testdata", "topology", "topo.yaml")
	var got []string
	for _, err := range ValidateFile(file, SystemShape{}) {
		got = append(got, err.Error())
	}
	want := []string{
		file + `:5:3: system.gateways does not apply to a custom topology (hint: system.gateways configures the reference system; your topology sets its own components)`,
		file + `:9:18: load.mix: "browse" is neither a journey nor a declared target (hint: want one of home)`,
		file + `:11:25: load.targets[0]: url "/index.html" is a path, but a custom topology has no gateway to resolve it against (hint: write http://{{.Addr "web" "http"}}/index.html)`,
		file + `:13:41: faults[0]: link "api->web" is not declared in the topology, so no proxy sits on it (hint: declare it under topology.links ({from: api, to: web}); declared: web->api, client->web)`,
		file + `:18:9: expect.during.slow[0]: breaker_opened applies only to the reference system, not to a custom topology (hint: it reads the reference system's own metrics or state; use error_rate, latency, metric, http_probe or command)`,
		topo + `:4:12: topology: components[0].args[0]: render template: web has no port "htp" (ports: http) (hint: templates see .Dir, .Name, .Port "p", .Self "p", .Addr "component" "p" and .Addrs "component" "p")`,
	}
	assert.ElementsMatch(t, want, got)
}

func TestInlineAndFileTopologyCannotBothBeSet(t *testing.T) {
	src := `name: both
description: d
system: {topology: testdata/topology/topo.yaml}
topology: {components: [{name: web, command: x}]}
load: {rate: 1/s, duration: 1s, mix: {a: 1}, targets: [{name: a, url: "http://127.0.0.1:1/"}]}
`
	s, err := Parse("both.yaml", []byte(src))
	require.Error(t, err)
	require.NotNil(t, s)
	assert.Contains(t, err.Error(), "both.yaml:3:20: system.topology and topology cannot both be set")
}

func TestInlineTopologyValidScenarioHasNoProblems(t *testing.T) {
	src := `name: ok
description: d
topology:
  components:
    - {name: web, command: httpd, args: ["{{.Self \"http\"}}"], ports: [http]}
    - {name: api, command: httpd, ports: [http], replicas: 2}
  links: [{from: client, to: web}, {from: web, to: api}]
load: {rate: 1/s, duration: 5s, mix: {a: 1}, targets: [{name: a, url: "http://{{.Addr \"web\" \"http\"}}/x/{{.Seq}}"}]}
faults:
  - {name: f1, type: latency, target: web->api-2, latency: 10ms, at: 1s, for: 1s}
  - {name: f2, type: crash, target: api-1, at: 1s, for: 1s}
  - {name: f3, type: down, target: client->web, at: 2s, for: 1s}
expect:
  overall:
    - {check: http_probe, url: "http://{{.Addr \"web\" \"http\"}}/"}
    - {check: metric, component: api, metric: up, op: "==", value: 1}
`
	s, err := Parse("ok.yaml", []byte(src))
	require.NoError(t, err)
	assert.Empty(t, s.Validate(SystemShape{}))
	assert.True(t, s.HasTopology())
}

func TestSchemaDescribesTheTopology(t *testing.T) {
	var schema map[string]any
	require.NoError(t, json.Unmarshal(Schema(), &schema))
	props := schema["properties"].(map[string]any)
	topo := props["topology"].(map[string]any)
	comps := topo["properties"].(map[string]any)["components"].(map[string]any)["items"].(map[string]any)
	fields := comps["properties"].(map[string]any)
	for _, k := range []string{"name", "command", "args", "env", "dir", "files", "ports", "replicas", "ready", "metrics", "address"} {
		assert.Contains(t, fields, k)
	}
	ready := fields["ready"].(map[string]any)["properties"].(map[string]any)
	assert.Equal(t, map[string]any{"$ref": "#/$defs/duration", "description": "how long to wait, default 20s"}, ready["timeout"])
	system := props["system"].(map[string]any)["properties"].(map[string]any)
	assert.Contains(t, system, "topology")
}

// TestCheckTemplatesAreValidatedOnTheirLines holds the templated fields of the checks
// (scenarios.Templated) to the topology: a bad template on its own line, a probe of a path
// refused (there is no gateway), and each reported once.
func TestCheckTemplatesAreValidatedOnTheirLines(t *testing.T) {
	src := `name: templates
description: d
topology:
  components:
    - {name: web, command: httpd, ports: [http]}
  links: [{from: client, to: web}]
load: {rate: 1/s, duration: 5s, mix: {a: 1}, targets: [{name: a, url: "http://{{.Addr \"web\" \"http\"}}/"}]}
expect:
  overall:
    - check: http_probe
      url: "http://{{.Addr \"web\" \"htp\"}}/"
    - check: http_probe
      url: /health
    - check: command
      run: [curl, "{{.Addr \"wbe\" \"http\"}}"]
`
	s, err := Parse("templates.yaml", []byte(src))
	require.NoError(t, err)
	var got []string
	for _, err := range s.Validate(SystemShape{}) {
		got = append(got, err.Error())
	}
	require.Len(t, got, 3, "%q", got)
	assert.Contains(t, got[0], `templates.yaml:11:12: expect.overall[0]: `)
	assert.Contains(t, got[0], `"htp"`)
	assert.Equal(t, `templates.yaml:13:12: expect.overall[1]: url "/health" is a path, but a custom topology has no gateway to resolve it against (hint: write http://{{.Addr "web" "http"}}/health)`, got[1])
	assert.Contains(t, got[2], `templates.yaml:15:19: expect.overall[2]: render template: `)
	assert.Contains(t, got[2], `"wbe"`)
}

// A ramp step's own mix is checked as load.mix is, each problem placed on its step.
func TestRampStepMixIsValidated(t *testing.T) {
	src := `name: step-mix
description: d
load:
  mix: {browse: 1}
  duration: 4s
  ramp:
    - {rate: 10/s, for: 2s, mix: {brows: 1, place_order: -1}}
    - {rate: 10/s, for: 2s, mix: {browse: 0}}
`
	s, err := Parse("step-mix.yaml", []byte(src))
	require.NoError(t, err)
	var got []string
	for _, err := range s.Validate(SystemShape{}) {
		got = append(got, err.Error())
	}
	want := []string{
		`step-mix.yaml:7:35: load.ramp[0].mix: "brows" is neither a journey nor a declared target (hint: did you mean "browse"?)`,
		`step-mix.yaml:7:58: load.ramp[0].mix.place_order: weight -1 is negative (hint: weights are relative shares, 0 or more)`,
		`step-mix.yaml:8:34: load.ramp[1].mix weights sum to 0 (hint: give at least one journey a positive weight)`,
	}
	assert.Equal(t, want, got)
}
