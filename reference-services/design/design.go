// Package design describes one architecture of the reference system so that designs can be
// compared under the same load and faults: how inventory is updated (async through the
// broker, or a synchronous gRPC call), how callers find replicas (client- or server-side
// discovery), how many gateways run, the gateway's admission limits, and the resilience
// policies on every caller->dependency edge.
//
// # Files
//
// A design is a YAML file with snake_case fields (max_attempts, failure_ratio, ...) and Go
// durations ("250ms"). Unknown fields are errors reported as file:line:column with a hint.
//
// # Overlay rule
//
// `base: default` (also what an omitted base means) starts from Default() and deep-merges
// the file over it: every field the file sets replaces the default's field at the same path,
// every field it leaves out keeps the default, and `null` switches an optional policy off
// (`breaker: null`). Writing `policies: {"gateway->product": {timeout: 1s}}` therefore only
// changes that edge's timeout. `base: none` starts from scratch: every edge has no policy
// unless the file gives one. Either way, defaults for empty top-level fields (async
// inventory, client discovery, one gateway, a 1 MiB body limit) are applied, and the result
// is validated.
package design

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Inventory designs.
const (
	InventoryAsync = "async" // outbox + broker: eventual consistency, order survives a product outage
	InventorySync  = "sync"  // gRPC ReserveStock inside PlaceOrder: strong, but coupled
)

// Switches of the weak teaching designs (Design.Outbox, Design.ConsumerIdempotency).
const (
	On  = "on"
	Off = "off"
)

// Discovery designs.
const (
	DiscoveryClient = "client" // every caller watches the registry and balances itself
	DiscoveryServer = "server" // callers dial the balancer process, which picks an instance
)

// Fallbacks a policy may name.
const (
	FallbackNone = ""
	// FallbackStaleCache serves the last good response for the same request when the call
	// fails; allowed on gateway->product and gateway->merchant, the reads.
	FallbackStaleCache = "stale-cache"
)

// Bases a design file may start from.
const (
	BaseDefault = "default"
	BaseNone    = "none"
)

// DefaultMaxBodyBytes bounds request bodies at the gateway when a design does not.
const DefaultMaxBodyBytes = 1 << 20

// Edges lists every caller->dependency edge that may carry a policy.
var Edges = []string{
	"gateway->merchant", "gateway->order", "gateway->product",
	"order->merchant", "order->product", "order->broker",
}

// EdgeKey names the policy of caller calling dependency.
func EdgeKey(caller, dependency string) string { return caller + "->" + dependency }

// Design is one architecture of the reference system.
type Design struct {
	Base        string `yaml:"base,omitempty"`
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
	// Inventory is "async" (default: outbox + broker) or "sync" (gRPC ReserveStock).
	Inventory string `yaml:"inventory,omitempty"`
	// Discovery is "client" (default) or "server" (via the balancer process).
	Discovery string `yaml:"discovery,omitempty"`
	// Outbox is "on" (default: the order and its event commit in one transaction, a relay
	// publishes) or "off": the async design publishes directly after the order commits, so
	// a broker outage or a crash between the two loses the event. A teaching design only.
	Outbox string `yaml:"outbox,omitempty"`
	// ConsumerIdempotency is "on" (default: product recognises a redelivered event by its
	// order id) or "off": every delivery takes stock, so an at-least-once broker's duplicate
	// takes it twice. A teaching design only.
	ConsumerIdempotency string `yaml:"consumer_idempotency,omitempty"`
	// Gateways is how many gateway processes run (default 1); two remove the single point of failure.
	Gateways int `yaml:"gateways,omitempty"`
	// Policies is keyed "caller->dependency" (see Edges).
	Policies map[string]Policy `yaml:"policies,omitempty"`
	Gateway  GatewayLimits     `yaml:"gateway,omitempty"`
}

