package scenarios

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFaultRequiredFieldsAgree derives, for every fault kind, which attributes the
// fault's own Validate refuses to leave out (by removing each from a valid example) and
// which the schema marks required; they must be the same. crash_loop required interval
// and duration while the schema required neither.
func TestFaultRequiredFieldsAgree(t *testing.T) {
	schema := schemaJSON(t)
	variants := map[string]map[string]any{}
	for _, v := range schema["$defs"].(map[string]any)["fault"].(map[string]any)["oneOf"].([]any) {
		obj := v.(map[string]any)
		variants[obj["title"].(string)] = obj
	}
	for _, kind := range DefaultFaultDecoder().Kinds() {
		t.Run(kind, func(t *testing.T) {
			doc, ok := faultDocs[kind]
			require.True(t, ok, "fault %q has no description in faultDocs", kind)
			require.Empty(t, problems(t, doc.Example), "the example of %s must validate", kind)

			var fromSchema []string
			for _, r := range variants[kind]["required"].([]any) {
				if !contains(faultCommon, r.(string)) {
					fromSchema = append(fromSchema, r.(string))
				}
			}
			spec, err := DefaultFaultDecoder().New(kind)
			require.NoError(t, err)
			var fromValidator []string
			for _, field := range fieldNames(reflectTypeOf(spec)) {
				src, removed := withoutAttribute(doc.Example, field)
				if !removed {
					continue // absent from a valid example: not required
				}
				s, _ := Parse("x.yaml", []byte(src))
				require.NotNil(t, s)
				require.Len(t, s.Faults, 1)
				val, ok := s.Faults[0].Spec.(validator)
				require.True(t, ok)
				for _, e := range safeValidate(val) {
					if key, _, _ := splitSpecErr(nil, e, []string{field}); key == field {
						fromValidator = append(fromValidator, field)
						break
					}
				}
			}
			sort.Strings(fromSchema)
			sort.Strings(fromValidator)
			assert.Equal(t, fromValidator, fromSchema, "required by Validate (left) and by the schema (right)")
		})
	}
}

// withoutAttribute removes the fault attribute line "    field: ..." from an example.
func withoutAttribute(src, field string) (string, bool) {
	re := regexp.MustCompile(`(?m)^    ` + regexp.QuoteMeta(field) + `:.*\n`)
	out := re.ReplaceAllString(src, "")
	return out, out != src
}

// TestSchemaDescribesEveryField: every property of the schema, fault attributes included,
// has a description an editor can show.
func TestSchemaDescribesEveryField(t *testing.T) {
	var missing []string
	var walk func(node any, at string)
	walk = func(node any, at string) {
		switch n := node.(type) {
		case map[string]any:
			if props, ok := n["properties"].(map[string]any); ok {
				for k, p := range props {
					pm := p.(map[string]any)
					_, desc := pm["description"]
					_, fixed := pm["const"]
					if !desc && !fixed && !(k == "type" || k == "check") {
						missing = append(missing, fmt.Sprintf("%s.%s (%v)", at, k, n["title"]))
					}
				}
			}
			for k, v := range n {
				walk(v, at+"/"+k)
			}
		case []any:
			for i, v := range n {
				walk(v, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	walk(schemaJSON(t), "")
	sort.Strings(missing)
	assert.Empty(t, missing, "schema fields without a description")
}

func schemaJSON(t *testing.T) map[string]any {
	t.Helper()
	var out map[string]any
	require.NoError(t, json.Unmarshal(Schema(), &out))
	return out
}

func TestWithoutAttribute(t *testing.T) {
	out, ok := withoutAttribute("a\n    target: x\n    pick: one\n", "target")
	assert.True(t, ok)
	assert.Equal(t, "a\n    pick: one\n", out)
	_, ok = withoutAttribute("a\n", "target")
	assert.False(t, ok)
	assert.False(t, strings.Contains(out, "target"))
}

var updateReference = flag.Bool("update-reference", false, "rewrite docs/SCENARIOS.md")

// TestReferenceIsGenerated: docs/SCENARIOS.md is exactly what the generator produces from
// the schema; regenerate with ReferenceCommand.
func TestReferenceIsGenerated(t *testing.T) {
	file := filepath.Join("..", "docs", "SCENARIOS.md")
	want := append(Reference(), '\n')
	if *updateReference {
		require.NoError(t, os.WriteFile(file, want, 0o644))
	}
	got, err := os.ReadFile(file)
	require.NoError(t, err, "docs/SCENARIOS.md is missing; run %s", ReferenceCommand)
	assert.Equal(t, string(want), string(got), "docs/SCENARIOS.md is stale; run %s", ReferenceCommand)
}

// TestReferenceExamplesValidate: every YAML block of docs/SCENARIOS.md is a whole
// scenario that validates against the reference system, and every fault kind has one.
func TestReferenceExamplesValidate(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "SCENARIOS.md"))
	require.NoError(t, err)
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	covered := map[string]bool{}
	for i, b := range blocks {
		s, err := Parse(fmt.Sprintf("SCENARIOS.md#example-%d", i+1), []byte(b[1]))
		require.NotNil(t, s, "%v", err)
		assert.Empty(t, s.Validate(SystemShape{}), "example %d:\n%s", i+1, b[1])
		for _, f := range s.Faults {
			covered[f.Type] = true
		}
	}
	for _, kind := range DefaultFaultDecoder().Kinds() {
		assert.True(t, covered[kind], "docs/SCENARIOS.md has no example of %s", kind)
	}
}
