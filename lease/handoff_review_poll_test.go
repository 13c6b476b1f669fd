package lease

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slowGets makes Get of leases being handed over take RenewInterval (the
// I/O deadline pollHandoffs gives it) and fail, as in a DynamoDB brownout.
type slowGets struct {
	Store
	f      *fleet
	slow   atomic.Bool
	mu     sync.Mutex
	renews map[string]time.Time // last renewal per key
	check  func()
	gets   atomic.Int32
}

func (s *slowGets) Renew(ctx context.Context, l Lease) (Lease, error) {
	got, err := s.Store.Renew(ctx, l)
	if err == nil {
		s.mu.Lock()
		s.renews[l.Key] = s.f.clk.Now()
		s.mu.Unlock()
	}
	return got, err
}

func (s *slowGets) Get(ctx context.Context, key string) (Lease, error) {
	if s.slow.Load() {
		s.f.clk.Advance(s.f.cfg.RenewInterval)
		s.check()
		s.gets.Add(1)
		return Lease{}, context.DeadlineExceeded
	}
	return s.Store.Get(ctx, key)
}

// Review: pollHandoffs runs on the renew loop and reads every pending
// handoff one after the other, each bounded by RenewInterval. With a few
// pending handoffs (MaxLeasesToStealAtOneTime 0 = unlimited by default) and
// slow GetItems, the worker's own leases go longer than FailoverTime
// without a renewal while it still holds them and its pipelines run: other
// workers see them expired and take them, two workers process one shard.
func TestReviewPollDoesNotStarveRenewals(t *testing.T) {
	sg := &slowGets{Store: NewMemoryStore(), renews: map[string]time.Time{}}
	f := newFleet(t, sg, 8)
	sg.f = f
	f.cfg.RenewInterval = failover/3 - 25*time.Millisecond
	f.holdHandoffs = true
	w1 := f.start("w1")
	require.NoError(t, w1.c.Release(context.Background(), w1.c.Held()[0].Key))
	f.advance(time.Second)
	w2 := f.start("w2")
	f.advance(takeInterval)
	all, err := sg.List(context.Background())
	require.NoError(t, err)
	pending := 0
	for _, l := range all {
		if l.InHandoff() && l.Owner == "w2" {
			pending++
		}
	}
	require.Len(t, w2.c.Held(), 1)
	own := w2.c.Held()[0].Key
	t.Logf("w2 holds %s and waits for %d handoffs", own, pending)
	var breach atomic.Value
	sg.check = func() {
		sg.mu.Lock()
		last := sg.renews[own]
		sg.mu.Unlock()
		if gap := f.clk.Now().Sub(last); gap > failover {
			for _, l := range w2.c.Held() {
				if l.Key == own {
					breach.Store(gap)
				}
			}
		}
	}
	sg.slow.Store(true)
	f.clk.Advance(w2.c.Config().HandoffPollInterval)
	waitFor(t, func() bool { return int(sg.gets.Load()) >= pending }) // one poll round
	require.Nil(t, breach.Load(), "w2 still holds %s that long after its last renewal (FailoverTime %v): others may take it while it processes", own, failover)
}
