package lease

import (
	"context"
	"sync"
	"sync/atomic"
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

// Workers started together on a new table split the leases without a
// single steal: each takes one lease, and InitialTakeDelay later, seeing
// the others, its share.
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
				f := newStartupFleet(t, 12)
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
				// w3's wait ends last.
				f.advance(f.workers["w3"].c.Config().InitialTakeDelay)
				f.settle()
				require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
				f.advance(2 * takeInterval)
				require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
				stolen, lost := stolenAndLost(f)
				require.Zero(t, stolen, "no lease stolen at start-up")
				require.Zero(t, lost, "no lease lost at start-up")
				f.requireConsistent()
				f.stopAll()
			}
		})
	}
}

// A lone worker starts one shard at once and the rest InitialTakeDelay
// later, well within one take interval.
func TestStartupLoneWorkerTakesAllAfterDelay(t *testing.T) {
	f := newStartupFleet(t, 8)
	w := f.start("w1")
	require.Len(t, w.c.Held(), 1)
	require.Less(t, w.c.Config().InitialTakeDelay, takeInterval)
	require.Equal(t, w.c.Config().RenewInterval, w.c.Config().InitialTakeDelay, "default")
	f.advance(w.c.Config().InitialTakeDelay)
	require.Len(t, w.c.Held(), 8)
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
	require.Equal(t, map[string]int{"w1": 4, "w3": 4}, f.owners(), "the dead worker's leases were taken and the fleet split them")
	// w1 and w3 see the dead worker's leases expire at the same instant.
	// Usually w3 takes them; when w1's scan runs first it takes them (w3,
	// holding nothing, is invisible in the table) and w3 then asks for its
	// share. Either way nothing is taken from the live worker: any lease
	// w1 gave up was handed over gracefully, after its checkpoint.
	for _, ev := range w1.eventsOf(Lost)[lostBefore:] {
		require.ErrorIs(t, ev.Err, ErrHandedOff, "lease %s stolen from the live worker", ev.Lease.Key)
	}
}

// startTrio starts w1, w2, w3 on f's table, stagger apart, and lets
// every start-up wait end.
func startTrio(f *fleet, stagger time.Duration) {
	for i, id := range []string{"w1", "w2", "w3"} {
		if i > 0 {
			f.advance(stagger)
		}
		f.start(id)
	}
	f.clk.BlockUntil(f.idleTimers())
	f.settle()
	f.advance(f.workers["w3"].c.Config().InitialTakeDelay)
	f.settle()
}

// Regression: a lone-worker skip of the start-up wait (a worker whose first
// pass sees no other owner takes everything) made every worker of a fleet
// started together on a new table believe it was alone; leases then moved
// 11 times. The wait applies in every case, so they move none: one lease
// each, then the share.
func TestStartupOnNewTableSplitsWithoutMoves(t *testing.T) {
	// Workers one second apart (each first pass done before the next
	// starts), so the outcome does not depend on goroutine scheduling.
	f := newStartupFleet(t, 12)
	startTrio(f, time.Second)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners(),
		"split once every start-up wait is over")
	f.advance(2 * takeInterval)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	moved, _ := stolenAndLost(f)
	require.Zero(t, moved, "no lease stolen or handed over at start-up")
	f.stopAll()
}

// With graceful handoff disabled, a lease moved at start-up is a steal
// (its in-flight batch processed twice): the start-up wait prevents them.
func TestStartupWithoutHandoffStealsNothing(t *testing.T) {
	f := newStartupFleet(t, 12)
	f.cfg.HandoffTimeout = -1
	startTrio(f, time.Second)
	f.advance(3 * takeInterval)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	stolen, _ := stolenAndLost(f)
	require.Zero(t, stolen, "leases stolen at start-up: their in-flight batches are processed twice")
	f.stopAll()
}

// "Stealing only from a worker at least two ahead strictly lowers the
// spread, so thieves never overshoot their victims and leases do not
// bounce back": at start-up too (a skipped start-up wait made one bounce).
func TestStartupLeaseDoesNotBounce(t *testing.T) {
	f := newStartupFleet(t, 12)
	startTrio(f, time.Second)
	f.advance(3 * takeInterval)
	f.settle()
	// Each lease is acquired by its first holder and at most once more
	// (by the worker it is balanced to).
	acquired := map[string]int{}
	for _, w := range f.workers {
		for _, ev := range w.eventsOf(Acquired) {
			acquired[ev.Lease.Key]++
		}
	}
	for key, n := range acquired {
		require.LessOrEqual(t, n, 2, "lease %s acquired %d times: moved twice, the first move overshot", key, n)
	}
	f.stopAll()
}

// scanBarrierStore holds the first n List calls until all n arrived (so
// the workers' first scans all see the table before anyone took a lease)
// and counts Take calls.
type scanBarrierStore struct {
	*MemoryStore
	n     int
	mu    sync.Mutex
	lists int
	all   chan struct{}
	takes atomic.Int64
}

func (s *scanBarrierStore) List(ctx context.Context) ([]Lease, error) {
	s.mu.Lock()
	s.lists++
	if s.lists == s.n {
		close(s.all)
	}
	wait := s.lists <= s.n
	s.mu.Unlock()
	if wait {
		// Read now, hand the result over once every worker has read.
		ls, err := s.MemoryStore.List(ctx)
		<-s.all
		return ls, err
	}
	return s.MemoryStore.List(ctx)
}

func (s *scanBarrierStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	s.takes.Add(1)
	return s.MemoryStore.Take(ctx, l, owner)
}

// Workers whose first scans all see a new table before anyone took a
// lease each take one lease and wait, not every lease: with the start-up
// wait skipped (a lone-worker guess) 3 workers and 12 leases issued 36
// conditional Take writes, 24 bound to fail (W×L, each failure followed
// by a consistent re-read in DynamoStore).
func TestFleetColdStartNoTakeStorm(t *testing.T) {
	const workers, leases = 3, 12
	store := &scanBarrierStore{MemoryStore: NewMemoryStore(), n: workers, all: make(chan struct{})}
	f := newFleet(t, store, leases)
	f.cfg.InitialTakeDelay = 0 // the default start-up wait
	f.startAll("w1", "w2", "w3")
	// One successful take each, plus a retry per conflict (at most
	// workers*workers). A take per lease per worker is a storm.
	require.LessOrEqual(t, store.takes.Load(), int64(leases),
		"take writes in the fleet's first passes")
	f.stopAll()
}

func TestInitialTakeDelayValidation(t *testing.T) {
	_, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w", TakeInterval: time.Second, InitialTakeDelay: 2 * time.Second})
	require.ErrorContains(t, err, "InitialTakeDelay")
	c, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w", InitialTakeDelay: -1})
	require.NoError(t, err)
	require.Negative(t, c.Config().InitialTakeDelay)
}
