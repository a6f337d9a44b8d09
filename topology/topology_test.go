package topology

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func seqPorts(start int) PortsFunc {
	return func(n int) ([]int, error) {
		out := make([]int, n)
		for i := range out {
			out[i] = start + i
		}
		return out, nil
	}
}

func sample() *Topology {
	return &Topology{
		Components: []Component{
			{Name: "web", Command: "web", Ports: []string{"http"}},
			{Name: "api", Command: "api", Ports: []string{"http", "admin"}, Replicas: 2},
			{Name: "db", Command: "db", Ports: []string{"tcp"}},
			{Name: "legacy", Address: "127.0.0.1:9000"},
		},
		Links: []Link{{From: "web", To: "api", Port: "http"}, {From: "api", To: "db"}, {From: "client", To: "web"}},
	}
}

func TestValidSampleHasNoProblems(t *testing.T) {
	assert.Empty(t, sample().Validate())
}

func TestPlanStartsCalleesFirst(t *testing.T) {
	p, err := NewPlan(sample(), "/run", seqPorts(30000))
	require.NoError(t, err)
	assert.Equal(t, []string{"db", "legacy", "api", "web"}, p.Order())
}

func TestTemplatesDialTheProxyOnlyOnADeclaredLink(t *testing.T) {
	p, err := NewPlan(sample(), "/run", seqPorts(30000))
	require.NoError(t, err)
	// Ports in declaration order: web http 30000; api-1 http 30001 admin 30002; api-2 30003/30004; db 30005.
	for _, px := range p.Proxies() {
		require.NoError(t, p.SetListen(px.Name(), "127.0.0.1:4"+px.To[len(px.To)-1:]))
	}
	tests := []struct {
		caller, text, want string
	}{
		{"web", `{{.Addr "api-1" "http"}}`, "127.0.0.1:41"}, // web->api is linked: the proxy
		{"web", `{{range .Addrs "api" "http"}}{{.}} {{end}}`, "127.0.0.1:41 127.0.0.1:42 "},
		{"web", `{{.Addr "api-1" "admin"}}`, "127.0.0.1:30002"}, // the link is for http only
		{"web", `{{.Addr "db" "tcp"}}`, "127.0.0.1:30005"},      // no web->db link: the real address
		{"api-2", `{{.Addr "db" "tcp"}}`, "127.0.0.1:4b"},       // api->db is linked
		{"web", `{{.Addr "legacy" ""}}`, "127.0.0.1:9000"},
		{"api-2", `{{.Self "admin"}} {{.Port "http"}} {{.Name}} {{.Replica}} {{.Dir}}`, "127.0.0.1:30004 30003 api-2 2 /run/components/api-2"},
	}
	for _, tt := range tests {
		got, err := p.Render(tt.caller, tt.text)
		require.NoError(t, err, tt.text)
		assert.Equal(t, tt.want, got, "%s sees %s", tt.caller, tt.text)
	}
	got, err := p.RenderClient(`http://{{.Addr "web" "http"}}/o/{{.Seq}}?k={{.Key}}&n={{.Rand 1 5}}&c={{.Pick "a" "b c"}}`)
	require.NoError(t, err)
	assert.Equal(t, `http://127.0.0.1:4b/o/{{.Seq}}?k={{.Key}}&n={{.Rand 1 5}}&c={{.Pick "a" "b c"}}`, got, "client->web proxy, load generator's fields kept")
}

func TestTemplateErrorsNameWhatIsMissing(t *testing.T) {
	p, err := NewPlan(sample(), "/run", seqPorts(30000))
	require.NoError(t, err)
	tests := []struct{ text, want string }{
		{`{{.Addr "nope" "http"}}`, `no component "nope"`},
		{`{{.Addr "api" "http"}}`, `api has 2 instances: use .Addrs`},
		{`{{.Port "grpc"}}`, `web has no port "grpc"`},
		{`{{.Addr "db"`, `parse template`},
	}
	for _, tt := range tests {
		_, err := p.Render("web", tt.text)
		require.Error(t, err, tt.text)
		assert.Contains(t, err.Error(), tt.want)
	}
}

func TestValidateReportsEveryProblemWithItsPath(t *testing.T) {
	topo := &Topology{
		Components: []Component{
			{Name: "client", Command: "x"},
			{Name: "web", Command: "web", Ports: []string{"http", "http"}, Args: []string{`{{.Port "grpc"}}`}},
			{Name: "ext", Address: "10.0.0.1:80", Command: "x"},
			{Name: "noop"},
			{Name: "r", Command: "r", Ready: &Ready{HTTP: "http://x/", TCP: "x:1"}},
		},
		Links: []Link{{From: "web", To: "dbb"}, {From: "ext", To: "web", Port: "http"}},
	}
	var got []string
	for _, p := range topo.Validate() {
		got = append(got, p.Error())
	}
	want := []string{
		`components[0].name: name "client" is reserved`,
		`components[1].ports[1]: port "http" is declared twice`,
		`components[2].address: component "ext" has both an address and something to start`,
		`components[2].address: address "10.0.0.1:80" is not a loopback host:port`,
		`components[3].command: component "noop" has neither command nor address`,
		`components[4].ready: ready has 2 checks, want exactly one`,
		`links[0].to: link to "dbb": no such component`,
		`links[1].from: link from "ext": "ext" is external`,
	}
	assert.Equal(t, want, got)
	// Templates are checked once the structure is sound.
	topo = &Topology{Components: []Component{{Name: "web", Command: "web", Ports: []string{"http"}, Args: []string{`{{.Port "grpc"}}`}}}}
	ps := topo.Validate()
	require.Len(t, ps, 1)
	assert.Equal(t, []any{"components", 0, "args", 0}, ps[0].Path)
	assert.True(t, strings.Contains(ps[0].Msg, `web has no port "grpc"`), ps[0].Msg)
}
