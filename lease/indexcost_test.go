package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// costStore counts a Store's calls as countingStore does and, per call,
// the items read and DynamoDB read units they would cost (rcu):
//
//   - a consistent GetItem: 1 RCU per 4 KiB of the item, rounded up;
//   - a consistent Scan (List): the items' sizes summed, then rounded up
//     to 4 KiB (one page: 1 MiB holds thousands of leases);
//   - an eventually consistent Query of OwnerIndexName (ListOwned): the
//     keys-only index items' sizes summed, rounded up to 4 KiB (1 unit at
//     least), halved.
//
// Item sizes are those of MarshalItem (itemSize, as the coordinator
// estimates them). With index unset it hides the store's owner index (a
// table without OwnerIndexName).
type costStore struct {
	countingStore
	index bool
	rmu   sync.Mutex
	items map[string]int // "Scan", "Get", "Query": items read
	rcu   map[string]float64
}

func newCostStore(base Store, index bool) *costStore {
	return &costStore{countingStore: countingStore{Store: base, calls: map[string]int{}}, index: index,
		items: map[string]int{}, rcu: map[string]float64{}}
}

// asStore returns the store as the coordinator sees it: with or without
// the owner index.
func (s *costStore) asStore() Store {
	if s.index {
		return indexedCost{s}
	}
	return s
}

type indexedCost struct{ *costStore }

func (s indexedCost) HasOwnerIndex() bool { return true }

func (s indexedCost) ListOwned(ctx context.Context, owner string) ([]string, error) {
	s.count("ListOwned")
	keys, err := s.Store.(OwnerIndex).ListOwned(ctx, owner)
	if err == nil {
		// Half a unit at least: an empty answer costs a read too.
		s.read("Query", len(keys), 0.5*max(readUnits(ownedKeysSize(owner, keys)), 1))
	}
	return keys, err
}

func (s *costStore) read(op string, items int, rcu float64) {
	s.rmu.Lock()
	s.items[op] += items
	s.rcu[op] += rcu
	s.rmu.Unlock()
}

func (s *costStore) resetReads() (items map[string]int, rcu map[string]float64) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	items, rcu = s.items, s.rcu
	s.items, s.rcu = map[string]int{}, map[string]float64{}
	return items, rcu
}

func (s *costStore) List(ctx context.Context) ([]Lease, error) {
	all, err := s.countingStore.List(ctx)
	if err == nil {
		size := 0
		for _, l := range all {
			size += itemSize(l)
		}
		s.read("Scan", len(all), readUnits(size))
	}
	return all, err
}

func (s *costStore) Get(ctx context.Context, key string) (Lease, error) {
	l, err := s.countingStore.Get(ctx, key)
	switch {
	case err == nil:
		s.read("Get", 1, readUnits(itemSize(l)))
	case errors.Is(err, ErrNotFound):
		s.read("Get", 0, 1) // a GetItem of a missing item still costs a unit
	}
	return l, err
}

func (s *costStore) Release(ctx context.Context, l Lease) (Lease, error) {
	s.count("Release")
	return s.Store.Release(ctx, l)
}

func (s *costStore) CancelHandoff(ctx context.Context, l Lease) (Lease, error) {
	s.count("CancelHandoff")
	return s.Store.CancelHandoff(ctx, l)
}

// cost is a fleet's lease table use per lease per minute.
type cost struct {
	reads                 float64 // item reads by consistent Get and Scan
	query                 float64 // index items read by Query (ListOwned)
	rcu, writes           float64
	scans, targeted, gets float64 // per minute, fleet-wide: calls
}

func (c cost) String() string {
	return fmt.Sprintf("%5.1f item reads + %4.1f index items = %5.2f RCU, %4.1f writes (fleet: %4.1f scans, %4.1f index reads per minute)",
		c.reads, c.query, c.rcu, c.writes, c.scans, c.targeted)
}

func costOf(cs *costStore, leases int, d time.Duration) cost {
	calls := cs.reset()
	items, rcu := cs.resetReads()
	per := float64(leases) * d.Minutes()
	var r float64
	for _, v := range rcu {
		r += v
	}
	return cost{
		reads:    float64(items["Scan"]+items["Get"]) / per,
		query:    float64(items["Query"]) / per,
		rcu:      r / per,
		writes:   float64(calls["Renew"]+calls["Take"]+calls["MarkHandoff"]+calls["Release"]+calls["CancelHandoff"]) / per,
		scans:    float64(calls["List"]) / d.Minutes(),
		targeted: float64(calls["ListOwned"]) / d.Minutes(),
	}
}

