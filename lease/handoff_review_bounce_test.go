package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Review: once balanced, throughput noise must not move leases (design §8
// test 9: 10 minutes with noise, 0 moves). Here the two hot shards swing
// by ±pct around 40 KiB/s, alternately, every take interval.
func TestReviewNoBounceUnderNoise(t *testing.T) {
	for _, pct := range []float64{0.05, 0.10} {
		_, _, moves, f := loadRun(t, BalanceByLoad)
		before := moves
		for i := range int(10 * time.Minute / takeInterval) {
			s := 1.0
			if i%2 == 1 {
				s = -1
			}
			f.traffic["shardId-000000000003"] = 40 * (1 + s*pct)
			f.traffic["shardId-000000000008"] = 40 * (1 - s*pct)
			f.advance(takeInterval)
		}
		f.settle()
		after := 0
		for _, w := range f.workers {
			after += w.passes.stolen
		}
		t.Logf("noise ±%.0f%%: %d moves while balancing, %d more in 10 min of noise", pct*100, before, after-before)
		require.Equal(t, before, after, "noise ±%.0f%% moved leases", pct*100)
	}
}
