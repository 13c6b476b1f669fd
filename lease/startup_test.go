package lease

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newStartupFleet is newFleet with the start-up wait at its default.
func newStartupFleet(t *testing.T, leases int) *fleet {
	f := newFleet(t, NewMemoryStore(), leases)
	f.cfg.InitialTakeDelay = 0
	return f
}

func stolenAndLost(f *fleet) (stolen, lost int) {
	for _, w := range f.workers {
		w.passes.mu.Lock()
		stolen += w.passes.stolen
		w.passes.mu.Unlock()
		lost += len(w.eventsOf(Lost))
	}
	return stolen, lost
}

// Workers started together beside a live worker split the unowned leases
// without a single steal: each takes one lease, and InitialTakeDelay later,
// seeing the others, its share.
func TestStartupSplitWithoutStealing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stagger time.Duration
	}{
		{"SameInstant", 0},
		{"OneSecondApart", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 10 {
				f := newStartupFleet(t, 15)
				holdForOther(t, f, "w0", 3) // w0 never renews: it expires after FailoverTime
				for i, id := range []string{"w1", "w2", "w3"} {
					if tc.stagger == 0 {
						f.launch(id) // all in the same instant, racing
						continue
					}
					if i > 0 {
						f.advance(tc.stagger)
					}
					f.start(id) // its first pass done before the clock moves
				}
				f.clk.BlockUntil(f.idleTimers())
				f.settle()
				require.Equal(t, 3, len(f.workers))
				require.Equal(t, map[string]int{"": 9, "w0": 3, "w1": 1, "w2": 1, "w3": 1}, f.owners(), "one lease each while waiting")
				// w3's wait ends last.
				f.advance(f.workers["w3"].c.Config().InitialTakeDelay)
				f.settle()
				require.Equal(t, map[string]int{"w0": 3, "w1": 4, "w2": 4, "w3": 4}, f.owners())
				// w0's leases expire and are taken, not stolen.
				f.advance(2 * takeInterval)
				require.Equal(t, map[string]int{"w1": 5, "w2": 5, "w3": 5}, f.owners())
				stolen, lost := stolenAndLost(f)
				require.Zero(t, stolen, "no lease stolen at start-up")
				require.Zero(t, lost, "no lease lost at start-up")
				f.requireConsistent()
				f.stopAll()
			}
		})
	}
}

// holdForOther makes n of the table's leases owned by id, a worker that is
// not part of the fleet.
func holdForOther(t *testing.T, f *fleet, id string, n int) {
	t.Helper()
	all, err := f.store.List(context.Background())
	require.NoError(t, err)
	for _, l := range all[:n] {
		_, err := f.store.Take(context.Background(), l, id)
		require.NoError(t, err)
	}
}

// A lone worker (no other worker holds a lease) does not wait
// InitialTakeDelay: it starts every shard in its first pass.
func TestStartupLoneWorkerTakesAllAtOnce(t *testing.T) {
	f := newStartupFleet(t, 8)
	w := f.start("w1")
	require.Positive(t, w.c.Config().InitialTakeDelay)
	require.Len(t, w.c.Held(), 8)
}

// A worker started beside a live worker that holds a lease waits
// InitialTakeDelay before taking more than one unowned lease.
func TestStartupBesideLiveWorkerWaits(t *testing.T) {
	f := newStartupFleet(t, 8)
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 8)
	require.NoError(t, w1.c.Release(context.Background(), w1.c.Held()[0].Key))
	require.NoError(t, w1.c.Release(context.Background(), w1.c.Held()[0].Key))
	w2 := f.start("w2")
	require.Len(t, w2.c.Held(), 1, "one lease, then the start-up wait")
	require.Less(t, w2.c.Config().InitialTakeDelay, takeInterval)
	f.advance(w2.c.Config().InitialTakeDelay)
	require.Len(t, w2.c.Held(), 2, "the released leases, without stealing")
	require.Len(t, w1.c.Held(), 6)
}

// A worker joining a fleet that holds every lease steals nothing until it
// has watched the table for longer than a failover time (before that it
// cannot tell live workers from dead ones whose leases are about to
// expire), then steals its share at its next balancing pass.
func TestStartupJoinRunningFleetStealsOnlyAfterWatchingFailoverTime(t *testing.T) {
	f := newStartupFleet(t, 8)
	w1 := f.start("w1")
	f.advance(w1.c.Config().InitialTakeDelay)
	require.Len(t, w1.c.Held(), 8)
	f.advance(3 * time.Second)
	w2 := f.start("w2")
	require.Empty(t, w2.c.Held(), "no steal in the first pass")
	f.advance(w2.c.Config().FailoverTime)
	require.Empty(t, w2.c.Held(), "no steal within a failover time of starting")
	require.Empty(t, w1.eventsOf(Lost))
	f.advance(w2.c.Config().TakeInterval)
	require.Len(t, w2.c.Held(), 4, "its share, at the first balancing pass after that")
}

// A worker joining while another has crashed takes the crashed worker's
// leases once they expire, and steals nothing from the live one.
func TestStartupJoinAfterCrashTakesExpiredLeasesNotLiveOnes(t *testing.T) {
	f := newStartupFleet(t, 8)
	w1 := f.start("w1")
	f.advance(w1.c.Config().InitialTakeDelay)
	f.advance(time.Second)
	w2 := f.start("w2")
	// One lease at its first balancing pass, the rest one RenewInterval
	// later (see stealLimit).
	f.advance(w2.c.Config().TakeInterval + w2.c.Config().RenewInterval)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4}, f.owners())
	f.advance(w1.c.Config().RenewInterval)
	lostBefore := len(w1.eventsOf(Lost))

	f.stop("w2") // kill -9
	w3 := f.start("w3")
	require.Empty(t, w3.c.Held(), "the dead worker's leases have not expired yet; the live worker's are not stolen")
	f.advance(3 * w3.c.Config().TakeInterval)
	require.Equal(t, map[string]int{"w1": 4, "w3": 4}, f.owners(), "the dead worker's leases moved to w3")
	require.Len(t, w1.eventsOf(Lost), lostBefore, "nothing taken from the live worker")
}

func TestInitialTakeDelayValidation(t *testing.T) {
	_, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w", TakeInterval: time.Second, InitialTakeDelay: 2 * time.Second})
	require.ErrorContains(t, err, "InitialTakeDelay")
	c, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w", InitialTakeDelay: -1})
	require.NoError(t, err)
	require.Negative(t, c.Config().InitialTakeDelay)
}
