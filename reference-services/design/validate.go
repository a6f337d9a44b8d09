package design

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("250ms") in YAML.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as "250ms" so a design round-trips through YAML.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads "250ms"; a bare 0 is accepted as "off".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = Duration(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration like \"250ms\" or \"2s\", got %q", s)
	}
	return v, nil
}

// Validate reports every problem at once, each with the field path it is about.
func (d Design) Validate() []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if d.Base != "" && d.Base != BaseDefault && d.Base != BaseNone {
		add("base", "must be %q or %q, got %q", BaseDefault, BaseNone, d.Base)
	}
	if d.Inventory != "" && d.Inventory != InventoryAsync && d.Inventory != InventorySync {
		add("inventory", "must be %q or %q, got %q", InventoryAsync, InventorySync, d.Inventory)
	}
	for _, sw := range []struct{ path, v string }{{"outbox", d.Outbox}, {"consumer_idempotency", d.ConsumerIdempotency}} {
		if sw.v != "" && sw.v != On && sw.v != Off {
			add(sw.path, "must be %q or %q, got %q", On, Off, sw.v)
		}
	}
	if d.Outbox == Off && d.Inventory == InventorySync {
		add("outbox", "is only used by the async inventory design; the sync design has no events to lose")
	}
	if d.Discovery != "" && d.Discovery != DiscoveryClient && d.Discovery != DiscoveryServer {
		add("discovery", "must be %q or %q, got %q", DiscoveryClient, DiscoveryServer, d.Discovery)
	}
	if d.Gateways < 0 || d.Gateways > 16 {
		add("gateways", "must be between 1 and 16, got %d", d.Gateways)
	}
	g := d.Gateway
	if g.MaxInFlight < 0 {
		add("gateway.max_in_flight", "must be >= 0 (0 = unlimited), got %d", g.MaxInFlight)
	}
	if g.MaxQueueWait < 0 {
		add("gateway.max_queue_wait", "must be >= 0, got %s", g.MaxQueueWait)
	}
	if g.ClientRPS < 0 {
		add("gateway.client_rps", "must be >= 0 (0 = off), got %g", g.ClientRPS)
	}
	if g.ClientBurst < 0 {
		add("gateway.client_burst", "must be >= 0, got %d", g.ClientBurst)
	}
	if g.MaxBodyBytes < 0 {
		add("gateway.max_body_bytes", "must be >= 0, got %d", g.MaxBodyBytes)
	}
	keys := make([]string, 0, len(d.Policies))
	for k := range d.Policies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := fmt.Sprintf("policies[%q]", k)
		if !slices.Contains(Edges, k) {
			add(path, "unknown edge (known: %s)", strings.Join(Edges, ", "))
			continue
		}
		for _, e := range d.Policies[k].Check(k) {
			errs = append(errs, fmt.Errorf("%s.%w", path, e))
		}
	}
	return errs
}

// Check reports every problem with p as the policy of edge ("caller->dependency"); field
// paths are relative to the policy. Validate calls it for every edge of a design.
func (p Policy) Check(edge string) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if p.Timeout < 0 {
		add("timeout", "must be >= 0 (0 = off), got %s", p.Timeout)
	}
	if r := p.Retry; r != nil {
		if r.MaxAttempts < 1 {
			add("retry.max_attempts", "must be >= 1, got %d", r.MaxAttempts)
		}
		if r.MaxAttempts > 10 {
			add("retry.max_attempts", "must be <= 10, got %d", r.MaxAttempts)
		}
		if r.Backoff < 0 {
			add("retry.backoff", "must be >= 0, got %s", r.Backoff)
		}
		if r.MaxBackoff < 0 {
			add("retry.max_backoff", "must be >= 0, got %s", r.MaxBackoff)
		}
		if r.MaxBackoff > 0 && r.MaxBackoff < r.Backoff {
			add("retry.max_backoff", "must be >= backoff (%s), got %s", r.Backoff, r.MaxBackoff)
		}
		if r.Jitter < 0 || r.Jitter > 1 {
			add("retry.jitter", "must be between 0 and 1, got %g", r.Jitter)
		}
		if b := r.Budget; b != nil {
			if b.MaxRatio <= 0 || b.MaxRatio > 1 {
				add("retry.budget.max_ratio", "must be > 0 and <= 1, got %g", b.MaxRatio)
			}
			if b.MinConcurrency < 0 {
				add("retry.budget.min_concurrency", "must be >= 0, got %d", b.MinConcurrency)
			}
		}
	}
	if b := p.Breaker; b != nil {
		if b.FailureRatio <= 0 || b.FailureRatio > 1 {
			add("breaker.failure_ratio", "must be > 0 and <= 1, got %g", b.FailureRatio)
		}
		if b.MinRequests < 1 {
			add("breaker.min_requests", "must be >= 1, got %d", b.MinRequests)
		}
		if b.Window < 0 {
			add("breaker.window", "must be >= 0 (0 = count-based), got %s", b.Window)
		}
		if b.Delay <= 0 {
			add("breaker.delay", "must be > 0, got %s", b.Delay)
		}
		if b.SuccessThreshold < 0 {
			add("breaker.success_threshold", "must be >= 0, got %d", b.SuccessThreshold)
		}
	}
	if b := p.Bulkhead; b != nil {
		if b.MaxConcurrent < 1 {
			add("bulkhead.max_concurrent", "must be >= 1, got %d", b.MaxConcurrent)
		}
		if b.MaxWait < 0 {
			add("bulkhead.max_wait", "must be >= 0, got %s", b.MaxWait)
		}
	}
	if r := p.RateLimit; r != nil {
		if r.RPS <= 0 {
			add("rate_limit.rps", "must be > 0, got %g", r.RPS)
		}
		if r.Burst < 0 {
			add("rate_limit.burst", "must be >= 0, got %d", r.Burst)
		}
		if r.MaxWait < 0 {
			add("rate_limit.max_wait", "must be >= 0, got %s", r.MaxWait)
		}
	}
	switch p.Fallback {
	case FallbackNone:
	case FallbackStaleCache:
		// Only reads: a cached PlaceOrder answer would hide a write that never happened.
		if edge != "gateway->product" && edge != "gateway->merchant" {
			add("fallback", "%q is only served for the gateway's product and merchant reads, not on %s", p.Fallback, edge)
		}
	default:
		add("fallback", "must be \"\" or %q, got %q", FallbackStaleCache, p.Fallback)
	}
	if h := p.Hedge; h != nil {
		if h.Delay <= 0 {
			add("hedge.delay", "must be > 0, got %s", h.Delay)
		}
		if h.MaxHedges < 0 || h.MaxHedges > 4 {
			add("hedge.max_hedges", "must be between 1 and 4, got %d", h.MaxHedges)
		}
		if edge == "order->broker" {
			add("hedge", "publishing is not a read; hedging it would only duplicate events")
		}
	}
	return errs
}
