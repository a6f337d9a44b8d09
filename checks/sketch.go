package checks

import (
	"math"
	"math/bits"
	"time"
)

// sketch is a log-linear latency histogram in bounded memory (a few kilobytes whatever the
// number of requests). Durations below 128 ns are exact; above, each power of two is split
// in 64 buckets, so a bucket spans at most 1/64 of its values. A quantile reports the
// largest duration seen in its bucket: never below the true value, at most 1.6 % above
// it, and exact when the bucket holds one distinct duration.
type sketch struct {
	counts []uint64
	maxes  []time.Duration
	n      uint64
}

const (
	sketchExact = 128 // durations below this many nanoseconds have their own bucket
	sketchSub   = 64  // buckets per power of two above it
	// sketchBuckets is the bucket count for the largest duration: the bound on a
	// sketch's size (about 60 KB), reached only by durations of years.
	sketchBuckets = sketchExact + 56*sketchSub
)

func bucketOf(d time.Duration) int {
	u := uint64(max(d, 0))
	if u < sketchExact {
		return int(u)
	}
	s := bits.Len64(u) - 7 // u>>s is in [64, 127]
	return sketchExact + (s-1)*sketchSub + int(u>>s) - sketchSub
}

func (s *sketch) add(d time.Duration) {
	d = max(d, 0)
	i := bucketOf(d)
	if i >= len(s.counts) {
		n := min(max(i+1, 2*len(s.counts)), sketchBuckets)
		counts := make([]uint64, n)
		copy(counts, s.counts)
		maxes := make([]time.Duration, n)
		copy(maxes, s.maxes)
		s.counts, s.maxes = counts, maxes
	}
	s.counts[i]++
	s.maxes[i] = max(s.maxes[i], d)
	s.n++
}

// quantile returns the nearest-rank q-quantile: the smallest recorded duration (up to the
// bucket's resolution) that at least q of the durations do not exceed.
func (s *sketch) quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.n)))
	rank = min(max(rank, 1), s.n)
	var cum uint64
	for i, c := range s.counts {
		cum += c
		if cum >= rank {
			return s.maxes[i]
		}
	}
	return s.maxes[len(s.maxes)-1]
}

// percentileQ maps a percentile name (p50, p90, p95, p99) to its quantile.
func percentileQ(p string) (float64, bool) {
	switch p {
	case "p50":
		return 0.50, true
	case "p90":
		return 0.90, true
	case "p95":
		return 0.95, true
	case "p99":
		return 0.99, true
	}
	return 0, false
}