// GatewayLimits is the gateway's admission control: shed load early instead of queueing
// without bound, which is how a gateway stops being the bottleneck that collapses.
type GatewayLimits struct {
	// MaxInFlight caps concurrent requests; 0 means unlimited.
	MaxInFlight int `yaml:"max_in_flight,omitempty"`
	// MaxQueueWait is how long a request may wait for an in-flight slot before a 503.
	MaxQueueWait Duration `yaml:"max_queue_wait,omitempty"`
	// ClientRPS and ClientBurst rate-limit each client (JWT subject); 0 RPS means off.
	ClientRPS   float64 `yaml:"client_rps,omitempty"`
	ClientBurst int     `yaml:"client_burst,omitempty"`
	// MaxBodyBytes bounds request bodies (413 beyond); 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes,omitempty"`
}

// Policy is the resilience stack of one edge. A nil part is switched off.
type Policy struct {
	// Timeout bounds each attempt; 0 means none.
	Timeout   Duration   `yaml:"timeout,omitempty"`
	Retry     *Retry     `yaml:"retry,omitempty"`
	Breaker   *Breaker   `yaml:"breaker,omitempty"`
	Bulkhead  *Bulkhead  `yaml:"bulkhead,omitempty"`
	RateLimit *RateLimit `yaml:"rate_limit,omitempty"`
	// Fallback is what the caller serves when the call fails: "" or "stale-cache".
	Fallback string `yaml:"fallback,omitempty"`
	Hedge    *Hedge `yaml:"hedge,omitempty"`
}

// Retry re-sends failed calls that failed for a reason worth retrying.
type Retry struct {
	// MaxAttempts counts the first call too, so 1 means no retries.
	MaxAttempts int      `yaml:"max_attempts"`
	Backoff     Duration `yaml:"backoff,omitempty"`
	MaxBackoff  Duration `yaml:"max_backoff,omitempty"`
	// Jitter is a factor in [0,1] that spreads retries so that callers do not synchronise.
	Jitter float64 `yaml:"jitter,omitempty"`
	Budget *Budget `yaml:"budget,omitempty"`
}

// Budget caps retries relative to requests, which is what stops a retry storm: failsafe-go
// counts both in flight, so the ratio is in-flight retries to in-flight requests.
type Budget struct {
	// MaxRatio is the highest share of in-flight executions that may be retries (0.2 = 20 %).
	MaxRatio float64 `yaml:"max_ratio"`
	// MinConcurrency retries may always be in flight, so a quiet edge can still retry.
	MinConcurrency int `yaml:"min_concurrency,omitempty"`
}

// Breaker stops calling a dependency that keeps failing, and probes it again later.
type Breaker struct {
	// FailureRatio of the last MinRequests calls (or of the calls in Window) opens the breaker.
	FailureRatio float64 `yaml:"failure_ratio"`
	MinRequests  int     `yaml:"min_requests"`
	// Window makes thresholding time-based; 0 means count-based over MinRequests calls.
	Window Duration `yaml:"window,omitempty"`
	// Delay is how long the breaker stays open before letting probes through (half-open).
	Delay Duration `yaml:"delay"`
	// SuccessThreshold probes must succeed to close again.
	SuccessThreshold int `yaml:"success_threshold,omitempty"`
}

// Bulkhead caps concurrent calls on an edge so one slow dependency cannot take every
// goroutine and connection of the caller.
type Bulkhead struct {
	MaxConcurrent int      `yaml:"max_concurrent"`
	MaxWait       Duration `yaml:"max_wait,omitempty"`
}

// RateLimit caps the rate of calls on an edge.
type RateLimit struct {
	RPS float64 `yaml:"rps"`
	// Burst calls may go at once; 0 spreads calls evenly.
	Burst   int      `yaml:"burst,omitempty"`
	MaxWait Duration `yaml:"max_wait,omitempty"`
}

// Hedge sends another copy of a slow call and takes the first answer; it trades load for
// tail latency, so it is only sensible on idempotent reads.
type Hedge struct {
	Delay     Duration `yaml:"delay"`
	MaxHedges int      `yaml:"max_hedges,omitempty"`
}

