package lease

import (
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
		assert.False(t, c.stretch(all, workers), "%d workers, 30 small leases: stretched (without probes)", workers)
	}
	const samples = 5
	fixed := measureFailoverScaling(t, 5, 30, 0, samples, false, ScanFixed)
	sub := measureFailoverScaling(t, 5, 30, 0, samples, false, ScanSublinear)
	fm, fx := meanMax(fixed)
	sm, sx := meanMax(sub)
	t.Logf("5 workers x 30 leases: failover ScanFixed %v, %v; ScanSublinear %v, %v", fm, fx, sm, sx)
	require.Equal(t, fixed, sub, "a small table's failover is ScanFixed's")
}
