package lease

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// Review #7: a stale mark is never voided. Two leases are held by a KCL 2.x
// worker that took them from marked leases (a counter-only take: leaseOwner
// is the 2.x worker, checkpointOwner a worker long gone) and keeps renewing
// them. Each counts as being handed over, so it can never be moved: a
// joining worker never gets a lease. Once the marks have stood for
// HandoffTimeout + FailoverTime they are void, and the joiner takes one
// (which clears its mark).
func TestReviewStaleMarkIsVoided(t *testing.T) {
	ctx := context.Background()
	ms := NewMemoryStore()
	for _, k := range []string{"shardId-000000000000", "shardId-000000000001"} {
		_, err := ms.Create(ctx, Lease{Key: k, Checkpoint: checkpoint.TrimHorizon})
		require.NoError(t, err)
		ms.mu.Lock()
		l := ms.leases[k]
		l.Owner, l.CheckpointOwner, l.Counter = "kcl2", "gone", 5
		ms.leases[k] = l
		ms.mu.Unlock()
	}
	f := newFleet(t, ms, 0)
	w1 := f.start("w1")
	// The KCL 2.x worker renews whatever it still owns.
	renewKCL2 := func() {
		all, err := ms.List(ctx)
		require.NoError(t, err)
		for _, l := range all {
			if l.Owner == "kcl2" {
				_, err := ms.Renew(ctx, l)
				require.NoError(t, err)
			}
		}
	}
	timeout := w1.c.Config().HandoffTimeout
	for step := time.Duration(0); step < timeout+failover+3*takeInterval; step += time.Second {
		renewKCL2()
		f.advance(time.Second)
	}
	f.settle()
	require.Len(t, w1.c.Held(), 1, "the joiner got its share once the marks were void")
	got := w1.c.Held()[0]
	require.False(t, got.InHandoff(), "taking cleared the mark: %+v", got)
	f.requireConsistent()
}
