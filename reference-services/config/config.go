// Package config is the contract between the harness and the reference system's processes:
// the parent writes one Component as JSON per child and re-executes itself with
// `faultline serve --config FILE`. Keeping it a plain struct lets the same config start a
// component in-process (tests), as an OS process, or in a container.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Kinds of component the faultline binary can serve.
const (
	KindRegistry = "registry"
	KindBroker   = "broker"
	KindMerchant = "merchant"
	KindOrder    = "order"
	KindProduct  = "product"
	KindGateway  = "gateway"
	KindBalancer = "balancer"
)

// Kinds lists every kind, in start order.
var Kinds = []string{KindRegistry, KindBroker, KindMerchant, KindProduct, KindOrder, KindBalancer, KindGateway}

// Duration is a time.Duration that reads and writes as a Go duration string ("2s").
type Duration time.Duration

// MarshalJSON writes d as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "1.5s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("parse duration: %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("parse duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Catalog is the seed data the domain services create on first start. It is deterministic
// so that load generators and consistency checks can name products and merchants.
type Catalog struct {
	Merchants    int   `json:"merchants"`
	Products     int   `json:"products"`
	InitialStock int64 `json:"initial_stock"`
}

// DefaultCatalog is big enough that a few minutes of load never empties a product.
func DefaultCatalog() Catalog { return Catalog{Merchants: 5, Products: 20, InitialStock: 1_000_000} }

// MerchantID returns the id of merchant i (0-based).
func MerchantID(i int) string { return fmt.Sprintf("m-%02d", i+1) }

// ProductID returns the id of product i (0-based).
func ProductID(i int) string { return fmt.Sprintf("p-%03d", i+1) }

// ProductMerchant returns the merchant that sells product i.
func (c Catalog) ProductMerchant(i int) string { return MerchantID(i % max(c.Merchants, 1)) }

// JWT names how the gateway validates bearer tokens.
type JWT struct {
	SecretFile string `json:"secret_file"`
	Issuer     string `json:"issuer"`
	Audience   string `json:"audience"`
}

// Component is everything one process of the reference system needs to start.
type Component struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`    // instance name, unique in a system: "order-2"
	Service string `json:"service"` // logical service: "order"

	Listen string `json:"listen"`         // main address: gRPC, gateway HTTP, etcd client, NATS
	Admin  string `json:"admin"`          // HTTP: /healthz /readyz /metrics
	Peer   string `json:"peer,omitempty"` // etcd peer address

	DataDir string `json:"data_dir"` // survives restarts; replicas of one service share it

	Registry []string `json:"registry,omitempty"` // etcd endpoints (host:port) this process dials
	Broker   string   `json:"broker,omitempty"`   // nats://host:port this process dials
	Balancer string   `json:"balancer,omitempty"` // server-side balancer host:port (discovery: server)

	LeaseTTL Duration `json:"lease_ttl"`
	Design   string   `json:"design,omitempty"` // design YAML path; empty means the default design

	// Routed is set when a harness interposes proxies: callers then dial only the
	// per-caller routes the harness publishes in the registry, never raw addresses.
	Routed bool `json:"routed,omitempty"`

	JWT     JWT     `json:"jwt"`
	Catalog Catalog `json:"catalog"`
}

// Validate reports every problem with c at once.
func (c Component) Validate() []error {
	var errs []error
	known := false
	for _, k := range Kinds {
		known = known || k == c.Kind
	}
	if !known {
		errs = append(errs, fmt.Errorf("kind %q is unknown (want one of %v)", c.Kind, Kinds))
	}
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("listen is empty"))
	}
	if c.Admin == "" {
		errs = append(errs, errors.New("admin is empty"))
	}
	if c.Kind != KindRegistry && c.Kind != KindBroker && len(c.Registry) == 0 {
		errs = append(errs, errors.New("registry endpoints are empty"))
	}
	if c.LeaseTTL.Std() < 0 {
		errs = append(errs, errors.New("lease_ttl is negative"))
	}
	return errs
}

// Load reads and validates a component config file.
func Load(path string) (Component, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Component{}, fmt.Errorf("read config: %w", err)
	}
	var c Component
	if err := json.Unmarshal(b, &c); err != nil {
		return Component{}, fmt.Errorf("parse config %s: %w", path, err)
	}
	if errs := c.Validate(); len(errs) > 0 {
		return Component{}, fmt.Errorf("validate config %s: %w", path, errors.Join(errs...))
	}
	return c, nil
}

// Save writes c as indented JSON.
func (c Component) Save(path string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
