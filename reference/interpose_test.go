package reference

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline-dev/faultline/faults"
	"github.com/faultline-dev/faultline/system"
)

func TestInterposerPublishesNothingWithoutRegistry(t *testing.T) {
	links, err := faults.NewLinks()
	require.NoError(t, err)
	t.Cleanup(func() { _ = links.Close() })
	ip := NewInterposer(links, nil)
	t.Cleanup(func() { _ = ip.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	addr, err := ip.Interpose(componentNamed("order-1", "order"), "broker-1", ln.Addr().String())
	require.NoError(t, err)
	assert.NotEqual(t, ln.Addr().String(), addr, "the caller gets a proxy, not the real address")
	l, ok := links.Get("order-1->broker-1")
	require.True(t, ok)
	assert.Equal(t, "order", l.FromService)
	assert.Equal(t, "broker", l.ToService)
	assert.Empty(t, ip.Routes())
	_, err = ip.Interpose(componentNamed("order-1", "order"), "broker-1", ln.Addr().String())
	assert.Error(t, err, "one proxy per edge")
}

func componentNamed(name, service string) system.Component {
	return system.Component{Name: name, Kind: service, Service: service}
}
