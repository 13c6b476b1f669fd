package lease

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
)

const (
	failover     = 10 * time.Second
	takeInterval = (failover + 25*time.Millisecond) * 2
	// handoffTime covers a graceful handoff: the holder sees the mark at
	// its next renewal (FailoverTime/3 - 25ms), the new owner at its next
	// poll (500ms).
	handoffTime = failover/3 + time.Second
)

func TestConfigDefaultsAreKCLs(t *testing.T) {
	c, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "w"})
	require.NoError(t, err)
	cfg := c.Config()
	require.Equal(t, 10*time.Second, cfg.FailoverTime)
	require.Equal(t, 10*time.Second/3-25*time.Millisecond, cfg.RenewInterval)
	require.Equal(t, takeInterval, cfg.TakeInterval)
	require.Equal(t, 0, cfg.MaxLeasesForWorker)

	for _, bad := range []Config{
		{},
		{WorkerID: "w", FailoverTime: -1},
		{WorkerID: "w", RenewInterval: 20 * time.Second},
		{WorkerID: "w", MaxLeasesForWorker: -1},
	} {
		_, err := NewCoordinator(NewMemoryStore(), bad)
		require.Error(t, err, "%+v", bad)
	}
}

// startBalanced starts w1..w3 one second apart (workers never start in the
// same instant in practice) on 12 leases.
func startBalanced(t *testing.T, f *fleet) {
	for i, id := range []string{"w1", "w2", "w3"} {
		if i > 0 {
			f.advance(time.Second)
		}
		f.start(id)
	}
}

func TestThreeWorkersTwelveLeasesBalanceWithinTwoTakeCycles(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 12)
	startBalanced(t, f)
	// Joining workers steal only once they have watched the table for a
	// failover time: at their first balancing pass after that.
	require.Equal(t, map[string]int{"w1": 12}, f.owners(), "nothing stolen by a worker that just started")
	// Two cycles: w3 cannot ask for the leases still being handed to w2.
	f.advance(2 * takeInterval)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	f.advance(handoffTime) // holders hand over at their next renewal, the new owners start at their next poll
	f.requireConsistent()

	// Stable: two more take cycles change nothing.
	stolen := 0
	for _, w := range f.workers {
		stolen += w.passes.stolen
	}
	f.advance(2 * takeInterval)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	after := 0
	for _, w := range f.workers {
		after += w.passes.stolen
		require.GreaterOrEqual(t, w.passes.balances, 3)
	}
	require.Equal(t, stolen, after, "no lease moves once balanced")
	f.requireConsistent()
}

func TestNewWorkerGetsItsShareWithinTwoCycles(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 12)
	startBalanced(t, f)
	f.advance(2 * takeInterval)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	f.advance(handoffTime) // holders hand over at their next renewal, the new owners start at their next poll

	lostBefore := func() int {
		n := 0
		for _, id := range []string{"w1", "w2", "w3"} {
			n += len(f.workers[id].eventsOf(Lost))
		}
		return n
	}
	f.advance(handoffTime)
	f.settle()
	// w1 gave 4 each to w2 and w3: the fewest moves (w2 and w3, idle,
	// first ask for one lease each, so each counts the other after; before
	// stealLimit w1 gave 6 to w2 and 3 to w3, and w2 1 each to w1 and w3).
	waitFor(t, func() bool { return lostBefore() == 8 })
	f.advance(3 * time.Second)
	w4 := f.start("w4") // its first cycle
	// Its first balancing pass asks for one lease (while it holds none,
	// it cannot know it is the only one joining), a pass RenewInterval
	// later for the rest (its TakeInterval is stretched a little at 4
	// workers, see ScanScaling).
	f.advance(takeInterval + 2*handoffTime)
	require.LessOrEqual(t, w4.passes.balances, 3)
	require.Equal(t, map[string]int{"w1": 3, "w2": 3, "w3": 3, "w4": 3}, f.owners())
	f.advance(takeInterval)
	f.requireConsistent()
	// The three leases w4 stole were each reported lost to their holder.
	waitFor(t, func() bool { return lostBefore() == 11 })
}

