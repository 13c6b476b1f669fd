package lease

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// flakyRenew fails the next renewal with a transient error, not applied.
type flakyRenew struct {
	*MemoryStore
	fail atomic.Bool
}

func (s *flakyRenew) Renew(ctx context.Context, l Lease) (Lease, error) {
	if s.fail.CompareAndSwap(true, false) {
		return Lease{}, errors.New("timeout (not applied)")
	}
	return s.MemoryStore.Renew(ctx, l)
}

// Review: do() adopts "counter = held+1 and Processor() = me" after an
// uncertain write. With marks, Processor() is checkpointOwner, which a KCL
// 2.x take leaves in place (design note §1): leaseOwner = the 2.x taker,
// counter+1, checkpointOwner = us. The holder then adopts a lease a KCL 2.x
// worker has just taken and keeps processing it alongside that worker.
func TestReviewUncertainRenewDoesNotAdoptKCL2Take(t *testing.T) {
	ctx := context.Background()
	ms := &flakyRenew{MemoryStore: NewMemoryStore()}
	f := newFleet(t, ms, 1)
	f.holdHandoffs = true
	w1 := f.start("w1")
	require.Len(t, w1.c.Held(), 1)
	key := w1.c.Held()[0].Key
	ri := w1.c.Config().RenewInterval

	ms.fail.Store(true)
	f.advance(ri) // renewal fails: outcome unknown to w1 (it did not land)
	held := w1.c.Held()[0]
	// A wanter marks the lease for w2 ...
	m, err := ms.MarkHandoff(ctx, held, "w2")
	require.NoError(t, err)
	// ... and a KCL 2.x worker steals it from w2 (counter-only condition,
	// leaves checkpointOwner as it is).
	ms.mu.Lock()
	cur := ms.leases[key]
	require.Equal(t, m.Counter, cur.Counter)
	cur.Owner, cur.Counter = "kcl2", cur.Counter+1
	ms.leases[key] = cur
	ms.mu.Unlock()

	f.advance(ri)
	f.settle()
	after, _ := ms.Get(ctx, key)
	t.Logf("after: owner=%s co=%s counter=%d (kcl2 took at %d); w1 holds %+v", after.Owner, after.CheckpointOwner, after.Counter, cur.Counter, w1.c.Held())
	require.NotContains(t, keys(w1.c.Held()), key, "w1 must not adopt a lease the KCL 2.x worker took")
}
