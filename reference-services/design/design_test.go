package design_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/reference-services/design"
)

func TestDefaultIsValid(t *testing.T) {
	d := design.Default()
	assert.Empty(t, d.Validate())
	for _, edge := range design.Edges {
		p := d.Policies[edge]
		assert.NotZero(t, p.Timeout, edge)
		assert.NotNil(t, p.Retry, edge)
		assert.NotNil(t, p.Breaker, edge)
	}
	assert.Equal(t, design.FallbackStaleCache, d.Policy("gateway", "product").Fallback)
	assert.Equal(t, design.InventoryAsync, d.Inventory)
}

func TestPolicyAbsentIsZero(t *testing.T) {
	d := design.Design{}
	assert.Equal(t, design.Policy{}, d.Policy("gateway", "product"))
}

func TestLoadEmptyPathIsDefault(t *testing.T) {
	got, err := design.Load("")
	require.NoError(t, err)
	assert.Equal(t, design.Default(), got)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := design.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}

func TestResilientFileIsDefault(t *testing.T) {
	got, err := design.Load("../../designs/resilient.yaml")
	require.NoError(t, err)
	want := design.Default()
	got.Base, want.Base = "", ""
	assert.Equal(t, want, got)
}

func TestExampleDesigns(t *testing.T) {
	files, err := filepath.Glob("../../designs/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 5)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			d, err := design.Load(f)
			require.NoError(t, err)
			assert.NotEmpty(t, d.Description)
			assert.Equal(t, strings.TrimSuffix(filepath.Base(f), ".yaml"), d.Name)
		})
	}

	noBreaker, err := design.Load("../../designs/no-breaker.yaml")
	require.NoError(t, err)
	for _, edge := range design.Edges {
		assert.Nil(t, noBreaker.Policies[edge].Breaker, edge)
		assert.NotNil(t, noBreaker.Policies[edge].Retry, "retries stay on %s", edge)
	}
	noBudget, err := design.Load("../../designs/no-retry-budget.yaml")
	require.NoError(t, err)
	assert.Nil(t, noBudget.Policy("gateway", "product").Retry.Budget)
	assert.Equal(t, 4, noBudget.Policy("gateway", "product").Retry.MaxAttempts)
	assert.Equal(t, design.Default().Policy("gateway", "product").Retry.Backoff, noBudget.Policy("gateway", "product").Retry.Backoff,
		"fields the overlay leaves out keep the default")
	noOutbox, err := design.Load("../../designs/no-outbox.yaml")
	require.NoError(t, err)
	assert.Equal(t, design.Off, noOutbox.Outbox)
	assert.Equal(t, design.On, noOutbox.ConsumerIdempotency)
	noDedup, err := design.Load("../../designs/no-consumer-idempotency.yaml")
	require.NoError(t, err)
	assert.Equal(t, design.Off, noDedup.ConsumerIdempotency)
	assert.Equal(t, design.On, noDedup.Outbox)
	syncInv, err := design.Load("../../designs/sync-inventory.yaml")
	require.NoError(t, err)
	assert.Equal(t, design.InventorySync, syncInv.Inventory)
	server, err := design.Load("../../designs/server-discovery.yaml")
	require.NoError(t, err)
	assert.Equal(t, design.DiscoveryServer, server.Discovery)
}