func TestDeadWorkerLeasesTakenWithinFailoverPlusOneTakeCycle(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 12)
	startBalanced(t, f)
	f.advance(2*takeInterval + 7*time.Second) // arbitrary phase
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())

	f.stop("w3") // crashes: stops renewing, releases nothing
	f.advance(failover)
	require.Equal(t, 4, f.owners()["w3"], "nobody takes a lease before it can have expired")
	f.advance(takeInterval)
	require.Equal(t, map[string]int{"w1": 6, "w2": 6}, f.owners())
	f.requireConsistent()
}

// The worst phase: w3 dies right after renewing, just after the others
// scanned, so they see its last counter as late as possible.
func TestDeadWorkerWorstPhase(t *testing.T) {
	for _, offset := range []time.Duration{0, time.Second, 5 * time.Second, 9 * time.Second, 10 * time.Second} {
		f := newFleet(t, NewMemoryStore(), 12)
		startBalanced(t, f)
		f.advance(takeInterval + offset)
		f.stop("w3")
		f.advance(failover + takeInterval)
		require.Equal(t, map[string]int{"w1": 6, "w2": 6}, f.owners(), "offset %v", offset)
		f.stopAll()
	}
}

func TestCleanShutdownHandsOverWithinOneTakeCycle(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 12)
	startBalanced(t, f)
	f.advance(2*takeInterval + handoffTime)
	w3 := f.workers["w3"]
	require.NoError(t, w3.c.ReleaseAll(context.Background()))
	require.Empty(t, w3.c.Held())
	require.Equal(t, 4, f.owners()[""])
	waitFor(t, func() bool { return len(w3.eventsOf(Lost)) == 4 }) // released while Run ran: reported
	f.stop("w3")
	f.advance(takeInterval)
	require.Equal(t, map[string]int{"w1": 6, "w2": 6}, f.owners())
	f.requireConsistent()
	for _, ev := range w3.eventsOf(Lost) {
		require.ErrorIs(t, ev.Err, ErrReleased)
	}
}

func TestReleaseAllStopsTaking(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 4)
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 4)
	// (An Acquired still queued would be cancelled by its Lost instead.)
	waitFor(t, func() bool { return len(w1.eventsOf(Acquired)) == 4 })
	require.NoError(t, w1.c.ReleaseAll(context.Background()))
	f.advance(2 * takeInterval)
	require.Empty(t, w1.c.Held(), "a draining worker takes nothing back")
	require.Equal(t, 4, f.owners()[""])
	waitFor(t, func() bool { return len(w1.eventsOf(Lost)) == 4 })
	for _, ev := range w1.eventsOf(Lost) {
		require.ErrorIs(t, ev.Err, ErrReleased)
	}
}

func TestTakenLeaseCannotCheckpoint(t *testing.T) {
	ctx := context.Background()
	f := newFleet(t, NewMemoryStore(), 2)
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 2)
	waitFor(t, func() bool { return len(w1.eventsOf(Acquired)) == 2 })
	ev := w1.eventsOf(Acquired)[0]
	key := ev.Lease.Key
	cp := checkpoint.NewCheckpointer(key, ev.Writer, ev.Lease.Checkpoint)
	cp.Delivered(checkpoint.At("100", 0))
	require.NoError(t, cp.Checkpoint(ctx))

	// Another worker takes the lease; w1's renewer has not run since.
	cur, err := f.store.Get(ctx, key)
	require.NoError(t, err)
	_, err = f.store.Take(ctx, cur, "w2")
	require.NoError(t, err)
	require.Len(t, w1.c.Held(), 2, "w1 does not know yet")

	cp.Delivered(checkpoint.At("200", 0))
	err = cp.Checkpoint(ctx)
	require.ErrorIs(t, err, checkpoint.ErrLeaseLost)
	require.ErrorIs(t, err, ErrConflict, "fenced by the conditional write")
	got, err := f.store.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, checkpoint.At("100", 0), got.Checkpoint)
	require.Equal(t, "w2", got.Owner)

	// The loss is reported at once, and the key-based writer agrees.
	waitFor(t, func() bool { return len(w1.eventsOf(Lost)) == 1 })
	require.Equal(t, key, w1.eventsOf(Lost)[0].Lease.Key)
	require.ErrorIs(t, w1.c.WriteCheckpoint(ctx, key, checkpoint.At("200", 0)), checkpoint.ErrLeaseLost)
	require.Len(t, w1.c.Held(), 1)
}

