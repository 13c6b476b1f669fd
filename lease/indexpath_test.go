package lease

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// indexWrap gives a store an owner index answered by list.
type indexWrap struct {
	Store
	list func(ctx context.Context, owner string) ([]string, error)
}

func (s indexWrap) HasOwnerIndex() bool { return true }
func (s indexWrap) ListOwned(ctx context.Context, owner string) ([]string, error) {
	return s.list(ctx, owner)
}

// crashTakeover crashes victim in f, advances the clock until each of its
// leases is held by a live worker, and returns its leases and how many
// leases the live workers took meanwhile by targeted reads and by scans.
func crashTakeover(t *testing.T, f *fleet, victim string) (leases []string, targeted, scanned int) {
	t.Helper()
	before := map[string][2]int{}
	lostBefore := map[string]int{}
	for id, w := range f.workers {
		a, b := w.passes.takenBy()
		before[id] = [2]int{a, b}
		lostBefore[id] = len(w.eventsOf(Lost))
	}
	leases = keys(f.workers[victim].c.Held())
	require.NotEmpty(t, leases)
	f.stop(victim)
	crash := f.clk.Now()
	for {
		all, err := f.store.List(context.Background())
		require.NoError(t, err)
		if !slices.ContainsFunc(all, func(l Lease) bool { _, live := f.workers[l.Owner]; return !live }) {
			break
		}
		ds := f.clk.Deadlines()
		require.NotEmpty(t, ds)
		f.advance(ds[0].Sub(f.clk.Now()))
		require.Less(t, f.clk.Now().Sub(crash), 10*failover, "the crashed worker's leases never moved")
	}
	for id, w := range f.workers {
		a, b := w.passes.takenBy()
		targeted += a - before[id][0]
		scanned += b - before[id][1]
		// No live worker lost a lease meanwhile.
		require.Len(t, w.eventsOf(Lost), lostBefore[id], "worker %s lost a lease", id)
	}
	return leases, targeted, scanned
}

// bigLeases is a table where reading one worker's leases costs fewer read
// units than a scan (see targetedIsCheaper): 60 leases of about 1.3 KB
// (a pending checkpoint with 1 KiB of state), 10 per worker of 6.
func bigLeases(t *testing.T) *MemoryStore { return midStreamStore(t, 60, 1024) }

// A crash at 6 workers (scan intervals stretched, probes on) is taken over
// through the owner index: the probes find the dead worker, and its leases
// are read by ListOwned and Get and taken, every one of them by a targeted
// pass, none by a scan.
func TestCrashTakenOverThroughOwnerIndex(t *testing.T) {
	cs := newCostStore(bigLeases(t), true)
	f := balancedFleet(t, cs.asStore(), 60, 6, ScanSublinear)
	cs.reset()
	leases, targeted, scanned := crashTakeover(t, f, "w1")
	calls := cs.reset()
	require.Equal(t, len(leases), targeted, "every lease of the crashed worker taken by a targeted read")
	require.Zero(t, scanned, "no scan took a lease")
	require.Positive(t, calls["ListOwned"])
	require.Equal(t, len(leases), calls["Take"], "one take per lease, no take lost to a race: %v", calls)
	f.requireConsistent()
}

// Without an owner index (a store that does not report one), the same
// crash is taken over by scans, as before the index was used: no targeted
// pass, and the same store calls as with an index that is never used (the
// probe reads stop at the first suspect).
func TestCrashWithoutOwnerIndexIsTakenByScan(t *testing.T) {
	cs := newCostStore(bigLeases(t), false)
	f := balancedFleet(t, cs.asStore(), 60, 6, ScanSublinear)
	cs.reset()
	_, targeted, scanned := crashTakeover(t, f, "w1")
	without := cs.reset()
	require.Zero(t, targeted)
	require.Positive(t, scanned)
	f.requireConsistent()
	// An OwnerIndex that reports no index is not used either.
	var listed atomic.Int64
	mem := bigLeases(t)
	// The counting store under the wrappers, so that the coordinator
	// sees their ListOwned and HasOwnerIndex (a costStore hides both).
	cs = newCostStore(mem, false)
	f = balancedFleet(t, noIndex{indexWrap{Store: cs, list: func(ctx context.Context, o string) ([]string, error) {
		listed.Add(1)
		return mem.ListOwned(ctx, o)
	}}}, 60, 6, ScanSublinear)
	cs.reset()
	_, targeted, scanned = crashTakeover(t, f, "w1")
	require.Zero(t, targeted)
	require.Positive(t, scanned)
	require.Zero(t, listed.Load())
	require.Equal(t, without, cs.reset())
}

