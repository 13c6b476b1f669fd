package lease

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scheduleRow is one fleet of TestScanScheduleReadUnits: n workers on
// leases lease items checkpointed mid-stream with state bytes of pending
// checkpoint state each (0: about 200 bytes an item, 1024: about 1.3 KB).
type scheduleRow struct{ n, leases, state int }

func (r scheduleRow) String() string {
	return fmt.Sprintf("%2d workers x %3d leases (state %4d B)", r.n, r.leases, r.state)
}

// large is whether ScanSublinear is to stretch the intervals on r: a scan
// of its table costs more read units than the probes add (see
// Coordinator.stretch); small tables do not, nor fleets of up to 5
// workers, whose stretched intervals (KCL's timings) leave no room for a
// probe after a scan (probeFits).
func (r scheduleRow) large() bool { return r.n > 5 && r.state > 0 }

// TestScanScheduleReadUnits measures, in one run on the fake clock (KCL's
// timings, steady state, the coordinators' reads), each fleet's lease
// table reads per lease per minute, in items and in DynamoDB read units,
// and its crash failover, with ScanFixed and with the default
// ScanSublinear, and asserts what ScanSublinear's pricing promises: it
// never costs more read units than ScanFixed (5 % slack for rounding), it
// costs fewer where the stretched schedule pays (large tables at 10
// workers), and where it does not pay it is ScanFixed call for call, with
// ScanFixed's failover. The figures are logged for the docs.
func TestScanScheduleReadUnits(t *testing.T) {
	const period, periods = 90 * time.Second, 4
	samples := 5
	rows := []scheduleRow{{3, 30, 0}, {10, 30, 0}, {3, 100, 1024}, {10, 100, 1024}, {10, 300, 1024}, {4, 100, 1024}, {5, 100, 1024}, {6, 100, 1024}}
	switch {
	case raceEnabled:
		// The race detector makes this several times slower: the two
		// kinds of row at 10 workers only (at 3 both schedules are one),
		// one crash each. (Both schedules run under -race in
		// TestTableCostAndFailoverByFleetSize and the owner index tests.)
		rows, samples = []scheduleRow{rows[1], rows[3]}, 1
	case testing.Short():
		rows = rows[:4] // 300 leases x 10 workers is half the run
	}
	got := map[scheduleRow]cost{}
	for _, r := range rows {
		size := itemSize(sortedLeases(t, midStreamStore(t, 1, r.state))[0])
		var c [2]cost
		var fo [2][]time.Duration
		for i, scaling := range []ScanScaling{ScanFixed, ScanSublinear} {
			c[i] = measureChurn(t, r.n, r.leases, r.state, false, steady, period, periods, scaling)
			fo[i] = measureFailoverScaling(t, r.n, r.leases, r.state, samples, false, scaling)
		}
		fixed, sub := c[0], c[1]
		got[r] = sub
		fm, fx := meanMax(fo[0])
		sm, sx := meanMax(fo[1])
		t.Logf("%v: ScanFixed %5.1f items %5.2f RCU, failover %v, %v | ScanSublinear %5.1f items %5.2f RCU, failover %v, %v (per lease per minute; items of %d B)",
			r, fixed.reads, fixed.rcu, fm, fx, sub.reads, sub.rcu, sm, sx, size)
		require.LessOrEqual(t, sub.rcu, fixed.rcu*1.05, "%v: read units", r)
		if r.large() {
			require.Less(t, sub.rcu, fixed.rcu, "%v: the stretched schedule pays", r)
			require.Less(t, sub.scans, fixed.scans, "%v: fewer scans", r)
			require.Greater(t, sub.reads, sub.scans, "%v: probes read (a scan is one item read per lease)", r)
			// Today's stretched schedule's bound: within two of its
			// scan intervals.
			p := time.Duration(float64(failover+25*time.Millisecond) * ScanSublinear.scanScale(r.n))
			require.LessOrEqual(t, sx, 2*p+time.Second, "%v: failover", r)
			continue
		}
		require.Equal(t, fixed, sub, "%v: ScanFixed's schedule, call for call", r)
		require.Equal(t, fo[0], fo[1], "%v: ScanFixed's failover", r)
	}
	// Where it stretches, reads per lease grow with the fleet slower than
	// ScanFixed's (3.3x from 3 to 10 workers).
	three, ok := got[scheduleRow{3, 100, 1024}]
	if !ok {
		return
	}
	ten := got[scheduleRow{10, 100, 1024}]
	require.Less(t, ten.reads/three.reads, 2.5, "item reads")
	require.Less(t, ten.rcu/three.rcu, 2.5, "read units")
}