// Coordinator errors carry the package prefix, as the stores' errors do.
func TestCoordinatorErrorsHavePackagePrefix(t *testing.T) {
	ctx := context.Background()
	f := newFleet(t, NewMemoryStore(), 1)
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 1)
	key := w1.c.Held()[0].Key

	err := w1.c.Release(ctx, "no-such-lease")
	require.ErrorIs(t, err, ErrNotHeld)
	require.True(t, strings.HasPrefix(err.Error(), "lease: no-such-lease: "), err.Error())

	cur, err := f.store.Get(ctx, key)
	require.NoError(t, err)
	_, err = f.store.Take(ctx, cur, "w2")
	require.NoError(t, err)
	err = w1.c.WriteCheckpoint(ctx, key, checkpoint.At("1", 0))
	require.ErrorIs(t, err, ErrLeaseLost)
	require.True(t, strings.HasPrefix(err.Error(), "lease: "+key+": "), err.Error())
	var ce *ConflictError
	require.ErrorAs(t, err, &ce)
	require.True(t, strings.HasPrefix(ce.Error(), "lease: "+key+": "), ce.Error())
}

// A writer bound to an old acquisition stays fenced after the worker takes
// the same lease again.
func TestStaleAcquisitionWriterStaysFenced(t *testing.T) {
	ctx := context.Background()
	f := newFleet(t, NewMemoryStore(), 1)
	w1 := f.start("w1")
	waitFor(t, func() bool { return len(w1.eventsOf(Acquired)) == 1 })
	old := w1.eventsOf(Acquired)[0].Writer
	require.NoError(t, w1.c.Release(ctx, "shardId-000000000000"))
	f.advance(takeInterval) // Release alone does not stop taking: w1 takes it again
	require.Len(t, w1.c.Held(), 1)
	waitFor(t, func() bool { return len(w1.eventsOf(Acquired)) == 2 })
	fresh := w1.eventsOf(Acquired)[1].Writer
	key := "shardId-000000000000"
	require.ErrorIs(t, old.WriteCheckpoint(ctx, key, checkpoint.At("1", 0)), checkpoint.ErrLeaseLost)
	require.NoError(t, fresh.WriteCheckpoint(ctx, key, checkpoint.At("1", 0)))
	require.NoError(t, w1.c.WriteCheckpoint(ctx, key, checkpoint.At("2", 0)))
}

type flakyRenewStore struct {
	Store
	fail atomic.Bool
}

func (s *flakyRenewStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	if s.fail.Load() {
		return Lease{}, errors.New("network down")
	}
	return s.Store.Renew(ctx, l)
}

func TestLeaseDroppedWhenNotRenewedWithinFailover(t *testing.T) {
	store := &flakyRenewStore{Store: NewMemoryStore()}
	f := newFleet(t, store, 3)
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 3)
	store.fail.Store(true)
	f.advance(failover - time.Second)
	require.Len(t, w1.c.Held(), 3, "transient errors keep the lease until failover")
	f.advance(time.Second)
	require.Empty(t, w1.c.Held(), "dropped exactly at failover time")
	waitFor(t, func() bool { return len(w1.eventsOf(Lost)) == 3 })
	for _, ev := range w1.eventsOf(Lost) {
		require.ErrorIs(t, ev.Err, ErrExpiredLocally)
	}
}

