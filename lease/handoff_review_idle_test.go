package lease

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// Review: by load, leases with no measured throughput never move (g = 0),
// and count balancing is off as soon as any lease has a throughput. One
// busy shard among 12 idle-ish ones: the joiner never gets a lease, the
// first worker polls all 12 (design §6.4 gave every lease a base cost so
// idle shards still spread).
func TestReviewIdleLeasesSpread(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 12)
	f.traffic = map[string]float64{}
	for i := range 12 {
		f.traffic[fmt.Sprintf("shardId-%012d", i)] = 0
	}
	f.traffic["shardId-000000000005"] = 40
	f.start("w1")
	f.advance(takeInterval)
	f.start("w2")
	f.advance(5*takeInterval + handoffTime)
	f.settle()
	t.Logf("owners %v", f.owners())
	require.NotEmpty(t, f.workers["w2"].c.Held(), "w2 holds no lease after 5 balancing passes")
}
