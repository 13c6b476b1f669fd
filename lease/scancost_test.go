package lease

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// tableCost is one fleet's lease table cost in steady state, per lease per
// minute, and its crash failover times.
type tableCost struct {
	writes, reads float64
	rcu           float64         // DynamoDB read units (see costStore)
	failover      []time.Duration // per crash instant
	itemMin       int             // the smallest and largest lease item (itemSize), bytes
	itemMax       int
}

func (c tableCost) meanFailover() time.Duration {
	var sum time.Duration
	for _, d := range c.failover {
		sum += d
	}
	return sum / time.Duration(len(c.failover))
}

// balancedFleet starts n workers a second apart on leases and lets them
// balance.
func balancedFleet(t *testing.T, store Store, leases, n int, scaling ScanScaling) *fleet {
	f := newFleet(t, store, leases)
	f.cfg.ScanScaling = scaling
	for i := range n {
		f.start(fmt.Sprintf("w%d", i))
		f.advance(time.Second)
	}
	f.advance(4*takeInterval + handoffTime)
	owners := f.owners()
	require.Len(t, owners, n, "every worker holds leases: %v", owners)
	return f
}

// measureTableCost runs n workers on leases for minutes of fake time with
// KCL's default timings, no checkpoints (a checkpoint replaces a renewal),
// and counts store calls: a List reads every lease item, a Get one. Each
// worker also runs the consumer's shard sync once a minute, as
// lease.SyncShards (a scan of its own) when fromScan is false, as
// SyncShardsFrom on its coordinator's last scan otherwise.
func measureTableCost(t *testing.T, base Store, leases, n, minutes int, scaling ScanScaling, fromScan bool, onBalanced func()) tableCost {
	cs := newCostStore(base, false)
	f := balancedFleet(t, cs, leases, n, scaling)
	var shards []Shard
	for i := range leases {
		shards = append(shards, Shard{ID: fmt.Sprintf("shardId-%012d", i)})
	}
	cs.reset()
	cs.resetReads()
	if onBalanced != nil {
		onBalanced()
	}
	for range minutes {
		f.advance(time.Minute)
		for _, w := range f.workers {
			var err error
			if fromScan {
				recent, _ := w.c.LastScan()
				_, _, err = SyncShardsFrom(context.Background(), cs, recent, shards, checkpoint.TrimHorizon)
			} else {
				_, _, err = SyncShards(context.Background(), cs, shards, checkpoint.TrimHorizon)
			}
			require.NoError(t, err)
		}
	}
	calls := cs.reset()
	_, rcu := cs.resetReads()
	require.Zero(t, calls["Take"]+calls["MarkHandoff"], "nothing moves in steady state: %v", calls)
	all, err := base.List(context.Background())
	require.NoError(t, err)
	f.stopAll()
	sizes, _ := (&scanSnapshot{leases: all}).itemSizes()
	return tableCost{
		writes:  float64(calls["Renew"]) / float64(leases*minutes),
		reads:   float64(calls["List"]*leases+calls["Get"]) / float64(leases*minutes),
		rcu:     (rcu["Scan"] + rcu["Get"]) / float64(leases*minutes),
		itemMin: slices.Min(sizes),
		itemMax: slices.Max(sizes),
	}
}

// crashAndWaitTakenOver stops worker w (a crash: nothing released) and
// returns how long until every lease it held is held by a live worker, as
// read from the table after each timer deadline of the fake clock.
func (f *fleet) crashAndWaitTakenOver(t *testing.T, w string) time.Duration {
	f.stop(w)
	crash := f.clk.Now()
	for {
		all, err := f.store.List(context.Background())
		require.NoError(t, err)
		if !slices.ContainsFunc(all, func(l Lease) bool {
			_, live := f.workers[l.Owner]
			return !l.Finished() && !live
		}) {
			break
		}
		ds := f.clk.Deadlines()
		require.NotEmpty(t, ds)
		f.advance(ds[0].Sub(f.clk.Now()))
		require.Less(t, f.clk.Now().Sub(crash), 10*failover, "the crashed worker's leases never moved")
	}
	return f.clk.Now().Sub(crash)
}