func TestParseOverlayRules(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, d design.Design)
	}{
		{"omitted base means default", "name: x\n", func(t *testing.T, d design.Design) {
			assert.Equal(t, design.Default().Policies, d.Policies)
			assert.Equal(t, design.BaseDefault, d.Base)
		}},
		{"base none starts empty", "base: none\nname: x\n", func(t *testing.T, d design.Design) {
			assert.Empty(t, d.Policies)
			assert.Equal(t, design.Policy{}, d.Policy("gateway", "product"))
			assert.Equal(t, 1, d.Gateways)
			assert.Equal(t, design.InventoryAsync, d.Inventory)
			assert.Equal(t, int64(design.DefaultMaxBodyBytes), d.Gateway.MaxBodyBytes)
		}},
		{"field override deep-merges", "policies:\n  gateway->product:\n    retry: {max_attempts: 5}\n", func(t *testing.T, d design.Design) {
			p := d.Policy("gateway", "product")
			assert.Equal(t, 5, p.Retry.MaxAttempts)
			assert.Equal(t, design.Default().Policy("gateway", "product").Retry.Backoff, p.Retry.Backoff)
			assert.NotNil(t, p.Breaker)
			assert.Equal(t, design.FallbackStaleCache, p.Fallback)
			assert.Equal(t, 3, d.Policy("gateway", "merchant").Retry.MaxAttempts, "other edges untouched")
		}},
		{"null switches a policy off", "policies:\n  order->broker: {breaker: null}\n", func(t *testing.T, d design.Design) {
			assert.Nil(t, d.Policy("order", "broker").Breaker)
			assert.NotNil(t, d.Policy("order", "broker").Retry)
		}},
		{"null edge switches the edge off", "policies:\n  order->broker: null\n", func(t *testing.T, d design.Design) {
			assert.Equal(t, design.Policy{}, d.Policy("order", "broker"))
		}},
		{"durations and hedge", "base: none\npolicies:\n  gateway->product:\n    timeout: 250ms\n    hedge: {delay: 30ms, max_hedges: 2}\n", func(t *testing.T, d design.Design) {
			p := d.Policy("gateway", "product")
			assert.Equal(t, 250*time.Millisecond, p.Timeout.Std())
			assert.Equal(t, &design.Hedge{Delay: design.Duration(30 * time.Millisecond), MaxHedges: 2}, p.Hedge)
		}},
		{"name defaults to the file name", "base: default\n", func(t *testing.T, d design.Design) {
			assert.Equal(t, "mine", d.Name)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := design.Parse("dir/mine.yaml", []byte(tt.yaml))
			require.NoError(t, err)
			tt.check(t, d)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"the file is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"d.yaml:1:1: want a mapping of design fields"}},
		{"syntax", "name: [\n", []string{"parse design d.yaml"}},
		{"unknown top field with hint", "nmae: x\n", []string{`d.yaml:1:1: design: unknown field "nmae" (did you mean "name"?)`}},
		{"unknown nested field with position", "policies:\n  gateway->product:\n    retry: {max_attemps: 3}\n", []string{
			`d.yaml:3:13: policies["gateway->product"].retry: unknown field "max_attemps" (did you mean "max_attempts"?)`}},
		{"unknown edge", "policies:\n  order->prodct: {}\n", []string{`d.yaml:2:3: policies: unknown edge "order->prodct" (did you mean "order->product"?)`}},
		{"far-off field lists known", "zzzzzzzzzz: 1\n", []string{"unknown field \"zzzzzzzzzz\" (known: base, consumer_idempotency, description, discovery"}},
		{"bad duration", "policies:\n  gateway->product: {timeout: 5x}\n", []string{`d.yaml:2:31: policies["gateway->product"].timeout: want a duration like "250ms" or "2s", got "5x"`}},
		{"duration as mapping", "policies:\n  gateway->product: {timeout: {a: 1}}\n", []string{"timeout: want a duration"}},
		{"int wanted", "gateways: two\n", []string{`d.yaml:1:11: gateways: want a whole number, got "two"`}},
		{"float wanted", "gateway: {client_rps: fast}\n", []string{`gateway.client_rps: want a number, got "fast"`}},
		{"mapping wanted", "gateway: 3\n", []string{"d.yaml:1:10: gateway: want a mapping, got \"3\""}},
		{"policies not a mapping", "policies: [1]\n", []string{"policies: want a mapping, got a list"}},
		{"scalar wanted", "name: [a]\n", []string{"name: want a string, got a list"}},
		{"duplicate field", "name: a\nname: b\n", []string{`d.yaml:2:1: design: field "name" is given twice`}},
		{"unknown base", "base: other\n", []string{`base "other" is unknown`}},
		{"several problems at once", "nmae: x\ngateways: two\n", []string{`unknown field "nmae"`, "gateways: want a whole number"}},
		{"validation after parse", "inventory: sink\npolicies:\n  gateway->product: {retry: {max_attempts: 0}}\n", []string{
			`validate design d.yaml`, `inventory: must be "async" or "sync", got "sink"`,
			`policies["gateway->product"].retry.max_attempts: must be >= 1, got 0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := design.Parse("d.yaml", []byte(tt.yaml))
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ms := func(d time.Duration) design.Duration { return design.Duration(d) }
	tests := []struct {
		name   string
		mutate func(d *design.Design)
		want   string
	}{
		{"inventory", func(d *design.Design) { d.Inventory = "later" }, `inventory: must be "async" or "sync", got "later"`},
		{"discovery", func(d *design.Design) { d.Discovery = "dns" }, `discovery: must be "client" or "server", got "dns"`},
		{"outbox", func(d *design.Design) { d.Outbox = "maybe" }, `outbox: must be "on" or "off", got "maybe"`},
		{"consumer idempotency", func(d *design.Design) { d.ConsumerIdempotency = "no" }, `consumer_idempotency: must be "on" or "off", got "no"`},
		{"outbox off with sync inventory", func(d *design.Design) { d.Outbox, d.Inventory = design.Off, design.InventorySync }, "outbox: is only used by the async inventory design"},
		{"base", func(d *design.Design) { d.Base = "x" }, `base: must be "default" or "none", got "x"`},
		{"gateways", func(d *design.Design) { d.Gateways = 99 }, "gateways: must be between 1 and 16, got 99"},
		{"max in flight", func(d *design.Design) { d.Gateway.MaxInFlight = -1 }, "gateway.max_in_flight: must be >= 0"},
		{"queue wait", func(d *design.Design) { d.Gateway.MaxQueueWait = -1 }, "gateway.max_queue_wait: must be >= 0"},
		{"client rps", func(d *design.Design) { d.Gateway.ClientRPS = -1 }, "gateway.client_rps: must be >= 0"},
		{"client burst", func(d *design.Design) { d.Gateway.ClientBurst = -1 }, "gateway.client_burst: must be >= 0"},
		{"body", func(d *design.Design) { d.Gateway.MaxBodyBytes = -1 }, "gateway.max_body_bytes: must be >= 0"},
		{"unknown edge", func(d *design.Design) { d.Policies["a->b"] = design.Policy{} }, `policies["a->b"]: unknown edge`},
		{"timeout", func(d *design.Design) {
			p := d.Policies["order->product"]
			p.Timeout = -1
			d.Policies["order->product"] = p
		}, `policies["order->product"].timeout: must be >= 0`},
		{"max attempts high", pol(func(p *design.Policy) { p.Retry.MaxAttempts = 11 }), "retry.max_attempts: must be <= 10, got 11"},
		{"backoff", pol(func(p *design.Policy) { p.Retry.Backoff = -1 }), "retry.backoff: must be >= 0"},
		{"max backoff negative", pol(func(p *design.Policy) { p.Retry.MaxBackoff = -1 }), "retry.max_backoff: must be >= 0"},
		{"max backoff below backoff", pol(func(p *design.Policy) { p.Retry.Backoff = ms(time.Second); p.Retry.MaxBackoff = ms(time.Millisecond) }), "retry.max_backoff: must be >= backoff (1s), got 1ms"},
		{"jitter", pol(func(p *design.Policy) { p.Retry.Jitter = 2 }), "retry.jitter: must be between 0 and 1, got 2"},
		{"budget ratio", pol(func(p *design.Policy) { p.Retry.Budget.MaxRatio = 0 }), "retry.budget.max_ratio: must be > 0 and <= 1, got 0"},
		{"budget min", pol(func(p *design.Policy) { p.Retry.Budget.MinConcurrency = -1 }), "retry.budget.min_concurrency: must be >= 0"},
		{"breaker ratio", pol(func(p *design.Policy) { p.Breaker.FailureRatio = 1.5 }), "breaker.failure_ratio: must be > 0 and <= 1, got 1.5"},
		{"breaker min", pol(func(p *design.Policy) { p.Breaker.MinRequests = 0 }), "breaker.min_requests: must be >= 1, got 0"},
		{"breaker window", pol(func(p *design.Policy) { p.Breaker.Window = -1 }), "breaker.window: must be >= 0"},
		{"breaker delay", pol(func(p *design.Policy) { p.Breaker.Delay = 0 }), "breaker.delay: must be > 0"},
		{"breaker success", pol(func(p *design.Policy) { p.Breaker.SuccessThreshold = -1 }), "breaker.success_threshold: must be >= 0"},
		{"bulkhead max", pol(func(p *design.Policy) { p.Bulkhead.MaxConcurrent = 0 }), "bulkhead.max_concurrent: must be >= 1, got 0"},
		{"bulkhead wait", pol(func(p *design.Policy) { p.Bulkhead.MaxWait = -1 }), "bulkhead.max_wait: must be >= 0"},
		{"rate rps", pol(func(p *design.Policy) { p.RateLimit = &design.RateLimit{} }), "rate_limit.rps: must be > 0, got 0"},
		{"rate burst", pol(func(p *design.Policy) { p.RateLimit = &design.RateLimit{RPS: 1, Burst: -1} }), "rate_limit.burst: must be >= 0"},
		{"rate wait", pol(func(p *design.Policy) { p.RateLimit = &design.RateLimit{RPS: 1, MaxWait: -1} }), "rate_limit.max_wait: must be >= 0"},
		{"fallback unknown", pol(func(p *design.Policy) { p.Fallback = "pray" }), `fallback: must be "" or "stale-cache", got "pray"`},
		{"fallback off the gateway", func(d *design.Design) {
			p := d.Policies["order->broker"]
			p.Fallback = design.FallbackStaleCache
			d.Policies["order->broker"] = p
		}, `policies["order->broker"].fallback: "stale-cache" is only served for the gateway's product and merchant reads`},
		{"hedge delay", pol(func(p *design.Policy) { p.Hedge = &design.Hedge{} }), "hedge.delay: must be > 0"},
		{"hedge max", pol(func(p *design.Policy) { p.Hedge = &design.Hedge{Delay: 1, MaxHedges: 9} }), "hedge.max_hedges: must be between 1 and 4, got 9"},
		{"hedge on broker", func(d *design.Design) {
			p := d.Policies["order->broker"]
			p.Hedge = &design.Hedge{Delay: 1}
			d.Policies["order->broker"] = p
		}, `policies["order->broker"].hedge: publishing is not a read`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := design.Default()
			tt.mutate(&d)
			errs := d.Validate()
			require.Len(t, errs, 1, "%v", errs)
			assert.Contains(t, errs[0].Error(), tt.want)
		})
	}
}

func TestValidateCollectsEverything(t *testing.T) {
	d := design.Default()
	d.Inventory, d.Discovery, d.Gateways = "x", "y", -1
	assert.Len(t, d.Validate(), 3)
}

// pol mutates the gateway->product policy of a default design.
func pol(f func(p *design.Policy)) func(d *design.Design) {
	return func(d *design.Design) {
		p := d.Policies["gateway->product"]
		f(&p)
		d.Policies["gateway->product"] = p
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../designs/*.yaml")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("policies:\n  gateway->product: {retry: {max_attempts: 0}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("base: none\npolicies: {order->broker: {hedge: {delay: 1s}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := design.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if errs := d.Validate(); len(errs) > 0 {
			t.Fatalf("Parse accepted a design that does not validate: %v", errs)
		}
	})
}