// TestScanSublinearChoiceHysteresis prices tables of growing then
// shrinking size at 10 workers: the stretched schedule is chosen once it
// costs at least 10 % less than ScanFixed's and left once ScanFixed's
// costs 10 % less, so one lease more or less at either threshold (a
// lease created or a checkpoint growing) does not flip it back.
func TestScanSublinearChoiceHysteresis(t *testing.T) {
	c, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w"})
	require.NoError(t, err)
	all := sortedLeases(t, midStreamStore(t, 120, 1024))
	const workers = 10
	decide := func(n int) bool {
		c.stretched = c.stretch(&scanSnapshot{leases: all[:n]}, workers)
		return c.stretched
	}
	ratio := func(n int) float64 {
		scan, get := tableReadUnits((&scanSnapshot{leases: all[:n]}).itemSizes())
		return c.readRate(ScanSublinear.scanScale(workers), workers-1, scan, get) / c.readRate(1, 0, scan, get)
	}
	var up, down int
	for n := 1; n <= len(all); n++ {
		if decide(n) && up == 0 {
			up = n
		}
	}
	require.NotZero(t, up, "a table of 120 leases of 1.3 KB pays stretched")
	require.True(t, c.stretched)
	for n := len(all); n >= 1; n-- {
		if !decide(n) && down == 0 {
			down = n
		}
	}
	require.NotZero(t, down, "a table of one lease does not pay stretched")
	t.Logf("stretched from %d leases (ratio %.2f), back to ScanFixed at %d (ratio %.2f)", up, ratio(up), down, ratio(down))
	require.Less(t, ratio(up), 0.9, "stretched is 10 percent cheaper")
	require.GreaterOrEqual(t, ratio(up-1), 0.9)
	require.LessOrEqual(t, 1/ratio(down), 0.9, "ScanFixed's is 10 percent cheaper")
	require.Greater(t, 1/ratio(down+1), 0.9)
	require.Less(t, down, up-1, "a band between the thresholds")
	// Within the band, both choices stand.
	for n := down + 1; n < up; n++ {
		c.stretched = false
		require.False(t, decide(n), "%d leases, from ScanFixed", n)
		c.stretched = true
		require.True(t, decide(n), "%d leases, from stretched", n)
	}
	// At either threshold, one lease back and forth keeps the choice.
	decide(up)
	for range 5 {
		require.True(t, decide(up-1))
		require.True(t, decide(up))
	}
	decide(down)
	for range 5 {
		require.False(t, decide(down+1))
		require.False(t, decide(down))
	}
	// ScanFixed and up to 3 workers never stretch.
	require.False(t, c.stretch(&scanSnapshot{leases: all}, 3))
	f, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w", ScanScaling: ScanFixed})
	require.NoError(t, err)
	require.False(t, f.stretch(&scanSnapshot{leases: all}, workers))
}

// sortedLeases returns the leases of s, sorted by key.
func sortedLeases(t *testing.T, s Store) []Lease {
	all, err := s.List(context.Background())
	require.NoError(t, err)
	slices.SortFunc(all, func(a, b Lease) int { return strings.Compare(a.Key, b.Key) })
	return all
}