// Default is the resilient design: timeouts, retries with a budget, breakers, bulkheads and
// a stale-cache fallback on product reads; async inventory, client-side discovery, one gateway.
func Default() Design {
	budget := func() *Budget { return &Budget{MaxRatio: 0.2, MinConcurrency: 3} }
	breaker := func() *Breaker {
		return &Breaker{FailureRatio: 0.5, MinRequests: 10, Window: Duration(time.Second), Delay: Duration(2 * time.Second), SuccessThreshold: 2}
	}
	read := func(timeout time.Duration) Policy {
		return Policy{
			Timeout:  Duration(timeout),
			Retry:    &Retry{MaxAttempts: 3, Backoff: Duration(20 * time.Millisecond), MaxBackoff: Duration(200 * time.Millisecond), Jitter: 0.2, Budget: budget()},
			Breaker:  breaker(),
			Bulkhead: &Bulkhead{MaxConcurrent: 64, MaxWait: Duration(50 * time.Millisecond)},
		}
	}
	product := read(time.Second)
	product.Fallback = FallbackStaleCache
	order := read(3 * time.Second)
	// PlaceOrder is idempotent by key, so one retry is safe; more would only pile up writes.
	order.Retry.MaxAttempts = 2
	broker := Policy{
		Timeout: Duration(2 * time.Second),
		Retry:   &Retry{MaxAttempts: 3, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(time.Second), Jitter: 0.2},
		Breaker: breaker(),
	}
	return Design{
		Base:                BaseDefault,
		Name:                "resilient",
		Description:         "Timeouts, retries with a budget, circuit breakers and bulkheads on every edge; stale-cache fallback on product reads; async inventory; client-side discovery; one gateway.",
		Inventory:           InventoryAsync,
		Outbox:              On,
		ConsumerIdempotency: On,
		Discovery:           DiscoveryClient,
		Gateways:            1,
		Policies: map[string]Policy{
			"gateway->merchant": read(time.Second),
			"gateway->order":    order,
			"gateway->product":  product,
			"order->merchant":   read(800 * time.Millisecond),
			"order->product":    read(800 * time.Millisecond),
			"order->broker":     broker,
		},
		Gateway: GatewayLimits{
			MaxInFlight:  256,
			MaxQueueWait: Duration(50 * time.Millisecond),
			ClientRPS:    2000,
			ClientBurst:  4000,
			MaxBodyBytes: 64 << 10,
		},
	}
}

// Policy returns the policy of caller->dependency, or the zero Policy (everything off).
func (d Design) Policy(caller, dependency string) Policy {
	return d.Policies[EdgeKey(caller, dependency)]
}

