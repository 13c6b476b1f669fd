package lease

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/clock"
)

// lagStore is a store whose owner index lags: ListOwned answers from the
// owner map as it was lag ago on the fake clock (the index is eventually
// consistent), so it misses leases an owner took within lag and still
// lists leases under the owner they had lag ago. The history is recorded
// after each write that can change an owner, once start is called (before
// that, ListOwned answers from the table). With index unset it reports no
// index (the scan path, for comparison). It counts Take calls and the
// answers that differed from the table (missed: a key the owner holds is
// absent; stale: a key listed is held by another).
type lagStore struct {
	Store
	lag   time.Duration
	index bool

	mu      sync.Mutex
	clk     *clock.Fake
	history []ownerView
	takes   int
	missed  int
	stale   int
}

type ownerView struct {
	at     time.Time
	owners map[string]string
}

func (s *lagStore) start(clk *clock.Fake) {
	s.mu.Lock()
	s.clk = clk
	s.mu.Unlock()
	s.record()
	s.mu.Lock()
	s.takes, s.missed, s.stale = 0, 0, 0
	s.mu.Unlock()
}

func (s *lagStore) owners() map[string]string {
	all, err := s.Store.List(context.Background())
	if err != nil {
		panic(err) // a MemoryStore does not fail
	}
	m := make(map[string]string, len(all))
	for _, l := range all {
		m[l.Key] = l.Owner
	}
	return m
}

func (s *lagStore) record() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clk == nil {
		return
	}
	s.history = append(s.history, ownerView{at: s.clk.Now(), owners: s.owners()})
}

func (s *lagStore) HasOwnerIndex() bool { return s.index }

