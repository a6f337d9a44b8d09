package node

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAdvertiseAddr(t *testing.T) {
	host, err := os.Hostname()
	require.NoError(t, err)
	tests := []struct{ in, want string }{
		{"127.0.0.1:9000", "127.0.0.1:9000"},
		{"[::1]:9000", "[::1]:9000"},
		{"order-1:9000", "order-1:9000"},
		{"0.0.0.0:9000", host + ":9000"},
		{"[::]:9000", host + ":9000"},
		{":9000", host + ":9000"},
		{"not an address", "not an address"},
	}
	for _, tt := range tests {
		got := AdvertiseAddr(tt.in)
		assert.Equal(t, tt.want, got, "AdvertiseAddr(%q)", tt.in)
	}
}
