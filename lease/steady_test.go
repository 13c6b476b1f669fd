package lease

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// countingStore counts Store calls by operation.
type countingStore struct {
	Store
	mu    sync.Mutex
	calls map[string]int
}

func (s *countingStore) count(op string) {
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
}

func (s *countingStore) reset() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = map[string]int{}
	return c
}

func (s *countingStore) List(ctx context.Context) ([]Lease, error) {
	s.count("List")
	return s.Store.List(ctx)
}
func (s *countingStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	s.count("Renew")
	return s.Store.Renew(ctx, l)
}
func (s *countingStore) Take(ctx context.Context, l Lease, o string) (Lease, error) {
	s.count("Take")
	return s.Store.Take(ctx, l, o)
}

// steadyState runs 3 workers on 12 leases until balanced, then for minutes
// of fake time, and returns the store calls made in that window.
func steadyState(t *testing.T, store Store, minutes int, onBalanced func()) (calls map[string]int, leases int) {
	cs := &countingStore{Store: store, calls: map[string]int{}}
	f := newFleet(t, cs, 12)
	startBalanced(t, f)
	f.advance(2*takeInterval + handoffTime)
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	cs.reset()
	if onBalanced != nil {
		onBalanced()
	}
	f.advance(time.Duration(minutes) * time.Minute)
	calls = cs.reset()
	require.Equal(t, map[string]int{"w1": 4, "w2": 4, "w3": 4}, f.owners())
	return calls, 12
}

// TestSteadyStateCallsPerLeasePerMinute measures store calls with KCL's
// default timings, 3 workers and 12 leases, no checkpoints. Each renewal
// is one write; each List is one consistent Scan that reads every lease
// item once. The figure is logged for the docs and checked against the
// arithmetic: 60s / RenewInterval(3.308s) = 18.1 writes per lease per
// minute, and each worker scans 6 times a minute (TakeInterval 20.05s plus
// expiry scans in between), i.e. 6 item reads per lease per minute per
// worker.
func TestSteadyStateCallsPerLeasePerMinute(t *testing.T) {
	const minutes = 10
	calls, leases := steadyState(t, NewMemoryStore(), minutes, nil)
	writes := float64(calls["Renew"]+calls["Take"]) / float64(leases) / minutes
	scansPerWorker := float64(calls["List"]) / 3 / minutes
	itemReads := float64(calls["List"]*leases) / float64(leases) / minutes
	t.Logf("steady state, 3 workers x 12 leases: %.1f writes/lease/min, %.1f scans/worker/min = %.1f item reads/lease/min (calls %v)",
		writes, scansPerWorker, itemReads, calls)
	require.InDelta(t, 60/3.308, writes, 0.3)
	require.Zero(t, calls["Take"], "nothing moves in steady state")
	require.InDelta(t, 6, scansPerWorker, 0.2)
}

func (s *countingStore) Get(ctx context.Context, key string) (Lease, error) {
	s.count("Get")
	return s.Store.Get(ctx, key)
}

func (s *countingStore) MarkHandoff(ctx context.Context, l Lease, next string) (Lease, error) {
	s.count("MarkHandoff")
	return s.Store.MarkHandoff(ctx, l, next)
}

// TestSteadyStateTableCostAt3And10Workers measures the lease table's
// DynamoDB cost per lease per minute with KCL's default timings, 30
// leases, no checkpoints (a checkpoint replaces a renewal), once the fleet
// is balanced. Writes per lease do not depend on the fleet size (one
// renewal per RenewInterval by the holder). Item reads per lease grow
// linearly with the workers: every worker scans the whole table 6 times a
// minute (one balancing pass per TakeInterval, one expiry scan between).
func TestSteadyStateTableCostAt3And10Workers(t *testing.T) {
	const leases, minutes = 30, 10
	for _, n := range []int{3, 10} {
		cs := &countingStore{Store: NewMemoryStore(), calls: map[string]int{}}
		f := newFleet(t, cs, leases)
		for i := range n {
			f.start(fmt.Sprintf("w%d", i))
			f.advance(time.Second)
		}
		f.advance(3*takeInterval + handoffTime)
		per := map[string]int{}
		for o, c := range f.owners() {
			per[o] = c
		}
		require.Len(t, per, n, "every worker holds leases: %v", per)
		cs.reset()
		f.advance(minutes * time.Minute)
		calls := cs.reset()
		writes := float64(calls["Renew"]+calls["Take"]+calls["MarkHandoff"]) / leases / minutes
		itemReads := float64(calls["List"]*leases+calls["Get"]) / leases / minutes
		t.Logf("%2d workers x %d leases: %.1f writes and %.1f item reads per lease per minute (calls %v)", n, leases, writes, itemReads, calls)
		require.InDelta(t, 60/3.308, writes, 0.3)
		require.InDelta(t, 6*float64(n), itemReads, 0.2*float64(n))
		require.Zero(t, calls["Take"]+calls["MarkHandoff"], "nothing moves in steady state")
		f.stopAll()
	}
}
