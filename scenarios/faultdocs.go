package scenarios

import "sort"

// FieldDoc describes one attribute of a fault kind for the schema and the scenario
// reference.
type FieldDoc struct {
	// Doc is the description shown in editors and in docs/SCENARIOS.md.
	Doc string
	// Required marks an attribute the fault's own Validate refuses to leave out; a test
	// holds the two to agreement for every kind.
	Required bool
	// Enum lists the accepted values of a string attribute, if they are a fixed set.
	Enum []string
}

// FaultDoc describes one fault kind: what it does, its attributes, and a complete
// scenario using it that validates against the reference system.
type FaultDoc struct {
	// Summary says what the fault does to the system, in a sentence or two.
	Summary string
	// Fields describes each attribute besides name, type, at and for.
	Fields map[string]FieldDoc
	// Example is a whole scenario file showing the fault; the reference prints it and a
	// test validates it.
	Example string
}

// FaultDocumenter is an optional interface of a FaultDecoder: descriptions of its kinds'
// attributes, for fault structs that carry no doc tags of their own.
type FaultDocumenter interface {
	// FaultDoc describes kind; ok is false for a kind it has no description of.
	FaultDoc(kind string) (doc FaultDoc, ok bool)
}

// FaultDoc describes the faults registry's kinds.
func (registryDecoder) FaultDoc(kind string) (FaultDoc, bool) {
	d, ok := faultDocs[kind]
	return d, ok
}

