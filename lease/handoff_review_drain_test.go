package lease

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// markHook runs hook once, right after the first MarkHandoff that lands:
// what happens while the mark's reply is still on its way.
type markHook struct {
	Store
	mu   sync.Mutex
	hook func()
}

func (s *markHook) MarkHandoff(ctx context.Context, l Lease, next string) (Lease, error) {
	got, err := s.Store.MarkHandoff(ctx, l, next)
	s.mu.Lock()
	h := s.hook
	s.hook = nil
	s.mu.Unlock()
	if err == nil && h != nil {
		h()
	}
	return got, err
}

// Review: a worker that shuts down (ReleaseAll) while one of its marks is
// in flight must not leave that mark in the table: the holder would hand
// the lease to a worker that is gone, and the shard would sit unprocessed
// until the lease expires. mark() checks drain before the write but does
// not hold the taking slot, so ReleaseAll neither waits for it nor sees its
// incoming entry.
func TestReviewShutdownDuringMarkLeavesNoMark(t *testing.T) {
	ms := &markHook{Store: NewMemoryStore()}
	f := newFleet(t, ms, 2)
	f.holdHandoffs = true
	f.start("w1")
	f.advance(time.Second)
	w2 := f.start("w2")
	released := make(chan error, 1)
	ms.mu.Lock()
	hooked := make(chan struct{})
	var relErr error
	// ReleaseAll runs concurrently with the rest of the mark (it may wait
	// for the mark to finish, which a call from inside the store would
	// deadlock). The mark's reply is held back until ReleaseAll has
	// returned, or is waiting for the mark (it stops taking and the mark
	// holds the taking slot).
	ms.hook = func() {
		close(hooked)
		go func() { released <- w2.c.ReleaseAll(context.Background()) }()
		waitFor(t, func() bool {
			select {
			case relErr = <-released:
				released <- relErr
				return true
			default:
				return w2.c.drain.Load() && len(w2.c.taking) == 1
			}
		})
	}
	ms.mu.Unlock()
	f.advance(takeInterval)
	select {
	case <-hooked:
	default:
		t.Fatal("w2 marked nothing")
	}
	require.NoError(t, <-released)
	// ReleaseAll has returned: w2 is gone as far as its caller knows.
	all, err := ms.List(context.Background())
	require.NoError(t, err)
	for _, l := range all {
		require.NotEqual(t, "w2", l.Owner, "lease %s left marked for a worker that shut down: %+v", l.Key, l)
	}
}
