package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// The built-in catalog is compiled in so that `faultline run <name>` works from any
// directory and the files a test validates are the ones users run.
//
//go:embed *.yaml
var catalogFS embed.FS

// Catalog lists the built-in scenario names, sorted.
func Catalog() []string {
	entries, err := fs.ReadDir(catalogFS, ".")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// CatalogFile returns the YAML of a built-in scenario.
func CatalogFile(name string) ([]byte, error) {
	b, err := catalogFS.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("read builtin scenario: %q is not in the catalog (%s)", name, strings.Join(Catalog(), ", "))
	}
	return b, nil
}

// Builtin parses a built-in scenario by name; see Parse.
func Builtin(name string, opts ...Option) (*Scenario, error) {
	b, err := CatalogFile(name)
	if err != nil {
		return nil, err
	}
	return Parse(name+".yaml", b, opts...)
}
