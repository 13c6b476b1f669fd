package lease

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// failoverWithTakeNow is measureFailoverScaling (10 workers, 100 leases of
// 1.3 KB, ScanSublinear: stretched with probes) where, after the crash,
// every survivor gets a TakeNow each every interval of fake time (0:
// never), as the consumer calls it when a shard ends (its children's
// leases are to take) or shard sync created leases.
func failoverWithTakeNow(t *testing.T, samples int, every time.Duration, once bool) []time.Duration {
	var out []time.Duration
	for i := range samples {
		f := balancedFleet(t, midStreamStore(t, 100, 1024), 100, 10, ScanSublinear)
		f.advance(time.Duration(i) * (failover + 25*time.Millisecond) * 2 / time.Duration(samples))
		f.stop("w1")
		crash := f.clk.Now()
		nextKick := crash.Add(every)
		for {
			all, err := f.store.List(context.Background())
			require.NoError(t, err)
			if !slices.ContainsFunc(all, func(l Lease) bool {
				_, live := f.workers[l.Owner]
				return !l.Finished() && !live
			}) {
				break
			}
			d := f.clk.Deadlines()[0]
			if every > 0 && !nextKick.After(d) {
				f.advance(nextKick.Sub(f.clk.Now()))
				for _, w := range f.workers {
					w.c.TakeNow()
				}
				f.clk.BlockUntil(f.idleTimers())
				f.settle()
				nextKick = nextKick.Add(every)
				if once {
					nextKick = nextKick.Add(time.Hour)
				}
				continue
			}
			f.advance(d.Sub(f.clk.Now()))
			require.Less(t, f.clk.Now().Sub(crash), 10*failover, "the crashed worker's leases never moved")
		}
		out = append(out, f.clk.Now().Sub(crash))
		f.stopAll()
	}
	return out
}

// TestReview4TakeNowDropsTheProbe: an off-schedule pass (TakeNow) scans
// and resets the probes to its own time (takePassWarm), and the take loop
// then places the probe FailoverTime after that pass only if the next
// scheduled scan is more than a RenewInterval later, which with the
// stretched intervals it mostly is not: the probe the scheduled scan had
// armed is gone, and a crash is found by the scheduled scans alone (the
// schedule the probes were added to fix). So a fleet whose workers call
// TakeNow (a shard ending, shard sync creating leases) fails over slower
// than the documented 16.8s mean, 20.3s max.
func TestReview4TakeNowDropsTheProbe(t *testing.T) {
	samples := 5
	if raceEnabled {
		samples = 2 // several times slower under -race; 2 crash instants still show it
	}
	quiet := failoverWithTakeNow(t, samples, 0, false)
	kicked := failoverWithTakeNow(t, samples, 11*time.Second, true)
	qm, qx := meanMax(quiet)
	km, kx := meanMax(kicked)
	// Measured (one TakeNow on every survivor k after the crash, k from 1s
	// to 12s): from 9s on the mean is 19.5-21.0s and the max 20.3-22.3s.
	t.Logf("10 workers x 100 leases of 1.3 KB, ScanSublinear: failover %v, %v; with one TakeNow 11s after the crash on every survivor %v, %v", qm, qx, km, kx)
	require.LessOrEqual(t, km, qm, "mean failover: a TakeNow does not drop the probe that would find the crash")
	require.LessOrEqual(t, kx, qx, "max failover")
}