func TestFinishedLeasesAreNotTaken(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	for _, k := range []string{"a", "b"} {
		_, err := store.Create(ctx, Lease{Key: k, Checkpoint: checkpoint.ShardEnd})
		require.NoError(t, err)
	}
	f := newFleet(t, store, 4)
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 4)
	w2 := f.start("w2")
	// One lease at its first balancing pass, the other one RenewInterval
	// later (an idle worker asks for one first, see stealLimit), each
	// handed over within handoffTime.
	f.advance(takeInterval + 2*handoffTime)
	require.Len(t, w2.c.Held(), 2, "SHARD_END leases are not counted for balance")
	for _, k := range []string{"a", "b"} {
		l, err := store.Get(ctx, k)
		require.NoError(t, err)
		require.Equal(t, "", l.Owner)
	}
}

func TestMaxLeasesForWorker(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 10)
	f.cfg.MaxLeasesForWorker = 3
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 3)
	f.advance(takeInterval)
	require.Equal(t, 7, f.owners()[""])
}

func TestRestartedWorkerTakesBackItsOwnLeases(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 5)
	f.start("w1")
	f.stop("w1")
	w1 := f.start("w1") // same id, new process
	require.Len(t, w1.c.Held(), 5, "leases owned by its own id are taken back without waiting for expiry")
}

func TestRunTwice(t *testing.T) {
	f := newFleet(t, NewMemoryStore(), 1)
	w := f.start("w1")
	require.ErrorIs(t, w.c.Run(context.Background()), ErrAlreadyRunning)
}

// Workers started in the same instant race for the same leases and see
// each other late; balance still comes within a few take cycles.
func TestSimultaneousStartConverges(t *testing.T) {
	worst := 0
	for range 20 {
		f := newFleet(t, NewMemoryStore(), 12)
		f.startAll("w1", "w2", "w3")
		cycles := 0
		for ; cycles < 6; cycles++ {
			o := f.owners()
			if o["w1"] == 4 && o["w2"] == 4 && o["w3"] == 4 {
				break
			}
			f.advance(takeInterval)
		}
		worst = max(worst, cycles)
		f.stopAll()
	}
	t.Logf("worst case: balanced after %d take cycles", worst)
	require.LessOrEqual(t, worst, 4)
}

func TestPlanTakesLongExpiredFirst(t *testing.T) {
	clk := clockAt(t)
	c, err := NewCoordinator(NewMemoryStore(), Config{WorkerID: "me", Clock: clk})
	require.NoError(t, err)
	t0 := clk.Now()
	all := []Lease{
		{Key: "fresh-expired", Owner: "dead", Counter: 5, Checkpoint: checkpoint.TrimHorizon},
		{Key: "unowned", Counter: 1, Checkpoint: checkpoint.TrimHorizon},
		{Key: "long-expired", Owner: "dead", Counter: 9, Checkpoint: checkpoint.TrimHorizon},
		{Key: "live", Owner: "other", Counter: 3, Checkpoint: checkpoint.TrimHorizon},
		{Key: "done", Owner: "other", Counter: 3, Checkpoint: checkpoint.ShardEnd},
	}
	c.seen = map[string]observation{
		"fresh-expired": {counter: 5, owner: "dead", since: t0.Add(-15 * time.Second)},
		"unowned":       {counter: 1, since: t0},
		"long-expired":  {counter: 9, owner: "dead", since: t0.Add(-31 * time.Second)},
		"live":          {counter: 3, owner: "other", since: t0.Add(-time.Second)},
		"done":          {counter: 3, owner: "other", since: t0.Add(-time.Hour)},
	}
	p := c.plan(all, t0, nil)
	require.Equal(t, []string{"long-expired", "unowned", "fresh-expired"}, keys(p.available))
	require.Equal(t, 4, p.leases, "finished leases do not count")
	require.Equal(t, 2, p.workers, "dead owners are not workers")
	require.Equal(t, 2, p.target)
}

func clockAt(t *testing.T) *clock.Fake {
	t.Helper()
	return clock.NewFake(time.Time{})
}

// plan is planAt on a view read entirely at now.
func (c *Coordinator) plan(all []Lease, now time.Time, parentsUnknown map[string]bool) takePlan {
	return c.planAt(all, now, nil, parentsUnknown)
}
