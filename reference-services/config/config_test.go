package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateCollectsEveryProblem(t *testing.T) {
	errs := Component{Kind: "nope", LeaseTTL: Duration(-time.Second)}.Validate()
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		`kind "nope" is unknown (want one of [registry broker merchant product order balancer gateway])`,
		"name is empty",
		"listen is empty",
		"admin is empty",
		"registry endpoints are empty",
		"lease_ttl is negative",
	}
	assert.Equal(t, want, got)
	assert.Empty(t, Component{Kind: KindRegistry, Name: "registry-1", Listen: "127.0.0.1:1", Admin: "127.0.0.1:2"}.Validate(),
		"the registry itself needs no registry endpoints")
}

func TestSaveLoadRoundTrip(t *testing.T) {
	c := Component{Kind: KindOrder, Name: "order-2", Service: "order", Listen: "127.0.0.1:1", Admin: "127.0.0.1:2",
		Registry: []string{"127.0.0.1:3"}, Broker: "nats://127.0.0.1:4", LeaseTTL: Duration(2 * time.Second), Catalog: DefaultCatalog()}
	path := filepath.Join(t.TempDir(), "order-2.json")
	require.NoError(t, c.Save(path))
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"lease_ttl": "2s"`, "durations are written for people")
	got, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, c, got)
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"kind":"order","lease_ttl":"soon"}`), 0o600))
	_, err := Load(bad)
	assert.ErrorContains(t, err, "parse config")
	invalid := filepath.Join(dir, "invalid.json")
	require.NoError(t, os.WriteFile(invalid, []byte(`{"kind":"order"}`), 0o600))
	_, err = Load(invalid)
	assert.ErrorContains(t, err, "name is empty")
	_, err = Load(filepath.Join(dir, "missing.json"))
	assert.ErrorContains(t, err, "read config")
}

func TestDurationAcceptsNanoseconds(t *testing.T) {
	var d Duration
	require.NoError(t, json.Unmarshal([]byte(`1500000000`), &d))
	assert.Equal(t, 1500*time.Millisecond, d.Std())
}

func TestCatalogIDs(t *testing.T) {
	c := Catalog{Merchants: 3, Products: 5}
	assert.Equal(t, "m-01", MerchantID(0))
	assert.Equal(t, "p-005", ProductID(4))
	assert.Equal(t, "m-02", c.ProductMerchant(4), "product i is sold by merchant i mod merchants")
}
