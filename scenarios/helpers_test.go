package scenarios

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func mustNode(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &doc))
	return doc.Content[0]
}

func reflectValue(ptr any) reflect.Value { return reflect.ValueOf(ptr).Elem() }

func reflectTypeOf(v any) reflect.Type { return reflect.TypeOf(v) }
