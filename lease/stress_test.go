package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/internal/itest"
)

// launchProcessing runs a coordinator whose consumer starts, for every
// Acquired, a processor that checkpoints through the event's Writer until
// it is told the lease is lost (by the Lost event or by a fenced write).
func launchProcessing(f *fleet, id string, wg *sync.WaitGroup) *worker {
	cfg := f.cfg
	cfg.WorkerID, cfg.Clock = id, f.clk
	pc := &passCounter{}
	cfg.Metrics = pc
	c, err := NewCoordinator(f.store, cfg)
	require.NoError(f.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{c: c, cancel: cancel, done: make(chan error, 1), passes: pc, drain: make(chan struct{})}
	go func() { w.done <- c.Run(ctx) }()
	go func() {
		defer close(w.drain)
		type proc struct{ stop, done chan struct{} }
		stops := map[*heldLease]proc{}
		defer func() {
			for _, s := range stops {
				close(s.stop)
			}
		}()
		for ev := range c.Events() {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
			switch ev.Type {
			case Acquired:
				stop, done := make(chan struct{}), make(chan struct{})
				stops[ev.held] = proc{stop, done}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer close(done)
					var next int64 = 1
					if !ev.Lease.Checkpoint.IsSentinel() {
						next, _ = strconv.ParseInt(ev.Lease.Checkpoint.SequenceNumber, 10, 64)
					}
					cp := checkpoint.NewCheckpointer(ev.Lease.Key, ev.Writer, ev.Lease.Checkpoint)
					for range 200 {
						select {
						case <-stop:
							return
						default:
						}
						next++
						cp.Delivered(checkpoint.At(strconv.FormatInt(next, 10), 0))
						if err := cp.Checkpoint(context.Background()); errors.Is(err, checkpoint.ErrLeaseLost) {
							return
						} else if err != nil {
							f.t.Errorf("checkpoint %s: %v", ev.Lease.Key, err)
							return
						}
					}
				}()
			case HandoffRequested:
				// As the consumer: stop processing, then hand over.
				if s, ok := stops[ev.held]; ok {
					close(s.stop)
					<-s.done
					delete(stops, ev.held)
				}
				_ = c.Release(context.Background(), ev.Lease.Key)
			case Lost:
				if s, ok := stops[ev.held]; ok {
					close(s.stop)
					delete(stops, ev.held)
				}
			}
		}
	}()
	f.workers[id] = w
	return w
}

func TestConcurrentProcessingStress(t *testing.T) {
	rounds := 6
	switch {
	case itest.Soak():
		rounds = 60
	case testing.Short():
		rounds = 3
	}
	for r := range rounds {
		runStress(t, uint64(r))
	}
}

func runStress(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	mem := NewMemoryStore()
	audit := &auditStore{Store: mem, writes: map[string]map[int64]string{}}
	f := newFleet(t, audit, 9)
	var procs sync.WaitGroup
	for i := range 3 {
		launchProcessing(f, fmt.Sprintf("w%d", i), &procs)
	}
	f.clk.BlockUntil(f.idleTimers())
	next := 3
	for step := range 30 {
		switch rng.IntN(6) {
		case 0: // a worker crashes, another joins
			for id := range f.workers {
				f.stop(id)
				break
			}
			launchProcessing(f, fmt.Sprintf("w%d", next), &procs)
			next++
		case 1: // hand one lease back
			for _, w := range f.workers {
				if h := w.c.Held(); len(h) > 0 {
					_ = w.c.Release(context.Background(), h[rng.IntN(len(h))].Key)
				}
				break
			}
		}
		f.advance(time.Duration(1+rng.IntN(8)) * time.Second)
		_ = step
	}
	live := map[string]bool{}
	for id, w := range f.workers {
		live[id] = true
		require.NoError(t, w.c.ReleaseAll(context.Background()))
		require.Empty(t, w.c.Held())
	}
	f.stopAll()
	procs.Wait()
	audit.mu.Lock()
	defer audit.mu.Unlock()
	require.Empty(t, audit.bad, "seed %d", seed)
	all, err := mem.List(context.Background())
	require.NoError(t, err)
	for _, l := range all { // crashed workers' leases stay theirs until they expire
		require.False(t, live[l.Owner], "seed %d: %s not released by %s", seed, l.Key, l.Owner)
	}
}
