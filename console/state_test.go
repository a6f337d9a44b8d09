package console

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestConsoleMembershipChanges: an instance the registry listed once is news when it goes
// and when it comes back; the first reading, and a reading unchanged, are not.
func TestConsoleMembershipChanges(t *testing.T) {
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	tests := []struct {
		name          string
		prev, now     map[string]bool
		members       map[string]bool
		want          []string
		wantMembersOf []string
	}{
		{name: "first reading", prev: nil, now: set("order-1", "order-2"), members: set(),
			want: nil, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "unchanged", prev: set("order-1", "order-2"), now: set("order-1", "order-2"), members: set("order-1", "order-2"),
			want: nil, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "lease expired", prev: set("order-1", "order-2"), now: set("order-1"), members: set("order-1", "order-2"),
			want: []string{"order-2 left the registry (lease expired or deregistered)"}, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "back after a restart", prev: set("order-1"), now: set("order-1", "order-2"), members: set("order-1", "order-2"),
			want: []string{"order-2 rejoined the registry"}, wantMembersOf: []string{"order-1", "order-2"}},
		{name: "registry empty, then a new instance", prev: set("order-1", "product-1"), now: set("product-2"), members: set("order-1", "product-1"),
			want:          []string{"order-1 left the registry (lease expired or deregistered)", "product-1 left the registry (lease expired or deregistered)", "product-2 joined the registry"},
			wantMembersOf: []string{"order-1", "product-1", "product-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := membershipChanges(tt.prev, tt.now, tt.members)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, set(tt.wantMembersOf...), tt.members)
		})
	}
}
