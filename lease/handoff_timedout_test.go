package lease

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A holder that gave a handoff up at its deadline and whose processing then
// stopped hands the lease over at once (HandOverTimedOut): the worker that
// asked for it starts at its next poll, not a failover time later, from the
// holder's checkpoint.
func TestHandOverTimedOutStartsTheNewOwnerAtOnce(t *testing.T) {
	f, _, key := handoffFleet(t, true)
	w1, w2 := f.workers["w1"], f.workers["w2"]
	cfg := w2.c.Config()
	before, err := f.store.Get(context.Background(), key)
	require.NoError(t, err)
	f.advance(cfg.HandoffTimeout + time.Second)
	waitFor(t, func() bool { return len(w1.eventsOf(Lost)) == 1 })
	lost := w1.eventsOf(Lost)[0]
	require.ErrorIs(t, lost.Err, ErrHandoffTimedOut)
	require.Empty(t, w2.c.Held(), "not handed over yet")

	// The holder's pipeline has stopped: hand over.
	require.NoError(t, w1.c.HandOverTimedOut(context.Background(), lost.Lease))
	f.advance(cfg.HandoffPollInterval)
	require.Equal(t, []string{key}, keys(w2.c.Held()), "started at the next poll, a failover time early")
	got, err := f.store.Get(context.Background(), key)
	require.NoError(t, err)
	require.Equal(t, "w2", got.Owner)
	require.Empty(t, got.CheckpointOwner)
	require.Equal(t, before.Checkpoint, got.Checkpoint, "from the holder's checkpoint")
	f.settle()
	f.requireConsistent()
}

// Once the lease moved (here: the asker fell back to a take), a late
// HandOverTimedOut writes nothing.
func TestHandOverTimedOutAfterTheFallbackIsANoOp(t *testing.T) {
	f, rs, key := handoffFleet(t, true)
	w1, w2 := f.workers["w1"], f.workers["w2"]
	cfg := w2.c.Config()
	f.advance(cfg.HandoffTimeout + cfg.FailoverTime + 2*time.Second)
	require.Equal(t, []string{key}, keys(w2.c.Held()), "fallback take")
	waitFor(t, func() bool { return len(w1.eventsOf(Lost)) == 1 })
	taken, err := rs.Get(context.Background(), key)
	require.NoError(t, err)
	require.NoError(t, w1.c.HandOverTimedOut(context.Background(), w1.eventsOf(Lost)[0].Lease))
	got, err := rs.Get(context.Background(), key)
	require.NoError(t, err)
	require.Equal(t, taken, got, "nothing written")
	// Nor for a lease that was not given up in a handoff.
	require.NoError(t, w2.c.HandOverTimedOut(context.Background(), got))
	f.advance(cfg.RenewInterval)
	require.Equal(t, []string{key}, keys(w2.c.Held()))
}
