package lease

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
)

// takeBetween runs between the handoff poll's read of a lease handed over
// to worker and the poll's take: it has the worker's take loop take the
// lease first (TakeNow), as its scheduled passes do when they come first,
// and then returns the read, which is stale by then.
type takeBetween struct {
	Store
	mu     sync.Mutex
	key    string
	worker *worker
	armed  atomic.Bool
	gets   atomic.Int32 // reads of key
}

func (s *takeBetween) target(key string, w *worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key, s.worker = key, w
}

func (s *takeBetween) Get(ctx context.Context, key string) (Lease, error) {
	got, err := s.Store.Get(ctx, key)
	s.mu.Lock()
	target, w := s.key, s.worker
	s.mu.Unlock()
	if key != target {
		return got, err
	}
	s.gets.Add(1)
	if err != nil || got.Owner != w.c.cfg.WorkerID || got.InHandoff() || !s.armed.CompareAndSwap(true, false) {
		return got, err
	}
	w.c.TakeNow()
	for !slices.Contains(keys(w.c.Held()), key) {
		time.Sleep(time.Millisecond) // the take loop runs off the clock
	}
	return got, nil
}

// The worker that asked for a lease has two ways to start it once the
// holder handed it over: its handoff poll and its take loop (the lease is
// its own and unheld). When the poll read the handed-over lease before the
// take loop took it, the poll's take, from that stale read, must not take
// the lease a second time. The store accepts it (a write whose effect is
// already in place counts as landed, for retries whose outcome was
// unknown), so a second acquisition replaced the first in the held set:
// two Acquired events, the first acquisition never renewed, and its
// checkpoint then failed and reported a Lost while the lease was still
// held. A consumer stops the shard's current pipeline on that Lost; the
// lease stayed held and renewed, with nobody processing the shard
// (consumer TestE2EKillWorker hung so, waiting for its records).
func TestHandedOverLeaseIsTakenOnceByPollAndTakeLoop(t *testing.T) {
	tb := &takeBetween{Store: NewMemoryStore()}
	f, _, key := handoffFleetOn(t, tb, true)
	w1, w2 := f.workers["w1"], f.workers["w2"]
	require.Empty(t, w2.c.Held())
	cfg := w2.c.Config()
	tb.target(key, w2)
	// The mark may have been made in the fleet's last step, and its poll
	// schedule started when the renew loop woke for it, off the clock:
	// wait for that poll, so the next ones come at clock deadlines.
	step(f, cfg.HandoffPollInterval)
	waitFor(t, func() bool { return tb.gets.Load() > 0 })
	f.clk.BlockUntil(f.idleTimers())
	tb.armed.Store(true)

	// The holder hands over; the next poll reads it and, before its take,
	// the take loop takes it.
	require.NoError(t, w1.c.Release(context.Background(), key))
	step(f, cfg.HandoffPollInterval)
	require.False(t, tb.armed.Load(), "the poll read the handed-over lease")
	require.Equal(t, []string{key}, keys(w2.c.Held()))
	waitFor(t, func() bool { return len(w2.eventsOf(Acquired)) > 0 })

	// The acquisition the consumer starts the shard with checkpoints
	// through its writer, after a renewal, and keeps the lease.
	step(f, cfg.RenewInterval)
	acq := w2.eventsOf(Acquired)[0]
	require.NoError(t, acq.Writer.WriteCheckpoint(context.Background(), key, checkpoint.At("20", 0)), "the first acquisition is the one held")
	require.Equal(t, []string{key}, keys(w2.c.Held()))

	// Every event up to a release is delivered once its Lost is: one
	// acquisition, then its loss.
	require.NoError(t, w2.c.Release(context.Background(), key))
	waitFor(t, func() bool { return len(w2.eventsOf(Lost)) > 0 })
	require.Len(t, w2.eventsOf(Acquired), 1, "one acquisition")
	require.Len(t, w2.eventsOf(Lost), 1)
}

// step is fleet.advance without waiting for events: it moves the clock one
// timer deadline at a time and lets the passes due at each finish.
func step(f *fleet, d time.Duration) {
	end := f.clk.Now().Add(d)
	for {
		next := end
		if ds := f.clk.Deadlines(); len(ds) > 0 && ds[0].Before(end) {
			next = ds[0]
		}
		f.clk.Set(next)
		f.clk.BlockUntil(f.idleTimers())
		if !next.Before(end) {
			return
		}
	}
}
