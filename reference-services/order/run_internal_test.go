package order

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline-dev/faultline/reference-services/design"
)

// The relay's bound on one publish must let the order->broker policy make every attempt it is
// configured for; the fixed 3 s it used to be cut the default design's second attempt short
// and never allowed the third.
func TestPublishTimeoutCoversThePolicy(t *testing.T) {
	d := func(v time.Duration) design.Duration { return design.Duration(v) }
	tests := []struct {
		name   string
		policy design.Policy
		want   time.Duration
	}{
		{"no policy: one JetStream-bounded attempt", design.Policy{}, 6 * time.Second},
		{"timeout only", design.Policy{Timeout: d(2 * time.Second)}, 3 * time.Second},
		{"retries without a timeout", design.Policy{Retry: &design.Retry{MaxAttempts: 2}}, 11 * time.Second},
		{"retries, backoff, jitter and waits", design.Policy{
			Timeout:   d(time.Second),
			Retry:     &design.Retry{MaxAttempts: 3, Backoff: d(100 * time.Millisecond), MaxBackoff: d(time.Second), Jitter: 0.5},
			Bulkhead:  &design.Bulkhead{MaxConcurrent: 1, MaxWait: d(100 * time.Millisecond)},
			RateLimit: &design.RateLimit{RPS: 1, MaxWait: d(100 * time.Millisecond)},
		}, 3*1200*time.Millisecond + 2*1500*time.Millisecond + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := publishTimeout(tt.policy)
			assert.Equal(t, tt.want, got)
		})
	}

	// The default design's policy: three attempts of 2 s with up to 1.2 s between them.
	p := design.Default().Policy("order", "broker")
	got := publishTimeout(p)
	assert.GreaterOrEqual(t, got, 3*p.Timeout.Std()+2*p.Retry.MaxBackoff.Std(), "every configured attempt fits")
}