// WithDefaults fills empty top-level fields with their defaults.
func (d Design) WithDefaults() Design {
	if d.Base == "" {
		d.Base = BaseDefault
	}
	if d.Inventory == "" {
		d.Inventory = InventoryAsync
	}
	if d.Outbox == "" {
		d.Outbox = On
	}
	if d.ConsumerIdempotency == "" {
		d.ConsumerIdempotency = On
	}
	if d.Discovery == "" {
		d.Discovery = DiscoveryClient
	}
	if d.Gateways == 0 {
		d.Gateways = 1
	}
	if d.Gateway.MaxBodyBytes == 0 {
		d.Gateway.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return d
}

// Load reads a design file; "" means Default(). Defaults are applied and the result validated.
func Load(path string) (Design, error) {
	if path == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Design{}, fmt.Errorf("read design: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes a design named name (a file name, used in messages) from YAML, applies the
// overlay rule and defaults, and validates it; every problem is reported at once.
func Parse(name string, data []byte) (Design, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Design{}, fmt.Errorf("parse design %s: %w", name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return Design{}, fmt.Errorf("parse design %s: the file is empty", name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return Design{}, fmt.Errorf("parse design %s:%d:%d: want a mapping of design fields, got %s", name, root.Line, root.Column, kindName(root))
	}
	var problems []error
	checkNode(name, "", root, reflect.TypeOf(Design{}), &problems)
	if len(problems) > 0 {
		return Design{}, fmt.Errorf("parse design %s: %w", name, errors.Join(problems...))
	}

	base := BaseDefault
	if b := lookup(root, "base"); b != nil && b.Value != "" {
		base = b.Value
	}
	var d Design
	switch base {
	case BaseDefault:
		d = Default()
		d.Name, d.Description = "", ""
	case BaseNone:
	default:
		b := lookup(root, "base")
		return Design{}, fmt.Errorf("parse design %s:%d:%d: base %q is unknown (want %q or %q)", name, b.Line, b.Column, base, BaseDefault, BaseNone)
	}
	if err := root.Decode(&d); err != nil {
		return Design{}, fmt.Errorf("parse design %s: %w", name, err)
	}
	// Decoding replaces map entries wholesale; merge each listed edge over its base instead.
	if pol := lookup(root, "policies"); pol != nil && pol.Kind == yaml.MappingNode {
		var fresh Design
		if base == BaseDefault {
			fresh = Default()
		}
		for i := 0; i+1 < len(pol.Content); i += 2 {
			key, val := pol.Content[i].Value, pol.Content[i+1]
			p := fresh.Policies[key]
			if val.Tag != "!!null" {
				if err := val.Decode(&p); err != nil {
					return Design{}, fmt.Errorf("parse design %s: %w", name, err)
				}
			} else {
				p = Policy{}
			}
			if d.Policies == nil {
				d.Policies = map[string]Policy{}
			}
			d.Policies[key] = p
		}
	}
	d.Base = base
	d = d.WithDefaults()
	if d.Name == "" {
		d.Name = strings.TrimSuffix(baseName(name), ".yaml")
	}
	if errs := d.Validate(); len(errs) > 0 {
		return Design{}, fmt.Errorf("validate design %s: %w", name, errors.Join(errs...))
	}
	return d, nil
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

var durationType = reflect.TypeOf(Duration(0))

// checkNode walks the YAML tree against the Go type so that unknown fields and wrongly typed
// values are reported with their position, before anything is decoded.
func checkNode(file, path string, n *yaml.Node, t reflect.Type, problems *[]error) {
	at := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d:%d", file, n.Line, n.Column) }
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if n == nil {
			return
		}
	}
	if n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			*problems = append(*problems, fmt.Errorf("%s: %s: want a duration like \"250ms\", got %s", at(n), path, kindName(n)))
			return
		}
		if _, err := parseDuration(n.Value); err != nil {
			*problems = append(*problems, fmt.Errorf("%s: %s: %w", at(n), path, err))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			*problems = append(*problems, fmt.Errorf("%s: %s: want a mapping, got %s", at(n), orRoot(path), kindName(n)))
			return
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f
			names = append(names, tag)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				*problems = append(*problems, fmt.Errorf("%s: %s: unknown field %q%s", at(k), orRoot(path), k.Value, hint(k.Value, names)))
				continue
			}
			if seen[k.Value] {
				*problems = append(*problems, fmt.Errorf("%s: %s: field %q is given twice", at(k), orRoot(path), k.Value))
			}
			seen[k.Value] = true
			checkNode(file, join(path, k.Value), v, f.Type, problems)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			*problems = append(*problems, fmt.Errorf("%s: %s: want a mapping, got %s", at(n), path, kindName(n)))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := fmt.Sprintf("%s[%q]", path, k.Value)
			if path == "policies" && !slices.Contains(Edges, k.Value) {
				*problems = append(*problems, fmt.Errorf("%s: %s: unknown edge %q%s", at(k), path, k.Value, hint(k.Value, Edges)))
				continue
			}
			checkNode(file, p, v, t.Elem(), problems)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			*problems = append(*problems, fmt.Errorf("%s: %s: want a %s, got %s", at(n), path, t.Kind(), kindName(n)))
			return
		}
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			*problems = append(*problems, fmt.Errorf("%s: %s: want a %s, got %q", at(n), path, typeName(t), n.Value))
		}
	}
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "whole number"
	case reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	default:
		return t.Kind().String()
	}
}

func orRoot(path string) string {
	if path == "" {
		return "design"
	}
	return path
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// hint suggests the closest known name, so that a typo costs one look instead of a hunt.
func hint(got string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := distance(strings.ToLower(got), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" && bestD <= max(2, len(got)/3) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sorted := slices.Clone(known)
	sort.Strings(sorted)
	return fmt.Sprintf(" (known: %s)", strings.Join(sorted, ", "))
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
