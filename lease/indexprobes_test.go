package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A leave that moves leases by handoff makes the handing-over workers'
// probes move: a probe that finds such a suspect alive (another of its
// leases renewed since the scan) scans as the scan path does, rather than
// reading a live worker's leases through the index and missing the
// leases of a worker that crashed meanwhile. Here (leave 4 s into the
// balanced fleet, crash 7 s later) the targeted reads of the live
// suspect took the crash over 7.6 s later than scans did.
func TestLiveSuspectScansAsScanPath(t *testing.T) {
	const offset, gap = 4 * time.Second, 7 * time.Second
	scan := leaveThenCrash(t, false, offset, gap)
	indexed := leaveThenCrash(t, true, offset, gap)
	t.Logf("taken over after %v by scans, %v with the owner index", scan, indexed)
	require.LessOrEqual(t, indexed, scan, "failover with the owner index slower than by scans")
}
