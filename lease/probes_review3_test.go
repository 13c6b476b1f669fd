package lease

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// leaveThenCrash runs 10 workers on 100 leases of about 1.3 KB (where the
// coordinator reads a suspect's leases through the owner index rather than
// scanning, with index set), lets w1 leave gracefully (ReleaseAll) after
// offset, crashes w2 gap later, and returns how long after the crash
// every lease is held by a live worker again.
func leaveThenCrash(t *testing.T, index bool, offset, gap time.Duration) time.Duration {
	cs := newCostStore(midStreamStore(t, 100, 1024), index)
	f := balancedFleet(t, cs.asStore(), 100, 10, ScanSublinear)
	f.advance(offset)
	require.NoError(t, f.workers["w1"].c.ReleaseAll(context.Background()))
	f.stop("w1")
	f.advance(gap)
	f.stop("w2")
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
	d := f.clk.Now().Sub(crash)
	f.stopAll()
	return d
}

// A probe that finds a suspect and reads its leases through the owner
// index (takeSuspects) then probes only the suspects it found dead
// (c.probes is replaced); the probes of every other worker, all just read,
// are dropped. The scan it replaces (takePassWarm) re-arms a probe for
// every worker. So a worker that dies just after another left (a rolling
// deploy) or died is noticed only at each peer's next scheduled (stretched)
// scan plus FailoverTime, instead of at the next probe: here, a graceful
// leave of w1 and a crash of w2 7 s later at 10 workers, the crash is
// taken over 20.1 s after it with the index, 12.2 s without. (Over a sweep
// of offsets the index path is sometimes faster, sometimes up to ~8 s
// slower; the single-crash failover measured in TestOwnerIndexTableCost is
// identical, so it does not show.) Re-arming the other workers' probes
// from the reads alone does not close the gap: the scan also observed
// every lease of theirs at that time, which the expiry rule needs.
func TestReview3TargetedReadStopsProbingLiveWorkers(t *testing.T) {
	const gap = 7 * time.Second
	scan := leaveThenCrash(t, false, 0, gap)
	indexed := leaveThenCrash(t, true, 0, gap)
	t.Logf("crash %v after a leave: taken over after %v by scans, %v through the owner index", gap, scan, indexed)
	require.LessOrEqual(t, indexed, scan, "failover through the owner index slower than by scan")
}