// FaultDocKinds lists the kinds the default decoder describes, sorted.
func FaultDocKinds() []string {
	out := make([]string, 0, len(faultDocs))
	for k := range faultDocs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Attribute descriptions shared by several kinds.
var (
	procTarget = FieldDoc{Required: true, Doc: "a component (order-2) or a service (order); a service means all its instances unless pick: one"}
	procPick   = FieldDoc{Doc: "with a service target: all (default) or one, the first running instance, so that a seeded run repeats", Enum: []string{"one", "all"}}
	linkTarget = FieldDoc{Required: true, Doc: "a link caller->callee such as gateway->product or order->product-2: the caller a service, or an instance for links to registry, broker and balancer; the callee a service (every instance) or one instance"}
	direction  = FieldDoc{Doc: "which way data is affected: downstream (default, callee to caller), upstream (caller to callee) or both", Enum: []string{"downstream", "upstream", "both"}}
	deadMan    = FieldDoc{Doc: "safety net: heal after this long even if the harness does not (a dead-man timer); the timeline's for heals it normally"}
)

// exampleHead is the common start of every fault's example: a short run of the default
// design at a rate a laptop sustains.
const exampleHead = `load:
  rate: 20/s
  duration: 20s
  mix: {browse: 60, view_order: 20, place_order: 20}
`

var faultDocs = map[string]FaultDoc{
	"latency": {
		Summary: "Delays data on a link: each chunk waits latency (± jitter) in the proxy. With direction both, a request and its answer are each delayed.",
		Fields: map[string]FieldDoc{
			"target":    linkTarget,
			"latency":   {Required: true, Doc: "delay added to data on the link, above 0"},
			"jitter":    {Doc: "random variation of the delay, between 0 and latency"},
			"direction": direction,
			"toxicity":  {Doc: "share of connections delayed, above 0 and at most 1; absent or 0 means all"},
			"duration":  deadMan,
		},
		Example: `name: example-latency
description: The gateway's calls to product take 300ms longer for 8 seconds.
` + exampleHead + `faults:
  - name: slow-product
    type: latency
    at: 5s
    for: 8s
    target: gateway->product
    latency: 300ms
    jitter: 50ms
expect:
  during:
    slow-product:
      - check: fault_landed
`,
	},
	"bandwidth": {
		Summary: "Caps a link's throughput.",
		Fields: map[string]FieldDoc{
			"target":    linkTarget,
			"rate":      {Required: true, Doc: "cap in kilobytes (1000 bytes) per second, above 0"},
			"direction": direction,
			"duration":  deadMan,
		},
		Example: `name: example-bandwidth
description: The gateway reads product answers at 5 KB/s for 8 seconds.
` + exampleHead + `faults:
  - name: thin-pipe
    type: bandwidth
    at: 5s
    for: 8s
    target: gateway->product
    rate: 5
`,
	},
	"slow_close": {
		Summary: "Holds the close of a connection for delay after the far end closed it, as a peer slow to tear down does.",
		Fields: map[string]FieldDoc{
			"target":    linkTarget,
			"delay":     {Required: true, Doc: "how long a close is held, above 0"},
			"direction": direction,
			"duration":  deadMan,
		},
		Example: `name: example-slow-close
description: Connections from the gateway to merchant close a second late.
` + exampleHead + `faults:
  - name: lingering
    type: slow_close
    at: 5s
    for: 8s
    target: gateway->merchant
    delay: 1s
`,
	},
	"timeout": {
		Summary: "Black-holes a link: data stops flowing and nothing comes back until the heal (a partition's signature), or the connection is closed after timeout.",
		Fields: map[string]FieldDoc{
			"target":    linkTarget,
			"timeout":   {Doc: "0 (default): nothing comes back until the heal; otherwise the connection is closed after this long without data"},
			"direction": {Doc: "which way data is swallowed: both (default here, a real black hole eats both ways), downstream or upstream", Enum: []string{"downstream", "upstream", "both"}},
			"duration":  deadMan,
		},
		Example: `name: example-timeout
description: The order service's calls to product vanish for 6 seconds.
` + exampleHead + `faults:
  - name: black-hole
    type: timeout
    at: 5s
    for: 6s
    target: order->product
`,
	},
	"reset_peer": {
		Summary: "Answers data on a link with a TCP reset, the way a crashed or overloaded peer's kernel does.",
		Fields: map[string]FieldDoc{
			"target":    linkTarget,
			"timeout":   {Doc: "how long after data arrives the reset comes; 0 (default) resets at once"},
			"direction": direction,
			"duration":  deadMan,
		},
		Example: `name: example-reset-peer
description: Merchant resets the gateway's connections for 6 seconds.
` + exampleHead + `faults:
  - name: resets
    type: reset_peer
    at: 5s
    for: 6s
    target: gateway->merchant
`,
	},
	"slicer": {
		Summary: "Cuts data into small pieces sent delay apart, exercising callers that assume one read is one message.",
		Fields: map[string]FieldDoc{
			"target":         linkTarget,
			"average_size":   {Required: true, Doc: "average size of a piece in bytes, above 0"},
			"size_variation": {Doc: "variation of a piece's size in bytes, 0 or more and below average_size"},
			"delay":          {Doc: "pause between pieces; default 0"},
			"direction":      direction,
			"duration":       deadMan,
		},
		Example: `name: example-slicer
description: Product answers reach the gateway in 64-byte pieces.
` + exampleHead + `faults:
  - name: sliced
    type: slicer
    at: 5s
    for: 8s
    target: gateway->product
    average_size: 64
    size_variation: 16
    delay: 1ms
`,
	},
	"limit_data": {
		Summary: "Closes a connection once it has carried bytes, as a proxy or NAT with a byte quota does.",
		Fields: map[string]FieldDoc{
			"target":    linkTarget,
			"bytes":     {Required: true, Doc: "bytes a connection may carry before it is closed, above 0"},
			"direction": direction,
			"duration":  deadMan,
		},
		Example: `name: example-limit-data
description: Each connection from the gateway to product is cut after 2 KB.
` + exampleHead + `faults:
  - name: quota
    type: limit_data
    at: 5s
    for: 8s
    target: gateway->product
    bytes: 2048
`,
	},
	"down": {
		Summary: "Takes a link's proxy away: new connections are refused and open ones dropped.",
		Fields: map[string]FieldDoc{
			"target":   linkTarget,
			"duration": deadMan,
		},
		Example: `name: example-down
description: The gateway cannot reach order for 6 seconds; connections are refused.
` + exampleHead + `faults:
  - name: order-refused
    type: down
    at: 5s
    for: 6s
    target: gateway->order
`,
	},
	"partition": {
		Summary: "Splits components into groups that cannot reach each other: every link that crosses between groups is cut.",
		Fields: map[string]FieldDoc{
			"groups":    {Required: true, Doc: "two or more lists of components (order-1) or services (broker); a member may be in one group only"},
			"direction": {Doc: "both (default): no group reaches another; one-way: only callers in an earlier group lose their callees in later groups", Enum: []string{"both", "one-way"}},
			"mode":      {Doc: "blackhole (default): crossing links swallow data and callers time out; refuse: crossing links are taken down and callers are refused at once", Enum: []string{"blackhole", "refuse"}},
			"duration":  deadMan,
		},
		Example: `name: example-partition
description: The order service loses the broker for 6 seconds; the outbox holds its events.
` + exampleHead + `faults:
  - name: split
    type: partition
    at: 5s
    for: 6s
    groups: [[order], [broker]]
`,
	},
	"crash": {
		Summary: "Kills components with SIGKILL: no deregistration, no drain, what a power cut or an OOM kill does. The heal restarts them with their data.",
		Fields: map[string]FieldDoc{
			"target":   procTarget,
			"pick":     procPick,
			"duration": deadMan,
		},
		Example: `name: example-crash
description: One of two order instances is killed for 6 seconds.
system:
  replicas: {order: 2}
` + exampleHead + `faults:
  - name: kill-order
    type: crash
    at: 5s
    for: 6s
    target: order
    pick: one
`,
	},
	"pause": {
		Summary: "Freezes components with SIGSTOP until the heal (SIGCONT): the process keeps its sockets and leases but answers nothing.",
		Fields: map[string]FieldDoc{
			"target":   procTarget,
			"pick":     procPick,
			"duration": deadMan,
		},
		Example: `name: example-pause
description: product-1 freezes for 6 seconds.
` + exampleHead + `faults:
  - name: frozen
    type: pause
    at: 5s
    for: 6s
    target: product-1
`,
	},
	"restart": {
		Summary: "Stops and starts components with their data, the way a deploy does.",
		Fields: map[string]FieldDoc{
			"target": procTarget,
			"pick":   procPick,
		},
		Example: `name: example-restart
description: The merchant service is restarted as a deploy would.
` + exampleHead + `faults:
  - name: deploy
    type: restart
    at: 5s
    for: 6s
    target: merchant
`,
	},
	"crash_loop": {
		Summary: "Kills components every interval and restarts them after down: a process that keeps dying shortly after it starts.",
		Fields: map[string]FieldDoc{
			"target":   procTarget,
			"pick":     procPick,
			"interval": {Required: true, Doc: "time from one kill to the next, above 0"},
			"down":     {Doc: "how long each kill keeps the target down before its restart; default half the interval, below interval"},
			"duration": {Required: true, Doc: "how long the loop keeps killing from at, above 0; the heal at for ends it sooner"},
		},
		Example: `name: example-crash-loop
description: order-1 is killed every 2 seconds for 6 seconds.
system:
  replicas: {order: 2}
` + exampleHead + `faults:
  - name: flapping
    type: crash_loop
    at: 5s
    for: 8s
    target: order-1
    interval: 2s
    duration: 6s
`,
	},
	"delete": {
		Summary: "Deletes components' instances and lets the runtime's controller replace them: on kubernetes the pod is deleted (SIGTERM, the grace period) and its Deployment's new pod waited for until ready, the failover a node drain or an eviction causes. Several targets go one after the other. Measured: the time from the delete until the replacement was ready, and the new pod's UID. Only the kubernetes runtime has a controller: local and docker refuse it at validation (use crash or restart).",
		Fields: map[string]FieldDoc{
			"target":       procTarget,
			"pick":         procPick,
			"ready_within": {Doc: "how long each replacement may take to be ready (default 60s); a slower one fails the inject and the fault does not land"},
		},
		Example: `name: example-delete
description: One of two order pods is deleted and replaced by its Deployment (kubernetes only).
system:
  replicas: {order: 2}
` + exampleHead + `faults:
  - name: evict-order
    type: delete
    at: 5s
    for: 6s
    target: order
    pick: one
`,
	},
	"disconnect": {
		Summary: "Cuts components off the network while they keep running: one side alive and unreachable. On docker the container leaves the network; locally every link to and from the component alone is taken down.",
		Fields: map[string]FieldDoc{
			"target":   procTarget,
			"pick":     procPick,
			"duration": deadMan,
		},
		Example: `name: example-disconnect
description: order-2 is cut off the network for 6 seconds while it keeps running.
system:
  replicas: {order: 2}
` + exampleHead + `faults:
  - name: cut-off
    type: disconnect
    at: 5s
    for: 6s
    target: order-2
`,
	},
}
