// REVIEW: fails because a worker whose first pass sees no other owner now
// skips InitialTakeDelay (lease/coordinator.go:978, `warm && len(plan.counts)
// == 0`), and on a new table (or one every worker released) that is every
// worker of a fleet started together: the first takes all leases, the others
// hold none and so stay invisible to each other, compute their target
// against the first worker alone and overshoot it; leases then move 11
// times where the old start-up moved none, one bounces back to the worker
// it left, and with HandoffTimeout < 0 every move is a steal (the victim's
// batch in flight is processed twice). At 66056a1 the same fleet split 4/4/4
// without a single move (the original TestStartupSplitWithoutStealing).

package lease

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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

// The start-up the old TestStartupSplitWithoutStealing guaranteed on a
// new table: one lease each, then the share, without moving a lease.
func TestReview3StartupOnNewTableSplitsWithoutMoves(t *testing.T) {
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

// With graceful handoff disabled, the moves the skipped wait causes are
// steals: records redelivered at start-up, which the start-up wait exists
// to prevent (the doc now promises "graceful handoff" instead).
func TestReview3StartupWithoutHandoffStealsNothing(t *testing.T) {
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
// bounce back": at start-up with the wait skipped, a lease does.
func TestReview3StartupLeaseDoesNotBounce(t *testing.T) {
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
