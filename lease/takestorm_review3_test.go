// REVIEW: fails because workers that scan a new table before any of them
// has taken a lease all skip InitialTakeDelay (lease/coordinator.go:978) and
// each tries to take every lease (its target with one worker visible is
// all of them): 3 workers and 12 leases issue 36 conditional Take writes
// in their first passes, 24 of them bound to fail, where the start-up wait
// had each take one (4 writes here: one conflict retried). With W workers and L leases that is W*L
// writes, each failed one followed by a consistent re-read in DynamoStore:
// a take storm against the lease table at every fleet cold start.

package lease

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

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

func TestReview3FleetColdStartNoTakeStorm(t *testing.T) {
	const workers, leases = 3, 12
	store := &scanBarrierStore{MemoryStore: NewMemoryStore(), n: workers, all: make(chan struct{})}
	f := newFleet(t, store, leases)
	f.cfg.InitialTakeDelay = 0 // the default start-up wait
	f.startAll("w1", "w2", "w3")
	// At 66056a1: one successful take each, plus a retry per conflict
	// (4 writes here, at most workers*workers). A take per lease per
	// worker is a storm.
	require.LessOrEqual(t, store.takes.Load(), int64(leases),
		"take writes in the fleet's first passes")
	f.stopAll()
}
