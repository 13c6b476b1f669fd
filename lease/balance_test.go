package lease

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadRun runs 3 workers on 12 shards of which 2 carry 80% of the bytes,
// the joiners arriving once w1 has published throughputs, and returns each
// worker's bytes/s, hot shards held, and the leases moved to balance.
func loadRun(t *testing.T, balance Balance) (loads map[string]float64, hot map[string]int, moves int, f *fleet) {
	f = newFleet(t, NewMemoryStore(), 12)
	f.cfg.Balance = balance
	f.traffic = map[string]float64{}
	hotKeys := map[string]bool{"shardId-000000000003": true, "shardId-000000000008": true}
	for i := range 12 {
		k := fmt.Sprintf("shardId-%012d", i)
		f.traffic[k] = 2 // 10 cold shards: 20 KiB/s
		if hotKeys[k] {
			f.traffic[k] = 40 // 2 hot shards: 80 KiB/s
		}
	}
	f.start("w1")
	f.advance(takeInterval)
	f.start("w2")
	f.advance(time.Second)
	f.start("w3")
	f.advance(3*takeInterval + handoffTime)
	f.settle()
	all, err := f.store.List(context.Background())
	require.NoError(t, err)
	loads, hot = map[string]float64{}, map[string]int{}
	for _, l := range all {
		require.False(t, l.InHandoff(), "settled")
		loads[l.Owner] += f.traffic[l.Key]
		if hotKeys[l.Key] {
			hot[l.Owner]++
		}
	}
	for _, w := range f.workers {
		moves += w.passes.stolen
	}
	return loads, hot, moves, f
}

// Balancing by load (issue 14): 12 shards, 2 of them carrying 80% of the
// traffic, 3 workers. No worker handles more than 1.25x the mean bytes/s
// nor more than one hot shard, with few moves, and nothing moves after.
// Balancing by count, in the same run for comparison, leaves a worker with
// both hot shards or far above the mean.
func TestBalanceByLoadTwelveShardsTwoHot(t *testing.T) {
	const mean = 100.0 / 3
	loads, hot, moves, f := loadRun(t, BalanceByLoad)
	maxLoad := 0.0
	for w, l := range loads {
		maxLoad = max(maxLoad, l)
		require.LessOrEqual(t, hot[w], 1, "worker %s holds both hot shards: %v", w, hot)
	}
	t.Logf("by load: KiB/s per worker %v (max %.2fx the mean), hot shards %v, %d moves", loads, maxLoad/mean, hot, moves)
	require.LessOrEqual(t, maxLoad, 1.25*mean, "loads %v", loads)
	require.Len(t, loads, 3)
	require.LessOrEqual(t, moves, 4, "few moves")
	f.advance(3 * takeInterval)
	after := 0
	for _, w := range f.workers {
		after += w.passes.stolen
	}
	require.Equal(t, moves, after, "stable: no lease bounces")

	cl, ch, cm, _ := loadRun(t, BalanceByCount)
	cmax := 0.0
	for _, l := range cl {
		cmax = max(cmax, l)
	}
	t.Logf("by count: KiB/s per worker %v (max %.2fx the mean), hot shards %v, %d moves", cl, cmax/mean, ch, cm)
}
