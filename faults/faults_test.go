package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestKindsListsEveryFault(t *testing.T) {
	want := []string{"bandwidth", "crash", "crash_loop", "delete", "disconnect", "down", "latency", "limit_data", "partition",
		"pause", "reset_peer", "restart", "slicer", "slow_close", "timeout"}
	assert.Equal(t, want, Kinds())
}

func TestNewUnknownKindListsKnownOnes(t *testing.T) {
	_, err := New("meteor")
	require.Error(t, err)
	assert.Equal(t, "new fault: unknown kind \"meteor\" (known: "+strings.Join(Kinds(), ", ")+")", err.Error())
}

func TestNewReturnsFreshFaults(t *testing.T) {
	a, err := New("latency")
	require.NoError(t, err)
	b, err := New("latency")
	require.NoError(t, err)
	a.(*Latency).Target = "x->y"
	assert.Empty(t, b.(*Latency).Target)
}

func TestRegisterDuplicatePanics(t *testing.T) {
	assert.PanicsWithValue(t, `faults: kind "latency" registered twice`, func() {
		Register("latency", func() Fault { return &Latency{} })
	})
}

func TestDecodeYAMLInTwoSteps(t *testing.T) {
	src := `
kind: latency
target: order->product-2
latency: 300ms
jitter: 20ms
direction: both
duration: 30s
`
	var head struct {
		Kind string `yaml:"kind"`
	}
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &node))
	require.NoError(t, node.Decode(&head))
	f, err := Decode(head.Kind, func(v any) error {
		// The scenario parser strips "kind" before decoding strictly; mimic that.
		var attrs map[string]any
		if err := node.Decode(&attrs); err != nil {
			return err
		}
		delete(attrs, "kind")
		b, err := yaml.Marshal(attrs)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		return dec.Decode(v)
	})
	require.NoError(t, err)
	got := f.(*Latency)
	want := &Latency{Target: "order->product-2", Latency: 300 * time.Millisecond, Jitter: 20 * time.Millisecond, Direction: "both", Duration: 30 * time.Second}
	assert.Equal(t, want.Target, got.Target)
	assert.Equal(t, want.Latency, got.Latency)
	assert.Equal(t, want.Jitter, got.Jitter)
	assert.Equal(t, want.Direction, got.Direction)
	assert.Equal(t, want.Duration, got.Duration)
	assert.Equal(t, []string{"order", "product-2"}, got.Targets())

	var part Partition
	require.NoError(t, yaml.Unmarshal([]byte("groups: [[order-1, order-2], [broker-1]]\ndirection: one-way\nmode: refuse\n"), &part))
	assert.Equal(t, [][]string{{"order-1", "order-2"}, {"broker-1"}}, part.Groups)
	assert.Equal(t, []string{"order-1", "order-2", "broker-1"}, part.Targets())
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name string
		f    Validator
		want []string
	}{
		{"valid latency", &Latency{Target: "order->product", Latency: time.Second}, nil},
		{"latency everything wrong", &Latency{Target: "order", Latency: -time.Second, Jitter: time.Second, Direction: "sideways", Toxicity: 2, Duration: -1},
			[]string{
				`target: want caller->callee (for example api->db or api->db-2), got "order"`,
				"latency: must be positive, got -1s",
				`direction: want downstream, upstream or both, got "sideways"`,
				"toxicity: must be between 0 and 1, got 2",
				"duration: must not be negative, got -1ns",
			}},
		{"link target with two arrows", &Down{Target: "a->b->c"}, []string{`target: want caller->callee (for example api->db or api->db-2), got "a->b->c"`}},
		{"bandwidth", &Bandwidth{Target: "a->b"}, []string{"rate: must be a positive number of KB/s, got 0"}},
		{"slow_close", &SlowClose{Target: "a->b"}, []string{"delay: must be positive, got 0s"}},
		{"timeout zero is a black hole", &Timeout{Target: "a->b"}, nil},
		{"timeout negative", &Timeout{Target: "a->b", Timeout: -time.Second}, []string{"timeout: must not be negative, got -1s"}},
		{"reset_peer", &ResetPeer{Target: "a b->c"}, []string{`target: want caller->callee (for example api->db or api->db-2), got "a b->c"`}},
		{"slicer", &Slicer{Target: "a->b", SizeVariation: 5}, []string{"average_size: must be a positive number of bytes, got 0"}},
		{"slicer variation", &Slicer{Target: "a->b", AverageSize: 10, SizeVariation: 10, Delay: -time.Millisecond}, []string{
			"size_variation: must be between 0 and average_size (10), got 10",
			"delay: must not be negative, got -1ms",
		}},
		{"jitter above latency", &Latency{Target: "a->b", Latency: time.Second, Jitter: 2 * time.Second}, []string{"jitter: must be between 0 and latency (1s), got 2s"}},
		{"limit_data", &LimitData{Target: "a->b", Bytes: -3}, []string{"bytes: must be positive, got -3"}},
		{"partition", &Partition{Groups: [][]string{{"a", "b"}, {}, {"b", "bad name"}}, Direction: "sideways", Mode: "drop"}, []string{
			"groups[1]: must not be empty",
			`groups[2]: "b" is already in groups[0]`,
			`groups[2]: "bad name" is not a component or service name`,
			`direction: want both or one-way, got "sideways"`,
			`mode: want blackhole or refuse, got "drop"`,
		}},
		{"partition of one group", &Partition{Groups: [][]string{{"a"}}}, []string{"groups: want at least two groups, got 1"}},
		{"crash", &Crash{Target: "order->product", Pick: "some"}, []string{
			`target: want a component (api-2) or a service (api), got "order->product"`,
			`pick: want one or all, got "some"`,
		}},
		{"pause", &Pause{Target: "order-1", Duration: -time.Second}, []string{"duration: must not be negative, got -1s"}},
		{"restart", &Restart{}, []string{`target: want a component (api-2) or a service (api), got ""`}},
		{"crash_loop", &CrashLoop{Target: "order", Interval: time.Second, Down: 2 * time.Second}, []string{
			"duration: must be positive, got 0s",
			"down: must be between 0 and interval (1s), got 2s",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, err := range tt.f.Validate() {
				got = append(got, err.Error())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestEveryKindValidatesAndNamesTargets(t *testing.T) {
	for _, kind := range Kinds() {
		f, err := New(kind)
		require.NoError(t, err)
		v, ok := f.(Validator)
		require.True(t, ok, "%s has no Validate", kind)
		assert.NotEmpty(t, v.Validate(), "%s: a zero-valued fault must not validate", kind)
		_, ok = f.(Targeted)
		assert.True(t, ok, "%s has no Targets", kind)
		_, ok = f.(Measurer)
		assert.True(t, ok, "%s has no Measure", kind)
	}
}

func TestHealAllLeavesNoToxicAndEveryProxyUp(t *testing.T) {
	l := newLinks(t)
	echoLink(t, l)
	addLink(t, l, Link{From: "caller", To: "echo-2", ToService: "echo", Upstream: startEcho(t)})
	env := NewEnv(l, nil)
	ctx := context.Background()
	require.NoError(t, (&Latency{Target: "caller->echo", Latency: 100 * time.Millisecond, Direction: "both"}).Inject(ctx, env))
	require.NoError(t, (&LimitData{Target: "caller->echo-2", Bytes: 10}).Inject(ctx, env))
	require.NoError(t, (&Down{Target: "caller->echo-1", Duration: time.Hour}).Inject(ctx, env))
	_, err := l.AddToxic(ctx, "caller->echo-2", Toxic{Name: "by_hand", Type: "timeout", Attributes: map[string]any{"timeout": 0}})
	require.NoError(t, err)
	names, err := l.ToxicNames("caller->echo-2")
	require.NoError(t, err)
	require.Len(t, names, 4)

	require.NoError(t, l.HealAll(ctx))
	for _, lk := range l.All() {
		names, err := l.ToxicNames(lk.Name())
		require.NoError(t, err)
		assert.Empty(t, names, lk.Name())
		assert.True(t, l.Enabled(lk.Name()), lk.Name())
		addr, err := l.ListenAddr(lk.Name())
		require.NoError(t, err)
		got, _, _, err := roundTrip(t, addr, []byte("healed"))
		require.NoError(t, err)
		assert.Equal(t, "healed", string(got))
	}
}

func TestLinksAddMatchAndSetUpstream(t *testing.T) {
	l := newLinks(t)
	first, second := startEcho(t), startHTTP(t)
	ctx := context.Background()
	addr := addLink(t, l, Link{From: "order", To: "product-1", ToService: "product", Upstream: first})
	addLink(t, l, Link{From: "gateway", To: "product-1", ToService: "product", Upstream: first})
	addLink(t, l, Link{From: "order-1", FromService: "order", To: "broker-1", ToService: "broker", Upstream: first})
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), addr)

	_, err := l.Add(ctx, Link{From: "order", To: "product-1", Upstream: first})
	assert.EqualError(t, err, `add link "order->product-1": already exists`)
	_, err = l.Add(ctx, Link{From: "order", To: "x"})
	assert.EqualError(t, err, `add link "order->x": from, to and upstream are required`)

	names := func(ls []Link) []string {
		var out []string
		for _, lk := range ls {
			out = append(out, lk.Name())
		}
		return out
	}
	assert.Equal(t, []string{"order->product-1"}, names(l.Match("order", "product")))
	assert.Equal(t, []string{"gateway->product-1"}, names(l.Match("gateway", "product-1")))
	assert.Equal(t, []string{"order-1->broker-1"}, names(l.Match("order", "broker")))
	assert.Empty(t, l.Match("product", "order"))

	require.NoError(t, l.SetUpstream(ctx, "order->product-1", second))
	again, err := l.ListenAddr("order->product-1")
	require.NoError(t, err)
	assert.Equal(t, addr, again, "callers keep their address")
	p := TCPProbe(ctx, addr, ProbeSpec{ReadAll: true})
	assert.Equal(t, OutcomeAnswered, p.Outcome)
	assert.True(t, p.EOF, "the HTTP upstream answers and closes, the echo one would not")
}

func TestServeAPIAllowsToxicsNotProxies(t *testing.T) {
	l := newLinks(t)
	echoLink(t, l)
	addr, err := l.ServeAPI("127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + addr
	do := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("GET", "/proxies", "")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `"caller-\u003eecho-1"`, "Toxiproxy's JSON escapes '>'")

	code, _ = do("POST", "/proxies", `{"name":"evil","listen":"0.0.0.0:0","upstream":"127.0.0.1:1"}`)
	assert.Equal(t, http.StatusForbidden, code)
	code, _ = do("POST", "/proxies/caller-%3Eecho-1", `{"listen":"0.0.0.0:0"}`)
	assert.Equal(t, http.StatusForbidden, code)
	code, _ = do("DELETE", "/proxies/caller-%3Eecho-1", "")
	assert.Equal(t, http.StatusForbidden, code)

	code, body = do("POST", "/proxies/caller-%3Eecho-1/toxics", `{"name":"hand","type":"latency","attributes":{"latency":50}}`)
	require.Equal(t, http.StatusOK, code, body)
	names, err := l.ToxicNames("caller->echo-1")
	require.NoError(t, err)
	assert.Equal(t, []string{"hand"}, names)

	code, body = do("POST", "/proxies/caller-%3Eecho-1", `{"enabled":false}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.False(t, l.Enabled("caller->echo-1"))

	require.NoError(t, l.HealAll(context.Background()))
	names, err = l.ToxicNames("caller->echo-1")
	require.NoError(t, err)
	assert.Empty(t, names)
	assert.True(t, l.Enabled("caller->echo-1"))

	_, err = l.ServeAPI("0.0.0.0:0")
	assert.Error(t, err, "never beyond loopback")
}

func TestNewLinksRejectsBadOptions(t *testing.T) {
	_, err := NewLinks(WithProbeSamples(0))
	assert.EqualError(t, err, "new links: probe samples must be positive, got 0")
}

func ExampleNew() {
	f, err := New("latency")
	if err != nil {
		panic(err)
	}
	lat := f.(*Latency)
	lat.Target, lat.Latency = "order->product-2", 300*time.Millisecond
	fmt.Println(len(lat.Validate()), lat.Targets())
	// Output: 0 [order product-2]
}
