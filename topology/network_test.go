package topology

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInNetworkRendersEachViewForWhereItIsRead: inside a container a component listens on
// 0.0.0.0, dials proxies at their in-network address and unlinked peers by name; the
// harness's readiness check and the load generator see the host's addresses.
func TestInNetworkRendersEachViewForWhereItIsRead(t *testing.T) {
	p, err := NewPlan(sample(), "/run", seqPorts(30000), InNetwork())
	require.NoError(t, err)
	for i, px := range p.Proxies() {
		require.NoError(t, p.SetListen(px.Name(), "toxiproxy:"+string(rune('0'+i))+"0"))
		require.NoError(t, p.SetHostListen(px.Name(), "127.0.0.1:4"+string(rune('0'+i))+"0"))
	}
	web, _ := p.Instance("web")
	db, _ := p.Instance("db")
	tests := []struct {
		name, text, want string
		render           func(string) (string, error)
	}{
		{"own listen address inside", `{{.Self "http"}}`, "0.0.0.0:30000", func(s string) (string, error) { return p.Render("web", s) }},
		{"bind inside", `{{.Bind}}`, "0.0.0.0", func(s string) (string, error) { return p.Render("web", s) }},
		{"linked callee through its proxy", `{{.Addr "api-1" "http"}}`, "toxiproxy:00", func(s string) (string, error) { return p.Render("web", s) }},
		{"unlinked peer by name", `{{.Addr "db" "tcp"}}`, "db:30005", func(s string) (string, error) { return p.Render("web", s) }},
		{"split host", `{{host (.Addr "api-1" "http")}}`, "toxiproxy", func(s string) (string, error) { return p.Render("web", s) }},
		{"split port", `{{port (.Self "http")}}`, "30000", func(s string) (string, error) { return p.Render("web", s) }},
		{"readiness from the host", `http://{{.Self "http"}}/`, "http://127.0.0.1:30000/", func(s string) (string, error) { return p.RenderHost("web", s) }},
		{"load through the proxy's host address", `{{.Addr "web" "http"}}`, "127.0.0.1:430", func(s string) (string, error) { return p.RenderClient(s) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.render(tt.text)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, 30000, web.Ports["http"])
	assert.Equal(t, 30005, db.Ports["tcp"])
	for _, px := range p.Proxies() {
		if px.To == "db" {
			assert.Equal(t, "db:30005", px.Upstream, "the proxy container dials the callee by name")
		}
	}
}

// TestLocalPlanIsUnchangedByTheHostView: without InNetwork every view is 127.0.0.1.
func TestLocalPlanIsUnchangedByTheHostView(t *testing.T) {
	p, err := NewPlan(sample(), "/run", seqPorts(30000))
	require.NoError(t, err)
	for _, render := range []func(string, string) (string, error){p.Render, p.RenderHost} {
		got, err := render("web", `{{.Self "http"}} {{.Bind}}`)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1:30000 127.0.0.1", got)
	}
}