// With the index, where a scan costs fewer read units than reading the
// suspect's leases one by one, the probe scans as without the index, with
// the same store calls. The table is large enough for the stretched
// schedule (with probes) to pay at 10 workers (200 leases of about 300
// bytes, a pending checkpoint with 1 byte of state: a 15-unit scan, see
// Coordinator.stretch), and its items small enough that a worker's 20
// leases cost more to read one by one than that scan.
func TestCrashWithOwnerIndexScansWhereCheaper(t *testing.T) {
	const leases, workers = 200, 10
	var calls [2]map[string]int
	for i, index := range []bool{false, true} {
		cs := newCostStore(midStreamStore(t, leases, 1), index)
		f := balancedFleet(t, cs.asStore(), leases, workers, ScanSublinear)
		cs.reset()
		_, targeted, scanned := crashTakeover(t, f, "w1")
		require.Zero(t, targeted)
		require.Positive(t, scanned)
		calls[i] = cs.reset()
		require.Positive(t, calls[i]["Get"], "probes ran")
		f.requireConsistent()
	}
	require.Equal(t, calls[0], calls[1])
}

// noIndex is an OwnerIndex whose table has no index (HasOwnerIndex false),
// as DynamoStore on a table without OwnerIndexName.
type noIndex struct{ indexWrap }

func (noIndex) HasOwnerIndex() bool { return false }

// An index that lists stale owners (here: every lease under every owner,
// as a lagging index would list leases that moved) only costs reads: each
// listed lease's Get shows its real owner, and leases of live workers are
// never taken.
func TestOwnerIndexListingStaleOwners(t *testing.T) {
	mem := bigLeases(t)
	store := indexWrap{Store: mem, list: func(ctx context.Context, _ string) ([]string, error) {
		all, err := mem.List(ctx)
		if err != nil {
			return nil, err
		}
		var ks []string
		for _, l := range all {
			ks = append(ks, l.Key)
		}
		return ks, nil
	}}
	f := balancedFleet(t, store, 60, 6, ScanSublinear)
	leases, targeted, scanned := crashTakeover(t, f, "w1")
	require.Equal(t, len(leases), targeted+scanned)
	require.Positive(t, targeted)
	f.requireConsistent()
}

// When ListOwned fails, the probe falls back to a scan, which takes the
// crashed worker's leases as without an index, as fast as with it.
func TestOwnerIndexFailureFallsBackToScan(t *testing.T) {
	var failed atomic.Int64
	mem := bigLeases(t)
	store := indexWrap{Store: mem, list: func(context.Context, string) ([]string, error) {
		failed.Add(1)
		return nil, errors.New("throttled")
	}}
	f := balancedFleet(t, store, 60, 6, ScanSublinear)
	f.advance(7 * time.Second) // a crash between scans
	start := f.clk.Now()
	_, targeted, scanned := crashTakeover(t, f, "w1")
	took := f.clk.Now().Sub(start)
	require.Zero(t, targeted)
	require.Positive(t, scanned)
	require.Positive(t, failed.Load(), "the index was tried")
	f.requireConsistent()

	ok := balancedFleet(t, bigLeases(t), 60, 6, ScanSublinear)
	ok.advance(7 * time.Second)
	start = ok.clk.Now()
	_, targeted, _ = crashTakeover(t, ok, "w1")
	require.Positive(t, targeted)
	require.Equal(t, ok.clk.Now().Sub(start), took, "the fallback scan runs when the targeted read would have")
}
