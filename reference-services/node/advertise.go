package node

import (
	"net"
	"os"
)

// AdvertiseAddr is the address a component registers for a listener bound at addr. It is
// addr itself, except for a wildcard bind (0.0.0.0, [::] — allowed only inside a container
// network, see AllowedHost): a peer dialling that would reach itself. There the host name
// stands in, because a container runtime sets it to the component's name, which is also
// its DNS alias on the run's network; unlike the container's IP, the alias survives a
// network disconnect and reconnect.
func AdvertiseAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	name, err := os.Hostname()
	if err != nil || name == "" {
		return addr
	}
	return net.JoinHostPort(name, port)
}