// midStreamStore returns a MemoryStore with leases leases checkpointed
// mid-stream (a 56-digit sequence number), the size of a lease item in a
// running application (newFleet leaves existing leases as they are), with
// a pending checkpoint of state bytes of application state if state > 0
// (PrepareCheckpoint), which makes items larger.
func midStreamStore(t *testing.T, leases, state int) *MemoryStore {
	s := NewMemoryStore()
	fillMidStream(t, s, leases, state)
	return s
}

// fillMidStream creates midStreamStore's leases in s.
func fillMidStream(t *testing.T, s Store, leases, state int) {
	for i := range leases {
		l := Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: checkpoint.At(fmt.Sprintf("49%054d", i), 0)}
		if state > 0 {
			p := checkpoint.At(fmt.Sprintf("49%054d", i+1), 0)
			l.PendingCheckpoint, l.PendingCheckpointState = &p, make([]byte, state)
		}
		_, err := s.Create(context.Background(), l)
		require.NoError(t, err)
	}
}

// churn is what happens to the fleet every period.
type churn int

const (
	steady   churn = iota // nothing
	crashes               // one worker crashes, a new one joins
	graceful              // one worker leaves (ReleaseAll), a new one joins
)

func (c churn) String() string { return [...]string{"steady", "crash + join", "leave + join"}[c] }

// measureChurn runs n workers on leases (KCL timings, fake clock) for
// periods of period each, applying ch at the start of each, and returns
// the table cost over the whole run.
func measureChurn(t *testing.T, n, leases, state int, index bool, ch churn, period time.Duration, periods int, scaling ScanScaling) cost {
	cs := newCostStore(midStreamStore(t, leases, state), index)
	f := balancedFleet(t, cs.asStore(), leases, n, scaling)
	cs.reset()
	cs.resetReads()
	next := n
	for i := range periods {
		if ch != steady {
			victim := slices.Sorted(func(yield func(string) bool) {
				for id := range f.workers {
					if !yield(id) {
						return
					}
				}
			})[i%n]
			if ch == graceful {
				require.NoError(t, f.workers[victim].c.ReleaseAll(context.Background()))
			}
			f.stop(victim)
			f.start(fmt.Sprintf("w%d", next))
			next++
		}
		f.advance(period)
	}
	c := costOf(cs, leases, time.Duration(periods)*period)
	f.stopAll()
	return c
}

// measureFailoverWith is measureFailover on a store with or without the
// owner index: for each of samples crashes of w1 (at offsets spread over
// two probe periods), how long until its leases are held again.
func measureFailoverWith(t *testing.T, n, leases, state, samples int, index bool) []time.Duration {
	return measureFailoverScaling(t, n, leases, state, samples, index, ScanSublinear)
}

// measureFailoverScaling is measureFailoverWith with scaling.
func measureFailoverScaling(t *testing.T, n, leases, state, samples int, index bool, scaling ScanScaling) []time.Duration {
	var out []time.Duration
	for i := range samples {
		cs := newCostStore(midStreamStore(t, leases, state), index)
		f := balancedFleet(t, cs.asStore(), leases, n, scaling)
		f.advance(time.Duration(i) * (failover + 25*time.Millisecond) * 2 / time.Duration(samples))
		out = append(out, f.crashAndWaitTakenOver(t, "w1"))
		f.stopAll()
	}
	return out
}

func meanMax(ds []time.Duration) (mean, maxd time.Duration) {
	for _, d := range ds {
		mean += d
	}
	return (mean / time.Duration(len(ds))).Round(100 * time.Millisecond), slices.Max(ds).Round(100 * time.Millisecond)
}