// measureFailover crashes one worker of a balanced fleet of n, at several
// instants spread over a scan interval, and returns how long after each
// crash every one of its leases was held by a live worker (read from the
// table after each timer deadline of the fake clock).
func measureFailover(t *testing.T, leases, n, samples int, scaling ScanScaling) []time.Duration {
	var out []time.Duration
	for i := range samples {
		f := balancedFleet(t, NewMemoryStore(), leases, n, scaling)
		f.advance(time.Duration(i) * (failover + 25*time.Millisecond) * 2 / time.Duration(samples))
		out = append(out, f.crashAndWaitTakenOver(t, "w1"))
		f.stopAll()
	}
	return out
}

// TestTableCostAndFailoverByFleetSize measures, in one run, the lease
// table's DynamoDB cost per lease per minute (30 leases, KCL's default
// timings, the consumer's shard sync included) and the crash failover time
// at 3 and 10 workers, before (ScanFixed, shard sync scanning on its own)
// and after (ScanSublinear, shard sync on the coordinator's scan). Writes
// per lease do not depend on the fleet size (one renewal per RenewInterval
// by the holder). Item reads per lease grow linearly with the workers
// (before: 7 scans per worker per minute, after: 6): on 30 small leases a
// scan is 2 read units, less than the probes a stretched schedule adds,
// so ScanSublinear keeps ScanFixed's intervals (Coordinator.stretch), and
// its failover. Tables where it stretches: TestScanScheduleReadUnits. The
// figures are logged for the docs; the assertions are the ones the design
// promises.
func TestTableCostAndFailoverByFleetSize(t *testing.T) {
	const leases, minutes, samples = 30, 10, 5
	type mode struct {
		name     string
		scaling  ScanScaling
		fromScan bool
	}
	modes := []mode{{"before (fixed scans, own shard sync scan)", ScanFixed, false}, {"after (default ScanSublinear, shard sync on the coordinator's scan)", ScanSublinear, true}}
	got := map[string]map[int]tableCost{}
	for _, m := range modes {
		got[m.name] = map[int]tableCost{}
		for _, n := range []int{3, 10} {
			c := measureTableCost(t, NewMemoryStore(), leases, n, minutes, m.scaling, m.fromScan, nil)
			c.failover = measureFailover(t, leases, n, samples, m.scaling)
			got[m.name][n] = c
			t.Logf("%s, %2d workers x %d leases (items of %d-%d B): %.1f writes, %.1f item reads and %.2f read units per lease per minute; crash failover mean %v, max %v (%v)",
				m.name, n, leases, c.itemMin, c.itemMax, c.writes, c.reads, c.rcu, c.meanFailover().Round(100*time.Millisecond), slices.Max(c.failover).Round(100*time.Millisecond), c.failover)
		}
	}
	before, after := got[modes[0].name], got[modes[1].name]
	for _, n := range []int{3, 10} {
		require.InDelta(t, 60/3.308, before[n].writes, 0.3)
		require.InDelta(t, 60/3.308, after[n].writes, 0.3)
	}
	// Before: 6 coordinator scans and 1 shard sync scan per worker per minute.
	require.InDelta(t, 7*3, before[3].reads, 0.6)
	require.InDelta(t, 7*10, before[10].reads, 2)
	// After: 6 scans per worker per minute (ScanFixed's schedule: the
	// probes would cost more read units than they save), no shard sync
	// scan, no probe.
	require.InDelta(t, 6*3, after[3].reads, 0.6)
	require.InDelta(t, 6*10, after[10].reads, 2)
	// Failover: a dead worker's lease is taken at a worker's first scan
	// finding it unchanged for longer than FailoverTime, so within two of
	// its scan intervals of the crash: ScanFixed's.
	for _, n := range []int{3, 10} {
		require.Equal(t, before[n].failover, after[n].failover, "%d workers", n)
		require.Less(t, after[n].rcu, before[n].rcu, "%d workers: read units (no shard sync scan)", n)
	}
	for _, n := range []int{3, 10} {
		for _, m := range modes {
			p := failover + 25*time.Millisecond
			for _, d := range got[m.name][n].failover {
				require.Greater(t, d, failover-failover/3, "%s, %d workers: a lease moved before it expired", m.name, n)
				require.LessOrEqual(t, d, 2*p+time.Second, "%s, %d workers", m.name, n)
			}
		}
	}
}