func (s *lagStore) ListOwned(ctx context.Context, owner string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.owners()
	view := live
	if s.clk != nil && len(s.history) > 0 {
		asOf := s.clk.Now().Add(-s.lag)
		view = s.history[0].owners
		for _, v := range s.history {
			if v.at.After(asOf) {
				break
			}
			view = v.owners
		}
	}
	var out []string
	for k, o := range view {
		if o == owner {
			out = append(out, k)
			if live[k] != owner {
				s.stale++
			}
		}
	}
	for k, o := range live {
		if o == owner && view[k] != owner {
			s.missed++
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *lagStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	s.mu.Lock()
	if s.clk != nil {
		s.takes++
	}
	s.mu.Unlock()
	got, err := s.Store.Take(ctx, l, owner)
	s.record()
	return got, err
}

func (s *lagStore) Release(ctx context.Context, l Lease) (Lease, error) {
	got, err := s.Store.Release(ctx, l)
	s.record()
	return got, err
}

func (s *lagStore) MarkHandoff(ctx context.Context, l Lease, next string) (Lease, error) {
	got, err := s.Store.MarkHandoff(ctx, l, next)
	s.record()
	return got, err
}

func (s *lagStore) CancelHandoff(ctx context.Context, l Lease) (Lease, error) {
	got, err := s.Store.CancelHandoff(ctx, l)
	s.record()
	return got, err
}

func (s *lagStore) Delete(ctx context.Context, key string) error {
	err := s.Store.Delete(ctx, key)
	s.record()
	return err
}

// lagCrash is one run of the lagging-index scenario at 10 workers on 100
// leases of about 1.3 KB (where the targeted path pays, as in
// TestTakeNowAfterTargetedRead's fleet), crashing w1 offset into the run:
// just before dying, w1 acquires a lease w2 released (a Take by w1 in the
// table, as w1's own take pass would write it), so that an index lagging
// more than the time from that take to the first probe finding w1 dead
// does not list it under w1 yet.
type lagResult struct {
	took                  time.Duration
	leases                int // w1's leases at the crash
	targeted, scanned     int
	takes, missed, stale  int
	lostLive              int // Lost events of live workers after the crash
	stretchedScanInterval time.Duration
}

func lagCrash(t *testing.T, lag time.Duration, index bool, offset time.Duration) lagResult {
	t.Helper()
	const leases, workers = 100, 10
	ls := &lagStore{Store: midStreamStore(t, leases, 1024), lag: lag, index: index}
	f := balancedFleet(t, ls, leases, workers, ScanSublinear)
	defer f.stopAll()
	ls.start(f.clk)
	f.advance(offset)

	ctx := context.Background()
	// w1 takes one of w2's leases just before it crashes.
	key := keys(f.workers["w2"].c.Held())[0]
	require.NoError(t, f.workers["w2"].c.Release(ctx, key))
	l, err := ls.Get(ctx, key)
	require.NoError(t, err)
	_, err = ls.Take(ctx, l, "w1")
	require.NoError(t, err)
	f.settle()

	var r lagResult
	w := f.workers["w0"].c
	gaps, _ := w.scanGaps(w.cfg.ScanScaling.scanScale(workers))
	r.stretchedScanInterval = slices.Max(gaps)
	before := map[string][2]int{}
	lostBefore := map[string]int{}
	for id, w := range f.workers {
		if id == "w1" {
			continue
		}
		a, b := w.passes.takenBy()
		before[id] = [2]int{a, b}
		lostBefore[id] = len(w.eventsOf(Lost))
	}
	r.leases = len(keys(f.workers["w1"].c.Held())) + 1 // and key, not in its Held
	ls.mu.Lock()
	ls.takes, ls.missed, ls.stale = 0, 0, 0
	ls.mu.Unlock()
	r.took = f.crashAndWaitTakenOver(t, "w1")
	for id, w := range f.workers {
		a, b := w.passes.takenBy()
		r.targeted += a - before[id][0]
		r.scanned += b - before[id][1]
		r.lostLive += len(w.eventsOf(Lost)) - lostBefore[id]
	}
	ls.mu.Lock()
	r.takes, r.missed, r.stale = ls.takes, ls.missed, ls.stale
	ls.mu.Unlock()
	f.requireConsistent()
	return r
}

// lagSamples are crash instants spread over a balancing period of the
// stretched schedule.
func lagSamples() []time.Duration {
	const n = 4
	var out []time.Duration
	for i := range n {
		out = append(out, time.Duration(i)*2*takeInterval/n)
	}
	return out
}

// TestLaggingOwnerIndex crashes w1 (which took a lease just before, see
// lagCrash) at instants spread over a balancing period, once without an
// index (the scan path) and once per lag with the lagging index, and checks
// what must hold whatever the lag: every lease of w1 held again no later
// than the scan path's worst case plus one stretched scan interval (a lease
// the index misses waits for the next scan), each taken once (one Take per
// lease: none wasted on a lease the index lists under w1 that a live worker
// holds, and none taken twice), no live worker losing a lease.
//
//   - less than FailoverTime (4s): the index lists leases under w1 after
//     the first targeted takers moved them (stale); each listed lease's Get
//     shows its live owner, which keeps it.
//   - FailoverTime and a half: it also misses the lease w1 took just before
//     dying: the targeted reads take the rest, a scan that one.
//   - six FailoverTimes, longer than the whole take-over: both, throughout.
func TestLaggingOwnerIndex(t *testing.T) {
	var scan []lagResult
	var scanMax time.Duration
	for _, at := range lagSamples() {
		s := lagCrash(t, 0, false, at)
		require.Zero(t, s.targeted)
		requireLagSafe(t, s)
		scanMax = max(scanMax, s.took)
		scan = append(scan, s)
	}
	for _, c := range []struct {
		lag           time.Duration
		missed, stale bool
	}{
		{lag: 4 * time.Second, stale: true},
		{lag: failover + failover/2, missed: true, stale: true},
		{lag: 6 * failover, missed: true, stale: true},
	} {
		t.Run(c.lag.String(), func(t *testing.T) {
			var idxMax, stretched time.Duration
			var targeted, missed, stale int
			for i, at := range lagSamples() {
				r := lagCrash(t, c.lag, true, at)
				t.Logf("lag %v, crash at +%v: scan path %v, lagging index %v (targeted %d, scanned %d, takes %d of %d leases, ListOwned answers missing %d and stale %d keys)",
					c.lag, at, scan[i].took, r.took, r.targeted, r.scanned, r.takes, r.leases, r.missed, r.stale)
				requireLagSafe(t, r)
				idxMax = max(idxMax, r.took)
				targeted, missed, stale = targeted+r.targeted, missed+r.missed, stale+r.stale
				stretched = r.stretchedScanInterval
			}
			bound := scanMax + stretched
			t.Logf("lag %v: failover max scan path %v, lagging index %v (bound %v)", c.lag, scanMax, idxMax, bound)
			require.LessOrEqual(t, idxMax, bound)
			require.Positive(t, targeted, "the targeted path ran")
			if c.missed {
				require.Positive(t, missed, "the index missed a lease")
			}
			if c.stale {
				require.Positive(t, stale, "the index listed moved leases")
			}
		})
	}
}

func requireLagSafe(t *testing.T, r lagResult) {
	t.Helper()
	require.Zero(t, r.lostLive, "a live worker lost a lease")
	require.Equal(t, r.leases, r.takes, "one Take per lease of the crashed worker")
	require.Equal(t, r.leases, r.targeted+r.scanned)
}