// TestOwnerIndexTableCost measures, in one run on the fake clock, the lease
// table's cost per lease per minute (KCL timings, ScanSublinear, lease
// items checkpointed mid-stream) with and without the owner index: 30
// leases at 3 and 10 workers, and 100 leases with a 1 KiB pending
// checkpoint state each at 10 workers, in steady state and under churn
// every 90s (a crash and a new worker; a graceful leave and a new worker),
// and crash failover. The figures are logged for the docs.
//
// Asserted: steady state costs the same (no probe finds a suspect);
// failover is not slower with the index; and with the large items (where
// reading a worker's leases costs fewer read units than a scan, see
// Coordinator.targetedIsCheaper) crashes cost fewer item reads, scans and
// read units with the index. Graceful leaves cost the same scans and item
// reads, plus a Query per probe that finds one (the leaver handed its
// leases over, so each prober finds its probe taken and the leaver
// holding nothing, and scans as without the index, see
// Coordinator.probeSuspects). At 3 workers, and at 10 on 30 small items
// (a scan is 2 read units, less than the probes would add), the scan
// intervals are not stretched (Coordinator.stretch) and there are no
// probes, so the index is not used. (ScanFixed against ScanSublinear:
// TestScanScheduleReadUnits.)
func TestOwnerIndexTableCost(t *testing.T) {
	const period = 90 * time.Second
	periods, samples := 8, 5
	if raceEnabled {
		// Several times slower: half the fake time and fewer crashes; the
		// figures for the docs come from the run without -race.
		periods, samples = 4, 3
	}
	type fleetKind struct{ n, leases, state int }
	type key struct {
		fl    fleetKind
		index bool
		ch    churn
	}
	small3, small10, large10 := fleetKind{3, 30, 0}, fleetKind{10, 30, 0}, fleetKind{10, 100, 1024}
	got := map[key]cost{}
	for _, fl := range []fleetKind{small3, small10, large10} {
		name := fmt.Sprintf("%2d workers x %3d leases (state %4d B)", fl.n, fl.leases, fl.state)
		for _, ch := range []churn{steady, crashes, graceful} {
			for _, index := range []bool{false, true} {
				c := measureChurn(t, fl.n, fl.leases, fl.state, index, ch, period, periods, ScanSublinear)
				got[key{fl, index, ch}] = c
				t.Logf("%s, %-12s, index %-5v: %v", name, ch, index, c)
			}
		}
		var fo [2][]time.Duration
		for i, index := range []bool{false, true} {
			fo[i] = measureFailoverWith(t, fl.n, fl.leases, fl.state, samples, index)
			mean, maxd := meanMax(fo[i])
			t.Logf("%s, crash failover, index %-5v: mean %v, max %v (%v)", name, index, mean, maxd, fo[i])
		}
		bm, bx := meanMax(fo[0])
		am, ax := meanMax(fo[1])
		require.LessOrEqual(t, am, bm, "%s: failover mean", name)
		require.LessOrEqual(t, ax, bx, "%s: failover max", name)
		require.Equal(t, got[key{fl, false, steady}], got[key{fl, true, steady}], "%s: steady state costs the same", name)
	}
	for _, ch := range []churn{crashes, graceful} {
		with, without := got[key{large10, true, ch}], got[key{large10, false, ch}]
		require.Positive(t, with.targeted, "large items, %v: the index is used", ch)
		require.Zero(t, got[key{small10, true, ch}].targeted, "small items, %v: the scan is cheaper", ch)
		if ch == crashes {
			require.Less(t, with.reads+with.query, without.reads, "large items, %v: item reads", ch)
			require.Less(t, with.rcu, without.rcu, "large items, %v: read units", ch)
			require.Less(t, with.scans, without.scans, "large items, %v: scans", ch)
			continue
		}
		require.LessOrEqual(t, with.reads+with.query, without.reads, "large items, %v: item reads", ch)
		require.LessOrEqual(t, with.scans, without.scans, "large items, %v: scans", ch)
		// The Queries (half a unit each, fleet-wide per minute) at most.
		require.LessOrEqual(t, with.rcu, without.rcu+0.5*with.targeted/float64(large10.leases)+1e-9, "large items, %v: read units", ch)
	}
}

// ownedKeysSize is the size of owner's keys-only index items for keys.
func ownedKeysSize(owner string, keys []string) int {
	n := 0
	for _, k := range keys {
		n += len(AttrLeaseKey) + len(k) + len(AttrLeaseOwner) + len(owner)
	}
	return n
}
