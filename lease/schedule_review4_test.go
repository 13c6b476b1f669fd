package lease

import (
	"context"
	"fmt"
	"slices"
	"time"

	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview4SmallTableAtFiveWorkersIsScanFixed: Config.ScanScaling says
// ScanSublinear stretches the intervals "with probes" only where that
// costs fewer read units, and that on a small table (30 leases of about
// 160 B) the probes cost more than the scans they save, so it behaves
// exactly as ScanFixed there. With KCL's timings at 4 and 5 workers the
// stretched expiry interval (11.6s, 12.9s) leaves no room for a probe
// (probeDelay + RenewInterval = 13.3s), so readRate prices the stretched
// schedule without probes: 1/√(W/3) of ScanFixed's, always more than 10 %
// cheaper, whatever the table. So every table at 4-5 workers, the
// smallest included, is stretched without any probe, and crash failover
// is slower than ScanFixed's with nothing to bring it back.
func TestReview4SmallTableAtFiveWorkersIsScanFixed(t *testing.T) {
	all := sortedLeases(t, midStreamStore(t, 30, 0))
	for _, workers := range []int{4, 5} {
		c, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w"})
		require.NoError(t, err)
		assert.False(t, c.stretch(&scanSnapshot{leases: all}, workers), "%d workers, 30 small leases: stretched (without probes)", workers)
	}
	const samples = 5
	fixed := measureFailoverScaling(t, 5, 30, 0, samples, false, ScanFixed)
	sub := measureFailoverScaling(t, 5, 30, 0, samples, false, ScanSublinear)
	fm, fx := meanMax(fixed)
	sm, sx := meanMax(sub)
	t.Logf("5 workers x 30 leases: failover ScanFixed %v, %v; ScanSublinear %v, %v", fm, fx, sm, sx)
	require.Equal(t, fixed, sub, "a small table's failover is ScanFixed's")
}

// TestReview4TunedExpiryScanIsNotStretchedWithoutProbes: a user who sets
// ExpiryScanInterval to 5s (for a faster failover than KCL's) gets, at 10
// workers, a stretched interval of 9.1s: shorter than probeDelay +
// RenewInterval, so no probe ever fits, and readRate prices the stretched
// schedule at 1/√(10/3) of ScanFixed's whatever the table: ScanSublinear
// stretches every table, the smallest included, with no probe, and the
// failover the user tuned for is lost, against Config.ScanScaling's "on a
// small table the probes cost more than the scans they save ... it
// behaves exactly as ScanFixed".
func TestReview4TunedExpiryScanIsNotStretchedWithoutProbes(t *testing.T) {
	all := sortedLeases(t, midStreamStore(t, 30, 0))
	c, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w", ExpiryScanInterval: 5 * time.Second})
	require.NoError(t, err)
	assert.False(t, c.stretch(&scanSnapshot{leases: all}, 10), "10 workers, 30 small leases, ExpiryScanInterval 5s: stretched (without probes)")

	measure := func(scaling ScanScaling) []time.Duration {
		var out []time.Duration
		for i := range 5 {
			f := newFleet(t, midStreamStore(t, 30, 0), 0)
			f.cfg.ScanScaling, f.cfg.ExpiryScanInterval = scaling, 5*time.Second
			for w := range 10 {
				f.start(fmt.Sprintf("w%d", w))
				f.advance(time.Second)
			}
			f.advance(4*takeInterval + handoffTime)
			require.Len(t, f.owners(), 10)
			f.advance(time.Duration(i) * 2 * time.Second)
			f.stop("w1")
			crash := f.clk.Now()
			for {
				all, err := f.store.List(context.Background())
				require.NoError(t, err)
				if !slices.ContainsFunc(all, func(l Lease) bool { _, live := f.workers[l.Owner]; return !l.Finished() && !live }) {
					break
				}
				f.advance(f.clk.Deadlines()[0].Sub(f.clk.Now()))
				require.Less(t, f.clk.Now().Sub(crash), 10*failover)
			}
			out = append(out, f.clk.Now().Sub(crash))
			f.stopAll()
		}
		return out
	}
	fixed, sub := measure(ScanFixed), measure(ScanSublinear)
	fm, fx := meanMax(fixed)
	sm, sx := meanMax(sub)
	t.Logf("10 workers x 30 leases, ExpiryScanInterval 5s: failover ScanFixed %v, %v; ScanSublinear %v, %v", fm, fx, sm, sx)
	require.Equal(t, fixed, sub, "a small table's failover is ScanFixed's")
}
