package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/internal/itest"
)

// auditStore records every conditional write that landed. When flaky, some
// writes fail without landing and some land but report a transient error,
// as requests that time out do.
type auditStore struct {
	Store
	mu     sync.Mutex
	writes map[string]map[int64]string // key -> counter conditioned on -> writer
	bad    []string
	flaky  *rand.Rand // nil: never
}

var errFlaky = errors.New("flaky: request timed out")

// roll returns 0 (normal), 1 (fail before landing) or 2 (land, then fail).
func (a *auditStore) roll() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.flaky == nil {
		return 0
	}
	switch n := a.flaky.IntN(100); {
	case n < 5:
		return 1
	case n < 15:
		return 2
	}
	return 0
}

func (a *auditStore) write(op string, l Lease, writer string, f func() (Lease, error)) (Lease, error) {
	r := a.roll()
	if r == 1 {
		return Lease{}, errFlaky
	}
	got, err := f()
	if err != nil {
		return got, err
	}
	a.mu.Lock()
	if a.writes[l.Key] == nil {
		a.writes[l.Key] = map[int64]string{}
	}
	// got.Counter-1 is the counter the landed write was conditioned on (a
	// store may report a retried write that had landed as a success).
	c := got.Counter - 1
	if prev, ok := a.writes[l.Key][c]; ok && prev != writer {
		a.bad = append(a.bad, fmt.Sprintf("%s %s: counter %d written by %s and %s", op, l.Key, c, prev, writer))
	}
	a.writes[l.Key][c] = writer
	a.mu.Unlock()
	if r == 2 {
		return Lease{}, errFlaky
	}
	return got, nil
}

func (a *auditStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	return a.write("renew", l, l.Owner, func() (Lease, error) { return a.Store.Renew(ctx, l) })
}
func (a *auditStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	return a.write("take", l, owner, func() (Lease, error) { return a.Store.Take(ctx, l, owner) })
}
func (a *auditStore) Release(ctx context.Context, l Lease) (Lease, error) {
	return a.write("release", l, l.Owner, func() (Lease, error) { return a.Store.Release(ctx, l) })
}
func (a *auditStore) UpdateCheckpoint(ctx context.Context, l Lease, p checkpoint.Position) (Lease, error) {
	return a.write("checkpoint", l, l.Owner, func() (Lease, error) { return a.Store.UpdateCheckpoint(ctx, l, p) })
}

type propProcessor struct {
	cp   *checkpoint.Checkpointer
	next int64
}

// TestPropertyFencing interleaves renewals, take passes (balancing and
// expiry scans), releases, checkpoints and clock jumps of several workers
// at random. Invariants: no two workers' writes succeed on the same lease
// counter, and a lease's checkpoint never goes backwards, although stale
// processors keep checkpointing until they are told their lease is gone.
func TestPropertyFencing(t *testing.T) {
	seeds, steps := propertySize()
	for seed := range seeds {
		runFencingProperty(t, uint64(seed), steps, false)
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
}

// TestPropertyFencingFlakyStore is TestPropertyFencing with writes that
// fail without landing or land but report an error: the worker's recovery
// from its own landed writes must not weaken fencing or move a checkpoint
// backwards.
func TestPropertyFencingFlakyStore(t *testing.T) {
	seeds, steps := propertySize()
	for seed := range seeds {
		runFencingProperty(t, uint64(seed), steps, true)
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
}

// propertySize returns how many seeds and steps the property tests run:
// more of both on the soak path (itest.Soak), fewer under -short.
func propertySize() (seeds, steps int) {
	switch {
	case itest.Soak():
		return 2000, 500
	case testing.Short():
		return 40, 300
	}
	return 150, 300
}

func runFencingProperty(t *testing.T, seed uint64, steps int, flaky bool) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 42))
	clk := clock.NewFake(time.Time{})
	mem := NewMemoryStore()
	store := &auditStore{Store: mem, writes: map[string]map[int64]string{}}
	if flaky {
		store.flaky = rand.New(rand.NewPCG(seed, 7))
	}
	const nLeases = 4
	for i := range nLeases {
		_, err := mem.Create(ctx, Lease{Key: fmt.Sprintf("s%d", i), Checkpoint: checkpoint.TrimHorizon})
		require.NoError(t, err)
	}
	type w struct {
		c     *Coordinator
		procs map[*heldLease]*propProcessor
	}
	var ws []*w
	for i := range 3 {
		c, err := NewCoordinator(store, Config{
			WorkerID: fmt.Sprintf("w%d", i), Clock: clk,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		require.NoError(t, err)
		ws = append(ws, &w{c: c, procs: map[*heldLease]*propProcessor{}})
	}
	// deliver hands queued events to the worker's "consumer": Acquired
	// starts a processor at the lease's checkpoint; Lost is delivered
	// only sometimes, so stale processors linger.
	deliver := func(x *w, all bool) {
		q := x.c.events
		q.mu.Lock()
		evs := q.q
		q.q = nil
		q.mu.Unlock()
		for _, ev := range evs {
			switch ev.Type {
			case Acquired:
				start := int64(0)
				if !ev.Lease.Checkpoint.IsSentinel() {
					start, _ = strconv.ParseInt(ev.Lease.Checkpoint.SequenceNumber, 10, 64)
				}
				x.procs[ev.held] = &propProcessor{cp: checkpoint.NewCheckpointer(ev.Lease.Key, ev.Writer, ev.Lease.Checkpoint), next: start + 1}
			case Lost:
				if all || rng.IntN(2) == 0 {
					delete(x.procs, ev.held)
				}
			}
		}
	}
	last := map[string]checkpoint.Position{}
	for step := 0; step < steps; step++ {
		x := ws[rng.IntN(len(ws))]
		switch op := rng.IntN(10); {
		case op < 2:
			clk.Advance(time.Duration(rng.Int64N(int64(6 * time.Second))))
		case op < 4:
			x.c.renewPass(ctx)
		case op < 6:
			x.c.takePass(ctx, rng.IntN(2) == 0)
		case op < 7:
			if h := x.c.Held(); len(h) > 0 {
				_ = x.c.Release(ctx, h[rng.IntN(len(h))].Key)
			}
		default:
			for hl, p := range x.procs {
				p.cp.Delivered(checkpoint.At(strconv.FormatInt(p.next, 10), 0))
				p.next += int64(1 + rng.IntN(3))
				err := p.cp.Checkpoint(ctx)
				switch {
				case errors.Is(err, checkpoint.ErrLeaseLost):
					delete(x.procs, hl)
				case flaky && (errors.Is(err, errFlaky) || errors.Is(err, checkpoint.ErrPositionBackwards)):
				default:
					require.NoError(t, err)
				}
				break
			}
		}
		deliver(x, false)
		all, err := mem.List(ctx)
		require.NoError(t, err)
		for _, l := range all {
			prev, ok := last[l.Key]
			require.True(t, !ok || l.Checkpoint.Compare(prev) >= 0, "seed %d step %d: %s went from %s to %s", seed, step, l.Key, prev, l.Checkpoint)
			last[l.Key] = l.Checkpoint
		}
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	require.Empty(t, store.bad, "seed %d", seed)
	total := 0
	for _, m := range store.writes {
		total += len(m)
	}
	require.Greater(t, total, steps/10, "the run did some writes")
}
