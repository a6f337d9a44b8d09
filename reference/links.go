package reference

import (
	"maps"
	"slices"
	"strconv"

	"github.com/faultline-dev/faultline/reference-services/config"
	"github.com/faultline-dev/faultline/scenarios"
)

// services are the reference system's services in start order, with what each is.
var services = []scenarios.SystemService{
	{Name: config.KindRegistry, Doc: "etcd: service discovery, leases and routes"},
	{Name: config.KindBroker, Doc: "NATS: carries the inventory events of the order outbox"},
	{Name: config.KindMerchant, Doc: "merchants and their stock"},
	{Name: config.KindProduct, Doc: "the product catalog"},
	{Name: config.KindOrder, Doc: "orders, with an outbox of inventory events"},
	{Name: config.KindBalancer, Doc: "server-side load balancer (designs with discovery: server only)"},
	{Name: config.KindGateway, Doc: "the HTTP entry point the load calls"},
}

// replicated are the services a scenario may run several instances of (system.replicas).
var replicated = []string{config.KindMerchant, config.KindOrder, config.KindProduct}

// routes maps each service that others call by route to its callers. Every (caller
// service, callee instance) pair gets a proxy of its own, shared by the caller's
// instances, so a fault on order->product-2 leaves gateway->product-2 alone.
var routes = map[string][]string{
	config.KindMerchant: {config.KindGateway, config.KindOrder, config.KindBalancer},
	config.KindProduct:  {config.KindGateway, config.KindOrder, config.KindBalancer},
	config.KindOrder:    {config.KindGateway, config.KindBalancer},
}

// shared are the single components every other component dials with a proxy per caller
// instance, planned with the system; the registry and the broker dial nothing.
var shared = []string{config.KindRegistry, config.KindBroker, config.KindBalancer}

func init() {
	// The list is static and complete, so registering it cannot fail.
	_ = scenarios.RegisterDefaultSystem(scenarios.DefaultSystem{Services: services, Replicated: replicated, Edges: Edges})
}

// Services lists the reference system's services in start order.
func Services() []string {
	out := make([]string, len(services))
	for i, s := range services {
		out[i] = s.Name
	}
	return out
}

// Routed lists, sorted, the services others call by route: the ones the interposer
// watches in the registry and publishes per-caller proxy routes for.
func Routed() []string { return slices.Sorted(maps.Keys(routes)) }

// CallersOf lists the services that call callee by route; nil when none does. The
// interposer creates one proxy per (caller, callee instance) for exactly these, and
// validation accepts a link fault on exactly these: both read this one list.
func CallersOf(callee string) []string { return slices.Clone(routes[callee]) }

// Edges lists the reference system's proxied links for the instance counts in counts:
// route links from each caller service to each callee instance, and links from each
// calling instance to the registry, the broker and the balancer.
func Edges(counts map[string]int) []scenarios.Edge {
	var out []scenarios.Edge
	inst := func(s string, i int) string { return s + "-" + strconv.Itoa(i) }
	for _, callee := range Services() {
		for _, caller := range routes[callee] {
			for i := 1; i <= counts[callee]; i++ {
				out = append(out, scenarios.Edge{From: caller, To: inst(callee, i), ToService: callee})
			}
		}
	}
	for _, caller := range Services() {
		if caller == config.KindRegistry || caller == config.KindBroker {
			continue
		}
		for i := 1; i <= counts[caller]; i++ {
			for _, s := range shared {
				if s == caller {
					continue
				}
				out = append(out, scenarios.Edge{From: inst(caller, i), FromService: caller, To: s + "-1", ToService: s})
			}
		}
	}
	return out
}
