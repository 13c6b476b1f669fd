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
	"github.com/shardflow/shardflow/internal/clock"
)

// auditStore records every successful conditional write.
type auditStore struct {
	Store
	mu     sync.Mutex
	writes map[string]map[int64]string // key -> counter conditioned on -> writer
	bad    []string
}

func (a *auditStore) record(op string, l Lease, writer string, got Lease, err error) (Lease, error) {
	if err != nil {
		return got, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.writes[l.Key] == nil {
		a.writes[l.Key] = map[int64]string{}
	}
	if prev, ok := a.writes[l.Key][l.Counter]; ok && prev != writer {
		a.bad = append(a.bad, fmt.Sprintf("%s %s: counter %d written by %s and %s", op, l.Key, l.Counter, prev, writer))
	}
	a.writes[l.Key][l.Counter] = writer
	return got, err
}

func (a *auditStore) Renew(ctx context.Context, l Lease) (Lease, error) {
	got, err := a.Store.Renew(ctx, l)
	return a.record("renew", l, l.Owner, got, err)
}
func (a *auditStore) Take(ctx context.Context, l Lease, owner string) (Lease, error) {
	got, err := a.Store.Take(ctx, l, owner)
	return a.record("take", l, owner, got, err)
}
func (a *auditStore) Release(ctx context.Context, l Lease) (Lease, error) {
	got, err := a.Store.Release(ctx, l)
	return a.record("release", l, l.Owner, got, err)
}
func (a *auditStore) UpdateCheckpoint(ctx context.Context, l Lease, p checkpoint.Position) (Lease, error) {
	got, err := a.Store.UpdateCheckpoint(ctx, l, p)
	return a.record("checkpoint", l, l.Owner, got, err)
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
	seeds, steps := 150, 300
	if testing.Short() {
		seeds = 40
	}
	for seed := range seeds {
		runFencingProperty(t, uint64(seed), steps)
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
}

func runFencingProperty(t *testing.T, seed uint64, steps int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 42))
	clk := clock.NewFake(time.Time{})
	mem := NewMemoryStore()
	store := &auditStore{Store: mem, writes: map[string]map[int64]string{}}
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
				if errors.Is(err, checkpoint.ErrLeaseLost) {
					delete(x.procs, hl)
				} else {
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
