package lease

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
)

// fleet runs coordinators on one fake clock and one store. Every
// coordinator's loops wait on exactly two timers (renew and take) when idle,
// so "all timers armed" means every pass triggered by an Advance finished.
type fleet struct {
	t       *testing.T
	clk     *clock.Fake
	store   Store
	cfg     Config
	workers map[string]*worker
	// holdHandoffs makes workers ignore HandoffRequested (a processor that
	// never finishes its batch); by default they hand over at once.
	holdHandoffs bool
	// traffic is each shard's data rate (KiB/s): advance feeds it to the
	// worker holding the lease (RecordProcessed), as a consumer would.
	traffic map[string]float64
}

type worker struct {
	c      *Coordinator
	cancel context.CancelFunc
	done   chan error
	passes *passCounter

	mu     sync.Mutex
	events []Event
	drain  chan struct{}
}

type passCounter struct {
	mu       sync.Mutex
	balances int
	stolen   int
	taken    int
	// targetedTaken is the part of taken taken by targeted passes.
	targetedTaken int
}

func (p *passCounter) TakePass(s TakeStats) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.Balance {
		p.balances++
	}
	p.stolen += s.Stolen + s.Handoffs
	p.taken += s.Taken
	if s.Targeted {
		p.targetedTaken += s.Taken
	}
}

// takenBy returns the leases taken so far by targeted reads (the owner
// index, see takeSuspects) and by scans.
func (p *passCounter) takenBy() (targeted, scanned int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.targetedTaken, p.taken - p.targetedTaken
}

func newFleet(t *testing.T, store Store, leases int) *fleet {
	f := &fleet{
		t: t, clk: clock.NewFake(time.Time{}), store: store, workers: map[string]*worker{},
		// Most tests check balancing and stealing from a first pass that
		// takes a full share; the start-up wait has tests of its own.
		cfg: Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InitialTakeDelay: -1},
	}
	for i := range leases {
		_, err := store.Create(context.Background(), Lease{Key: fmt.Sprintf("shardId-%012d", i), Checkpoint: checkpoint.TrimHorizon})
		require.NoError(t, err)
	}
	t.Cleanup(f.stopAll)
	return f
}

func (f *fleet) idleTimers() int { return 2 * len(f.workers) }

// start runs a coordinator and waits until its first take pass is done.
func (f *fleet) start(id string) *worker { return f.startAll(id)[0] }

// startAll starts coordinators at the same instant, racing each other.
func (f *fleet) startAll(ids ...string) []*worker {
	var out []*worker
	for _, id := range ids {
		out = append(out, f.launch(id))
	}
	f.clk.BlockUntil(f.idleTimers())
	f.settle()
	return out
}

func (f *fleet) launch(id string) *worker {
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
		for ev := range c.Events() {
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
			if ev.Type == HandoffRequested && !f.holdHandoffs {
				// As the consumer does once the batch in flight is
				// checkpointed: hand the lease over.
				_ = c.Release(context.Background(), ev.Lease.Key)
			}
		}
	}()
	f.workers[id] = w
	return w
}

// settle waits until every worker has received the events for the leases
// it holds (events are delivered asynchronously; an Acquired still queued
// when its Lost arrives is cancelled, which tests counting events avoid).
func (f *fleet) settle() {
	for _, w := range f.workers {
		waitFor(f.t, func() bool {
			return len(w.eventsOf(Acquired))-len(w.eventsOf(Lost)) == len(w.c.Held())
		})
	}
}

// stop ends a worker's Run without releasing (a crash, as far as the table
// can tell).
func (f *fleet) stop(id string) {
	w := f.workers[id]
	w.cancel()
	require.NoError(f.t, <-w.done)
	<-w.drain
	delete(f.workers, id)
}

// feed reports d's worth of traffic on every held lease, before the clock
// moves, so the passes at the next deadline measure it deterministically.
func (f *fleet) feed(d time.Duration) {
	if len(f.traffic) == 0 || d <= 0 {
		return
	}
	for _, w := range f.workers {
		for _, l := range w.c.Held() {
			w.c.RecordProcessed(l.Key, int(f.traffic[l.Key]*1024*d.Seconds()))
		}
	}
}

// settleHandoffs waits until every worker has handed over the leases it
// was asked for (the harness's event readers do it at once, off the clock),
// so that what the clock triggers next is deterministic.
func (f *fleet) settleHandoffs() {
	if f.holdHandoffs {
		return
	}
	for id, w := range f.workers {
		waitFor(f.t, func() bool {
			for _, l := range w.c.Held() {
				// Marked, or handed over and not yet dropped (the
				// hand-over write is in the view before the Lost).
				if l.Owner != id {
					return false
				}
			}
			return true
		})
	}
}

func (f *fleet) stopAll() {
	for id := range f.workers {
		f.stop(id)
	}
}

// advance moves the clock by d, one timer deadline at a time, letting every
// pass triggered at a deadline finish, and its events reach the workers,
// before moving on. Without the latter, how fast the event readers run
// (real time) would decide whether a Lost cancels a still undelivered
// Acquired, and so what the tests count.
func (f *fleet) advance(d time.Duration) {
	end := f.clk.Now().Add(d)
	for {
		next := end
		if ds := f.clk.Deadlines(); len(ds) > 0 && ds[0].Before(end) {
			next = ds[0]
		}
		f.feed(next.Sub(f.clk.Now()))
		f.clk.Set(next)
		f.clk.BlockUntil(f.idleTimers())
		f.settleHandoffs()
		f.settle()
		if !next.Before(end) {
			return
		}
	}
}

// owners returns, from the table, how many unfinished leases each worker
// owns ("" for unowned).
func (f *fleet) owners() map[string]int {
	all, err := f.store.List(context.Background())
	require.NoError(f.t, err)
	out := map[string]int{}
	for _, l := range all {
		if !l.Finished() {
			out[l.Owner]++
		}
	}
	return out
}

// requireConsistent checks that each worker's Held view matches the table.
func (f *fleet) requireConsistent() {
	all, err := f.store.List(context.Background())
	require.NoError(f.t, err)
	byOwner := map[string][]string{}
	for _, l := range all {
		byOwner[l.Owner] = append(byOwner[l.Owner], l.Key)
	}
	for id, w := range f.workers {
		got := keys(w.c.Held())
		want := byOwner[id]
		sort.Strings(want)
		require.Equal(f.t, want, got, "worker %s", id)
	}
}

func (w *worker) eventsOf(t EventType) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Event
	for _, ev := range w.events {
		if ev.Type == t {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor polls cond until it holds, however long that takes: a slow
// machine makes it wait longer, never fail. A condition that never holds
// is reported by the test binary's -timeout, with every goroutine's stack.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}
