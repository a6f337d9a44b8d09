package scenarios

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const compareBase = `name: cmp
description: two designs under the same load
load:
  rate: 10/s
  duration: 5s
  mix: {browse: 1}
`

func TestCompareList(t *testing.T) {
	tests := []struct {
		name string
		list string
		want []string // substrings of the problems, in file order; nil for none
	}{
		{"two designs", `compare:
  - name: breaker-off
    design: designs/no-breaker.yaml
  - name: breaker-on
    design: {base: default}
`, nil},
		{"one design", `compare:
  - name: only
    design: designs/resilient.yaml
`, []string{"cmp.yaml:8:3: compare lists one design"}},
		{"bad and duplicate names", `compare:
  - name: Breaker On
    design: designs/a.yaml
  - name: b
    design: designs/b.yaml
  - name: b
    design: designs/c.yml
`, []string{`cmp.yaml:8:11: compare[0]: name "Breaker On" is not a valid design name`,
			`cmp.yaml:12:11: compare[2]: design name "b" is already used by compare[1] (line 10)`}},
		{"empty, missing and non-yaml designs", `compare:
  - name: a
    design: ""
  - name: b
  - name: c
    design: designs/c.json
`, []string{`cmp.yaml:9:13: compare[0]: design is empty`,
			`cmp.yaml:10:5: compare[1]: missing required field "design"`,
			`cmp.yaml:12:13: compare[2]: design "designs/c.json" is not a .yaml file`}},
		{"misspelt key", `compare:
  - name: a
    design: designs/a.yaml
  - name: b
    desing: designs/b.yaml
`, []string{`compare[1]: missing required field "design"`, `unknown field "desing" in compare[1] (hint: did you mean "design"?)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := Parse("cmp.yaml", []byte(compareBase+tt.list), WithFaultDecoder(stubFaults{}))
			require.NotNil(t, s)
			var got []string
			for _, err := range s.Validate(SystemShape{}) {
				got = append(got, err.Error())
			}
			require.Len(t, got, len(tt.want), "problems:\n%s", strings.Join(got, "\n"))
			for i, w := range tt.want {
				assert.Contains(t, got[i], w)
			}
		})
	}
}

func TestCompareListDecodes(t *testing.T) {
	s, err := Parse("cmp.yaml", []byte(compareBase+`compare:
  - name: breaker-off
    design: designs/no-breaker.yaml
    description: no breakers anywhere
  - name: breaker-on
    design: {base: default}
`), WithFaultDecoder(stubFaults{}))
	require.NoError(t, err)
	require.Len(t, s.Compare, 2)
	got := []string{s.Compare[0].Name, s.Compare[0].Design.Path, s.Compare[0].Description, s.Compare[1].Name}
	assert.Equal(t, []string{"breaker-off", "designs/no-breaker.yaml", "no breakers anywhere", "breaker-on"}, got)
	require.NotNil(t, s.Compare[1].Design.Inline)
}

func TestSchemaDescribesCompare(t *testing.T) {
	var root struct {
		Properties map[string]struct {
			Type  string `json:"type"`
			Items struct {
				Required   []string       `json:"required"`
				Properties map[string]any `json:"properties"`
			} `json:"items"`
		} `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(Schema(WithFaultDecoder(stubFaults{})), &root))
	c, ok := root.Properties["compare"]
	require.True(t, ok, "the schema has a compare property")
	assert.Equal(t, "array", c.Type)
	assert.ElementsMatch(t, []string{"name", "design"}, c.Items.Required)
	assert.Contains(t, c.Items.Properties, "description")
}
