package lease

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
)

// runCoordinator runs a coordinator on a fake clock that the test never
// advances, so every take after the first pass comes from TakeNow.
func runCoordinator(t *testing.T, store Store, id string) (*Coordinator, chan TakeStats) {
	t.Helper()
	passes := takePassSignal{c: make(chan TakeStats, 64)}
	c, err := NewCoordinator(store, Config{
		WorkerID: id,
		Clock:    clock.NewFake(time.Unix(1_000_000, 0)),
		Logger:   slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)),
		Metrics:  passes,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return c, passes.c
}

func nextPass(t *testing.T, passes <-chan TakeStats) TakeStats {
	t.Helper()
	return <-passes // a pass that never comes is reported by -timeout
}

func acquiredKeys(t *testing.T, c *Coordinator, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		if ev := <-c.Events(); ev.Type == Acquired {
			got = append(got, ev.Lease.Key)
		}
	}
	return got
}

// Leases created between take passes (the children of a finished shard) are
// taken on TakeNow at once, not a TakeInterval later, and only up to this
// worker's fair share.
func TestTakeNowTakesNewLeasesUpToTarget(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	seed(t, store, "a")
	// Another live worker holds two leases.
	for _, k := range []string{"o1", "o2"} {
		seed(t, store, k)
		l, err := store.Get(ctx, k)
		require.NoError(t, err)
		_, err = store.Take(ctx, l, "other")
		require.NoError(t, err)
	}
	c, passes := runCoordinator(t, store, "w1")
	require.Equal(t, 1, nextPass(t, passes).Taken, "first pass")
	require.Equal(t, []string{"a"}, acquiredKeys(t, c, 1))

	// Three new leases: 6 in all, 2 workers, target 3: w1 takes two.
	seed(t, store, "c1", "c2", "c3")
	c.TakeNow()
	st := nextPass(t, passes)
	require.False(t, st.Balance, "TakeNow never steals")
	require.Equal(t, 3, st.Target)
	require.Equal(t, 2, st.Taken)
	require.Len(t, acquiredKeys(t, c, 2), 2)
	require.Len(t, c.Held(), 3)

	// Nothing more to take: a nudge is harmless.
	c.TakeNow()
	require.Equal(t, 0, nextPass(t, passes).Taken)
	require.Len(t, c.Held(), 3)
}

// Requests made while a pass runs coalesce into one more pass.
func TestTakeNowCoalesces(t *testing.T) {
	store := NewMemoryStore()
	seed(t, store, "a")
	c, _ := manual(t, store, Config{})
	for range 5 {
		c.TakeNow()
	}
	require.Len(t, c.takeNow, 1)
}

// A lease whose leaseOwner was written as "" by another tool is unowned:
// taken in the first pass, like an absent owner.
func TestLeaseWithEmptyOwnerIsTaken(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	_, err := store.Create(ctx, Lease{Key: "k", Owner: "", Counter: 7, Checkpoint: checkpoint.TrimHorizon})
	require.NoError(t, err)
	c, _ := manual(t, store, Config{})
	c.takePass(ctx, false)
	require.Len(t, c.Held(), 1)
	got, err := store.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "w1", got.Owner)
	require.Equal(t, int64(8), got.Counter)
}

// A stolen lease is the normal hand-over of balancing: logged at Info, not
// Warn; a fenced checkpoint stays a Warn.
func TestLeaseTakenByAnotherWorkerLogsAtInfo(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	seed(t, store, "k", "f")
	var logs bytes.Buffer
	clk := clock.NewFake(time.Unix(1_000_000, 0))
	c, err := NewCoordinator(store, Config{WorkerID: "w1", Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	c.takePass(ctx, false)
	require.Len(t, c.Held(), 2)
	for _, k := range []string{"k", "f"} {
		l, err := store.Get(ctx, k)
		require.NoError(t, err)
		_, err = store.Take(ctx, l, "thief")
		require.NoError(t, err)
	}
	clk.Advance(c.cfg.RenewInterval)
	c.renewOne(ctx, c.lookup("k"))
	require.Contains(t, logs.String(), `level=INFO msg="lease taken by another worker" worker=w1 lease=k`)
	require.NotContains(t, logs.String(), "level=WARN")
	err = c.WriteCheckpoint(ctx, "f", checkpoint.At("1", 0))
	require.ErrorIs(t, err, ErrLeaseLost)
	require.Contains(t, logs.String(), `level=WARN msg="lease lost" worker=w1 lease=f`)
}

// A child lease is not taken while a parent's lease is unfinished (its
// shard could not start anyway), and does not count for the balance; once
// every parent reached SHARD_END it is taken like any other.
func TestChildLeaseTakenOnlyAfterParentsFinish(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	seed(t, store, "p1", "p2")
	for k, parents := range map[string][]string{"c": {"p1", "p2"}, "lone": {"p1"}} {
		_, err := store.Create(ctx, Lease{Key: k, Checkpoint: checkpoint.TrimHorizon, ParentShardIDs: parents})
		require.NoError(t, err)
	}
	// p1 and p2 are held by another worker; p1 has ended.
	var p1 Lease
	for _, k := range []string{"p1", "p2"} {
		l, err := store.Get(ctx, k)
		require.NoError(t, err)
		l, err = store.Take(ctx, l, "other")
		require.NoError(t, err)
		if k == "p1" {
			p1 = l
		}
	}
	_, err := store.UpdateCheckpoint(ctx, p1, checkpoint.ShardEnd)
	require.NoError(t, err)

	passes := takePassSignal{c: make(chan TakeStats, 4)}
	c, _ := manual(t, store, Config{Metrics: passes})
	c.takePass(ctx, true)
	st := <-passes.c
	// Counted: p2 (other) and lone (its only parent p1 ended); c is blocked.
	require.Equal(t, 2, st.Leases)
	require.Equal(t, []string{"lone"}, keys(c.Held()))

	p2, err := store.Get(ctx, "p2")
	require.NoError(t, err)
	_, err = store.UpdateCheckpoint(ctx, p2, checkpoint.ShardEnd)
	require.NoError(t, err)
	c.takePass(ctx, false)
	<-passes.c
	require.Equal(t, []string{"c", "lone"}, keys(c.Held()))
}
