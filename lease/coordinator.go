package lease

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shardflow/shardflow/checkpoint"
)

// Coordinator errors.
var (
	// ErrNotHeld means the worker does not hold the lease.
	ErrNotHeld = errors.New("lease: not held by this worker")
	// ErrExpiredLocally means the lease went a failover time without a
	// successful renewal, so other workers may take it; it is dropped.
	ErrExpiredLocally = errors.New("lease: not renewed within failover time")
	// ErrReleased means the lease was released by Release or ReleaseAll.
	ErrReleased = errors.New("lease: released")
	// ErrHandedOff means Release or ReleaseAll completed a graceful
	// handoff: the lease went to the worker that asked for it. It matches
	// ErrReleased too.
	ErrHandedOff = fmt.Errorf("%w: handed over to the worker that asked for it", ErrReleased)
	// ErrHandoffTimedOut means this worker was asked to hand the lease
	// over and did not within HandoffTimeout (its processor did not finish
	// the batch in flight): it stops processing and renewing the lease, so
	// the worker that asked for it can take it once it expires.
	ErrHandoffTimedOut = errors.New("lease: handoff not completed within HandoffTimeout")
	// ErrAlreadyRunning means Run was called twice.
	ErrAlreadyRunning = errors.New("lease: coordinator already running")
)

// maxParallelWrites bounds concurrent store calls in one renew or release
// pass: enough to renew hundreds of leases well inside RenewInterval at
// DynamoDB latencies without bursting into throttling.
const maxParallelWrites = 16

// Coordinator holds one worker's leases: it renews them, takes available
// ones, balances against the rest of the fleet, fences checkpoint writes and
// reports every acquisition and loss on Events.
//
// Expiry is judged only on the local clock: a lease whose counter has not
// changed for FailoverTime since this worker first saw its current value is
// expired. Clocks of different workers are never compared.
type Coordinator struct {
	store   Store
	cfg     Config
	met     metricHooks // cfg.Metrics's hooks, resolved once
	log     *slog.Logger
	events  *eventQueue
	running atomic.Bool
	drain   atomic.Bool
	// taking is a one-slot semaphore held across each store Take and the
	// acquisition that follows it, so ReleaseAll can wait for a take in
	// flight instead of missing the lease it brings in.
	taking chan struct{}
	// takeNow holds at most one pending TakeNow request.
	takeNow chan struct{}

	mu   sync.Mutex
	held map[string]*heldLease

	// incoming are the handoffs this worker requested and waits for, by
	// lease key (guarded by mu); incomingWake wakes the handoff loop.
	incoming     map[string]incomingHandoff
	incomingWake chan struct{}

	seen map[string]observation // owned by the take loop
	// marks is when the take loop first saw each lease's current handoff
	// mark (next owner and holder); owned by the take loop.
	marks map[string]observation
	// watchingSince is when the take loop first scanned the table; zero
	// before. It is owned by the take loop.
	watchingSince time.Time
	// stealAgain is set by a balancing pass of the take loop that stole
	// one lease while this worker held none (stealLimit) and wants more:
	// the loop runs the next balancing pass one RenewInterval later, not a
	// TakeInterval, by when workers that joined with it show as owners.
	stealAgain bool
	// fleetSize is the number of workers counted in the last scan (this
	// one included), for ScanScaling; owned by the take loop.
	fleetSize int
	// stretched is ScanSublinear's choice at the last scan: the scan
	// intervals stretched for fleetSize, with probes (see stretch); owned
	// by the take loop.
	stretched bool
	// probes is, while the scan intervals are stretched (ScanScaling),
	// one lease of each other worker with its counter and owner as of the
	// scan at probeFrom; owned by the take loop. See probeSuspects.
	probes    map[string]observation
	probeFrom time.Time
	// targeted is set by a targeted read (takeSuspects) and cleared by a
	// scan: at most one targeted read runs between scans (see
	// takeSuspects). Owned by the take loop.
	targeted bool
	// indexOffUntil is when the owner index may be queried again after an
	// error that retrying does not cure (indexUnusable); owned by the
	// take loop.
	indexOffUntil time.Time
	// lastScan is the last successful scan of the table, for LastScan.
	lastScan atomic.Pointer[scanSnapshot]
}

type scanSnapshot struct {
	leases []Lease
	at     time.Time
	// sizes are the leases' estimated item sizes (itemSize) and total
	// their sum, computed once per scan by the first probe that needs
	// them (targetedIsCheaper), not once per probe.
	sizesOnce sync.Once
	sizes     []int
	total     int
}

// itemSizes returns the item size of each lease of the scan, in order,
// and their sum.
func (sn *scanSnapshot) itemSizes() ([]int, int) {
	sn.sizesOnce.Do(func() {
		sn.sizes = make([]int, len(sn.leases))
		for i, l := range sn.leases {
			sn.sizes[i] = itemSize(l)
			sn.total += sn.sizes[i]
		}
	})
	return sn.sizes, sn.total
}

type heldLease struct {
	mu          sync.Mutex // serialises this lease's store writes
	lease       Lease
	lastWritten time.Time // when the last successful write was issued
	// uncertainSince is when the first write whose outcome is unknown (a
	// transient error: it may have landed) was issued since the last
	// successful write; zero when every write's outcome is known.
	uncertainSince time.Time
	lost           bool
	// handoffNotified: HandoffRequested was sent for this acquisition.
	handoffNotified bool
	// handoffSince is, while the lease is marked for handoff from this
	// worker, the issue time of the last successful write before the mark
	// was noticed (it precedes the mark); zero otherwise. At handoffSince +
	// HandoffTimeout the lease is given up (ErrHandoffTimedOut).
	handoffSince time.Time
	// bytes counts the data processed (RecordProcessed) since the last
	// renewal pass; rate (KiB/s, smoothed) and rateSince are updated by
	// each pass under mu.
	bytes     atomic.Int64
	rate      float64
	rateSince time.Time
	// view is a copy of lease for Held, which must not wait for h.mu (held
	// across store calls).
	view atomic.Pointer[Lease]
}

// set replaces the held lease; h.mu must be held.
func (h *heldLease) set(l Lease) {
	h.lease = l
	v := l.Clone()
	h.view.Store(&v)
}

// incomingHandoff is a handoff this worker asked for.
type incomingHandoff struct {
	since time.Time // when the mark was written (or first seen), local clock
}

type observation struct {
	counter int64
	owner   string
	since   time.Time
}

var _ checkpoint.Writer = (*Coordinator)(nil)

// NewCoordinator returns a coordinator for cfg.WorkerID on store. It does
// nothing until Run.
func NewCoordinator(store Store, cfg Config) (*Coordinator, error) {
	if store == nil {
		return nil, invalidConfig("NewCoordinator needs a store")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Coordinator{
		store:   store,
		cfg:     cfg,
		met:     newMetricHooks(cfg.Metrics, cfg.Logger),
		log:     cfg.Logger.With("worker", cfg.WorkerID),
		events:  newEventQueue(),
		taking:  make(chan struct{}, 1),
		takeNow: make(chan struct{}, 1),
		held:    make(map[string]*heldLease),
		seen:    make(map[string]observation),
		marks:   make(map[string]observation),

		incoming:     make(map[string]incomingHandoff),
		incomingWake: make(chan struct{}, 1),
	}, nil
}

// Config returns the configuration with defaults applied.
func (c *Coordinator) Config() Config { return c.cfg }

// Events delivers Acquired, Lost and HandoffRequested events while Run
// runs, in order per lease, and is closed when Run returns. The
// coordinator never blocks on it: events queue internally (at most three
// per lease, as a Lost cancels its acquisition's undelivered events), so a
// slow reader delays only its own notifications. The consumer should drain
// it promptly, since a Lost tells it to stop a shard and a
// HandoffRequested that another worker waits for the shard.
func (c *Coordinator) Events() <-chan Event { return c.events.out }

// Run renews, takes and balances leases until ctx ends, then returns nil.
// Store errors are logged and retried on the next pass; they do not end
// Run. Run releases nothing: call ReleaseAll for a clean hand-over.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.events.run(ctx) })
	g.Go(func() error { return c.renewLoop(ctx) })
	g.Go(func() error { return c.takeLoop(ctx) })
	return g.Wait()
}

// Held returns the leases this worker holds, sorted by key. It never waits
// for store calls in flight.
func (c *Coordinator) Held() []Lease {
	c.mu.Lock()
	out := make([]Lease, 0, len(c.held))
	for _, h := range c.held { // lost leases leave c.held as they are marked
		out = append(out, h.view.Load().Clone())
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

func (c *Coordinator) heldLeases() []*heldLease {
	c.mu.Lock()
	defer c.mu.Unlock()
	hs := make([]*heldLease, 0, len(c.held))
	for _, h := range c.held {
		hs = append(hs, h)
	}
	return hs
}

func (c *Coordinator) lookup(key string) *heldLease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[key]
}

// markLostLocked drops h and reports the loss; h.mu must be held.
func (c *Coordinator) markLostLocked(h *heldLease, why error) {
	c.markLostLockedAt(h, why, slog.LevelWarn)
}

// markLostLockedAt is markLostLocked logging at level: Info for the normal
// hand-overs of balancing (another worker took the lease), Warn for
// failures (a fenced checkpoint, renewals failing until expiry).
func (c *Coordinator) markLostLockedAt(h *heldLease, why error, level slog.Level) {
	if h.lost {
		return
	}
	c.mu.Lock()
	h.lost = true
	if c.held[h.lease.Key] == h {
		delete(c.held, h.lease.Key)
	}
	// Queued under c.mu, as acquire queues its Acquired: a take of the
	// same lease as soon as it left c.held (one this worker still owns in
	// the table is taken back at once) is reported after this Lost, never
	// before it, or the consumer would stop the new acquisition's shard.
	c.events.push(Event{Type: Lost, Lease: h.lease.Clone(), Err: why, held: h})
	c.mu.Unlock()
	if !errors.Is(why, ErrReleased) {
		msg := "lease lost"
		if level < slog.LevelWarn {
			msg = "lease taken by another worker"
		}
		c.log.Log(context.Background(), level, msg, "lease", h.lease.Key, "counter", h.lease.Counter, "err", why)
	}
}

func (c *Coordinator) acquire(l Lease, issued time.Time) {
	// The previous holder's measurement is the best guess until ours.
	h := &heldLease{lastWritten: issued, rate: l.ThroughputKBps, rateSince: issued}
	h.set(l)
	// Hold h.mu until Acquired is queued: the renewer (or ReleaseAll) can
	// find h as soon as it is in c.held, and its Lost must come after the
	// Acquired (or cancel it), never before.
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	c.held[l.Key] = h
	c.events.push(Event{Type: Acquired, Lease: l.Clone(), Writer: &LeaseWriter{c: c, h: h, key: l.Key}, held: h})
	c.mu.Unlock()
	c.log.Info("lease acquired", "lease", l.Key, "counter", l.Counter)
}

// RecordProcessed counts bytes of data processed on the shard of a held
// lease (the consumer calls it after each batch); it never blocks. The
// rate is written with the lease's renewals as throughputKBps, which is
// what balancing by load evens out.
func (c *Coordinator) RecordProcessed(key string, bytes int) {
	if h := c.lookup(key); h != nil && bytes > 0 {
		h.bytes.Add(int64(bytes))
	}
}

// measure updates h's smoothed rate with the bytes counted since the last
// pass; h.mu must be held.
func (h *heldLease) measure(now time.Time) float64 {
	dt := now.Sub(h.rateSince).Seconds()
	if dt <= 0 {
		return h.rate
	}
	inst := float64(h.bytes.Swap(0)) / 1024 / dt
	h.rateSince = now
	// Half the weight on the last interval: a change shows within two
	// renewals, and one quiet interval does not zero a busy shard.
	h.rate = (h.rate + inst) / 2
	// KCL 3.x's precision (6 decimals).
	h.rate = math.Round(h.rate*1e6) / 1e6
	return h.rate
}

// isLoss reports whether a store error means the lease is no longer ours.
func isLoss(err error) bool { return errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) }

// write runs one fenced write on a held lease: conditional on the counter
// and owner held, and on the lease not having expired locally. A failed
// condition drops the lease and returns an error matching both
// ErrLeaseLost and the store's error. guard, if set, vets the write against
// the lease as found in the table when an earlier write of unknown outcome
// turns out to have landed (see do).
func (c *Coordinator) write(ctx context.Context, h *heldLease, f func(Lease) (Lease, error), guard func(Lease) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := h.lease.Key
	if h.lost {
		return fmt.Errorf("lease: %s: %w", key, ErrLeaseLost)
	}
	now := c.cfg.Clock.Now()
	if c.expiredLocally(h, now) {
		c.markLostLocked(h, ErrExpiredLocally)
		return fmt.Errorf("lease: %s: %w: %w", key, ErrLeaseLost, ErrExpiredLocally)
	}
	if c.handoffOverdue(h, now) {
		c.markLostLocked(h, ErrHandoffTimedOut)
		return fmt.Errorf("lease: %s: %w: %w", key, ErrLeaseLost, ErrHandoffTimedOut)
	}
	_, err := c.do(ctx, h, now, f, guard)
	if err == nil {
		return nil
	}
	if isLoss(err) {
		c.markLostLocked(h, err)
		return fmt.Errorf("lease: %s: %w: %w", key, ErrLeaseLost, err)
	}
	return err
}

// do runs one conditional store write on h (h.mu held), issued at now, and
// keeps h.lease, h.lastWritten and h.uncertainSince up to date.
//
// A failed condition does not always mean the lease is lost; the lease as
// read back decides (the store returns it in the ConflictError, or it is
// read here):
//
//   - A write that failed with a transient error may still have landed (a
//     timeout after DynamoDB applied it). The table then shows the lease at
//     the held counter + 1 with the owner and checkpointOwner held, and the
//     next write of another kind fails its condition. Only this
//     acquisition can have made that change: every write of another worker
//     sets another owner or removes it, and this worker's taker never
//     writes a lease it holds. Such a lease is adopted (as written when the
//     uncertain write was issued, the conservative time). Anything else at
//     counter + 1 is not ours, even with this worker as checkpointOwner: a
//     KCL 2.x worker taking a marked lease moves the counter and leaves
//     checkpointOwner in place. (A mark that came on top of our landed
//     write is given up too: the lease expires and the next owner takes
//     it, as after any loss.)
//   - A graceful handoff request (MarkHandoff) changes leaseOwner and
//     checkpointOwner without moving the counter: at the held counter,
//     with this worker as checkpointOwner, the lease is still ours to
//     process until we hand it over. It is adopted as it is (its expiry
//     clock unchanged) and HandoffRequested is sent.
//
// After adopting, the write is tried once more; anything else is a loss.
func (c *Coordinator) do(ctx context.Context, h *heldLease, now time.Time, f func(Lease) (Lease, error), guard func(Lease) error) (Lease, error) {
	l, err := f(h.lease)
	if err != nil && errors.Is(err, ErrConflict) {
		var cur *Lease
		var ce *ConflictError
		switch {
		case errors.As(err, &ce) && ce.Current != nil:
			cur = ce.Current
		case !h.uncertainSince.IsZero():
			got, gerr := c.store.Get(ctx, h.lease.Key)
			switch {
			case errors.Is(gerr, ErrNotFound):
				return Lease{}, gerr
			case gerr != nil:
				// Unknown again: keep the lease until it expires locally.
				return Lease{}, fmt.Errorf("lease: %s: re-read after failed condition: %w", h.lease.Key, gerr)
			}
			cur = &got
		}
		adopted := false
		switch {
		case cur == nil:
		case cur.Counter == h.lease.Counter+1 && !h.uncertainSince.IsZero() &&
			cur.Owner == h.lease.Owner && cur.CheckpointOwner == h.lease.CheckpointOwner:
			// Exactly what our own write leaves: nothing else moved it.
			h.set(cur.Clone())
			h.lastWritten, h.uncertainSince = h.uncertainSince, time.Time{}
			adopted = true
		case cur.Counter == h.lease.Counter && cur.Processor() == c.cfg.WorkerID:
			// A handoff requested, or withdrawn (CancelHandoff).
			h.set(cur.Clone())
			adopted = true
		}
		if adopted {
			c.noteHandoffLocked(h)
			if guard != nil {
				if err := guard(h.lease); err != nil {
					return Lease{}, err
				}
			}
			l, err = f(h.lease)
		}
	}
	switch {
	case err == nil:
		h.set(l)
		h.lastWritten, h.uncertainSince = now, time.Time{}
	case !isLoss(err) && h.uncertainSince.IsZero():
		h.uncertainSince = now
	}
	return l, err
}

// noteHandoffLocked sends HandoffRequested once per acquisition when the
// held lease is marked for handoff from this worker, and starts (or, when
// the mark was withdrawn, stops) the holder's own handoff deadline; h.mu
// must be held. It runs before the write that noticed the mark is retried,
// so h.lastWritten is still a time before the mark landed.
func (c *Coordinator) noteHandoffLocked(h *heldLease) {
	switch {
	case !h.lease.InHandoff() || h.lease.CheckpointOwner != c.cfg.WorkerID:
		h.handoffSince = time.Time{}
	case h.handoffSince.IsZero():
		h.handoffSince = h.lastWritten
	}
	if h.handoffNotified || h.lost || !h.lease.InHandoff() || h.lease.CheckpointOwner != c.cfg.WorkerID {
		return
	}
	h.handoffNotified = true
	c.log.Info("lease handoff requested", "lease", h.lease.Key, "to", h.lease.Owner, "counter", h.lease.Counter)
	c.events.push(Event{Type: HandoffRequested, Lease: h.lease.Clone(), held: h})
}

func (c *Coordinator) writeKey(ctx context.Context, key string, f func(Lease) (Lease, error), guard func(Lease) error) error {
	h := c.lookup(key)
	if h == nil {
		return fmt.Errorf("lease: %s: %w: %w", key, ErrLeaseLost, ErrNotHeld)
	}
	return c.write(ctx, h, f, guard)
}

// notBehind refuses a checkpoint before the one found in the table.
func notBehind(pos checkpoint.Position) func(Lease) error {
	return func(cur Lease) error {
		if pos.Compare(cur.Checkpoint) < 0 {
			return fmt.Errorf("lease: %s: %w: stored checkpoint is %s", cur.Key, checkpoint.ErrPositionBackwards, cur.Checkpoint)
		}
		return nil
	}
}

// WriteCheckpoint implements checkpoint.Writer: it writes pos to the lease
// of shardID, conditional on the counter and owner this worker holds. If the
// condition fails the lease is dropped, a Lost event is sent, and the error
// matches checkpoint.ErrLeaseLost.
//
// It writes through whatever acquisition of the lease is current. If this
// worker lost the lease and took it back, a processor from the earlier
// acquisition that has not yet seen its Lost event would write through the
// new one; use Event.Writer, which is bound to one acquisition, for
// processors.
func (c *Coordinator) WriteCheckpoint(ctx context.Context, shardID string, pos checkpoint.Position) error {
	return c.writeKey(ctx, shardID, func(l Lease) (Lease, error) { return c.store.UpdateCheckpoint(ctx, l, pos) }, notBehind(pos))
}

// WritePendingCheckpoint implements checkpoint.Writer like WriteCheckpoint.
func (c *Coordinator) WritePendingCheckpoint(ctx context.Context, shardID string, pos checkpoint.Position, state []byte) error {
	return c.writeKey(ctx, shardID, func(l Lease) (Lease, error) {
		return c.store.UpdatePendingCheckpoint(ctx, l, &pos, state)
	}, nil)
}

// UpdateChildShards records a finished shard's children on its lease,
// fenced like WriteCheckpoint.
func (c *Coordinator) UpdateChildShards(ctx context.Context, key string, children []string) error {
	return c.writeKey(ctx, key, func(l Lease) (Lease, error) { return c.store.UpdateChildShards(ctx, l, children) }, nil)
}

// LeaseWriter is a checkpoint.Writer bound to one acquisition of a lease
// (see Event.Writer).
type LeaseWriter struct {
	c   *Coordinator
	h   *heldLease
	key string // h.lease.Key, readable without h.mu
}

var _ checkpoint.Writer = (*LeaseWriter)(nil)

func (w *LeaseWriter) check(shardID string) error {
	if shardID != w.key {
		return fmt.Errorf("lease: %s: writer is bound to %s: %w", shardID, w.key, ErrNotHeld)
	}
	return nil
}

// WriteCheckpoint implements checkpoint.Writer.
func (w *LeaseWriter) WriteCheckpoint(ctx context.Context, shardID string, pos checkpoint.Position) error {
	if err := w.check(shardID); err != nil {
		return err
	}
	return w.c.write(ctx, w.h, func(l Lease) (Lease, error) { return w.c.store.UpdateCheckpoint(ctx, l, pos) }, notBehind(pos))
}

// WritePendingCheckpoint implements checkpoint.Writer.
func (w *LeaseWriter) WritePendingCheckpoint(ctx context.Context, shardID string, pos checkpoint.Position, state []byte) error {
	if err := w.check(shardID); err != nil {
		return err
	}
	return w.c.write(ctx, w.h, func(l Lease) (Lease, error) {
		return w.c.store.UpdatePendingCheckpoint(ctx, l, &pos, state)
	}, nil)
}

// Release gives up one held lease: its owner is removed in the table so
// any worker can take it at its next take pass, and a Lost event (Err
// ErrReleased) is sent. A lease another worker asked for
// (HandoffRequested) is handed to that worker instead (Err ErrHandedOff),
// which starts it at once from the checkpoint written before Release.
// This worker's own taker may take a released lease back like any other
// available lease; ReleaseAll stops taking. Releasing a lease that is
// already lost returns nil. A transient store error leaves the lease held
// and is returned so the caller can retry.
func (c *Coordinator) Release(ctx context.Context, key string) error {
	h := c.lookup(key)
	if h == nil {
		return fmt.Errorf("lease: %s: %w", key, ErrNotHeld)
	}
	return c.release(ctx, h)
}

func (c *Coordinator) release(ctx context.Context, h *heldLease) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return nil
	}
	got, err := c.do(ctx, h, c.cfg.Clock.Now(), func(l Lease) (Lease, error) {
		if l.InHandoff() {
			// Completing the handoff: the next owner (already leaseOwner)
			// becomes the only owner, and the counter moves, which tells
			// it the checkpoint it starts from is final.
			return c.store.Take(ctx, l, l.Owner)
		}
		return c.store.Release(ctx, l)
	}, nil)
	switch {
	case err == nil && got.Owner != "":
		c.log.Info("lease handed over", "lease", h.lease.Key, "to", got.Owner, "checkpoint", got.Checkpoint.String())
		c.markLostLocked(h, ErrHandedOff)
		return nil
	case err == nil:
		c.markLostLocked(h, ErrReleased)
		return nil
	case isLoss(err):
		c.markLostLockedAt(h, err, slog.LevelInfo)
		return nil // not ours any more: nothing left to release
	}
	return fmt.Errorf("lease: %s: release: %w", h.lease.Key, err)
}

// HandOverTimedOut completes, late, a handoff this worker gave up at its
// deadline (a Lost event with ErrHandoffTimedOut): call it once the
// shard's processing has stopped, with the event's Lease (the lease as
// this worker last held it). It hands the lease to the worker that asked
// for it, which starts at its next poll (HandoffPollInterval) instead of
// waiting about FailoverTime more for its fallback take. It is one write
// fenced like every other by the counter this worker last wrote: if the
// lease moved meanwhile (the asker fell back to a take, or anyone took it
// after expiry) nothing is written and nil is returned. Only the caller
// knows that processing has stopped, which is what makes the early start
// safe; a processor that never returns is what the fallback is for.
func (c *Coordinator) HandOverTimedOut(ctx context.Context, l Lease) error {
	if !l.InHandoff() || l.CheckpointOwner != c.cfg.WorkerID || c.lookup(l.Key) != nil {
		return nil
	}
	got, err := c.store.Take(ctx, l, l.Owner)
	switch {
	case isLoss(err):
		return nil
	case err != nil:
		return fmt.Errorf("lease: %s: hand over after the handoff deadline: %w", l.Key, err)
	}
	c.log.Info("lease handed over after the handoff deadline", "lease", l.Key, "to", got.Owner, "checkpoint", got.Checkpoint.String())
	return nil
}

// StopTaking makes the coordinator take no more leases, for good: a worker
// that is shutting down must not take leases it would only hand back. A
// take already in flight may still bring one lease in (reported as
// Acquired); ReleaseAll waits for it and releases it. It never blocks.
func (c *Coordinator) StopTaking() { c.drain.Store(true) }

// ReleaseAll releases every held lease for a clean shutdown, so that other
// workers take them at their next take pass instead of after FailoverTime.
// From the first call on, the coordinator takes no more leases; a take
// already in flight is waited for (bounded by ctx) and its lease released
// too. Call it after the processors have written their final checkpoints.
func (c *Coordinator) ReleaseAll(ctx context.Context) error {
	c.drain.Store(true)
	// Wait for a take or mark in flight: it acquires its lease (or records
	// its mark, withdrawn below) before releasing the slot, and every later
	// one sees drain.
	select {
	case c.taking <- struct{}{}:
		<-c.taking
	case <-ctx.Done():
		return fmt.Errorf("lease: release all: waiting for a take in flight: %w", ctx.Err())
	}
	var (
		mu   sync.Mutex
		errs []error
		g    errgroup.Group
	)
	g.SetLimit(maxParallelWrites)
	for _, h := range c.heldLeases() {
		g.Go(func() error {
			if err := c.release(ctx, h); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	errs = append(errs, c.dropIncoming(ctx))
	return errors.Join(errs...)
}

// dropIncoming gives up the handoffs this worker asked for, as it stops: a
// lease already handed over to it (not yet taken) is released so another
// worker takes it at once; one still being handed over is given back to its
// holder (CancelHandoff), which keeps processing it or, if it was already
// handing over, releases it. Either way no record is processed twice.
func (c *Coordinator) dropIncoming(ctx context.Context) error {
	c.mu.Lock()
	keys := make([]string, 0, len(c.incoming))
	for k := range c.incoming {
		keys = append(keys, k)
	}
	clear(c.incoming)
	c.mu.Unlock()
	var errs []error
	for _, k := range keys {
		if c.lookup(k) != nil {
			continue // held: released above
		}
		cur, err := c.store.Get(ctx, k)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("lease: %s: handoff to this worker: %w", k, err))
			continue
		}
		// Twice: the holder may complete the handoff between the read and
		// the cancel, and the lease is then released instead.
		for range 2 {
			if cur.Owner != c.cfg.WorkerID {
				break
			}
			if cur.InHandoff() {
				_, err = c.store.CancelHandoff(ctx, cur)
			} else {
				_, err = c.store.Release(ctx, cur)
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Current == nil {
				break
			}
			cur = *ce.Current
		}
		if err != nil && !isLoss(err) {
			errs = append(errs, fmt.Errorf("lease: %s: giving up a handoff to this worker: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// renewLoop renews at a fixed rate on the injected clock. When a lease
// failed to renew, it also wakes exactly when that lease's failover time
// runs out, so the loss is reported then and not up to an interval later.
// While this worker waits for handoffs it asked for, it also polls them
// every HandoffPollInterval (one timer for both, so the loop's schedule
// stays one deadline).
func (c *Coordinator) renewLoop(ctx context.Context) error {
	clk := c.cfg.Clock
	next := clk.Now().Add(c.cfg.RenewInterval)
	var expiry, nextPoll time.Time
	t := clk.NewTimer(c.cfg.RenewInterval)
	defer t.Stop()
	// renewIfDue runs a renewal pass if one is due and returns the time
	// after it. Polls call it between their reads: a worker's own leases
	// must never wait for reads of leases it does not hold yet.
	renewIfDue := func() time.Time {
		now := clk.Now()
		if now.Before(next) && (expiry.IsZero() || now.Before(expiry)) {
			return now
		}
		expiry = c.renewPass(ctx)
		now = clk.Now()
		if !next.After(now) {
			next = next.Add(c.cfg.RenewInterval)
			if !next.After(now) {
				next = now.Add(c.cfg.RenewInterval)
			}
		}
		return now
	}
	for {
		fired := false
		select {
		case <-ctx.Done():
			return nil
		case <-c.incomingWake:
			if !t.Stop() {
				select {
				case <-t.C():
					fired = true
				default:
				}
			}
			if first := c.firstIncoming(); nextPoll.IsZero() && !first.IsZero() {
				// From the request's time, not from when this loop woke:
				// the schedule depends on the clock alone.
				nextPoll = first.Add(c.cfg.HandoffPollInterval)
			}
		case <-t.C():
			fired = true
		}
		now := clk.Now()
		if fired {
			now = renewIfDue()
		}
		if !nextPoll.IsZero() && !now.Before(nextPoll) {
			c.pollHandoffs(ctx, renewIfDue)
			now = clk.Now()
			nextPoll = time.Time{}
			c.mu.Lock()
			if len(c.incoming) > 0 {
				nextPoll = now.Add(c.cfg.HandoffPollInterval)
			}
			c.mu.Unlock()
		}
		wake := next
		for _, w := range []time.Time{expiry, nextPoll} {
			if !w.IsZero() && w.Before(wake) {
				wake = w
			}
		}
		t.Reset(max(wake.Sub(now), 0))
	}
}

// renewPass renews every held lease once, in parallel. It returns the
// earliest time a lease whose renewal failed expires locally, or a lease
// marked for handoff from this worker reaches its handoff deadline (zero if
// none), so the loop wakes then.
func (c *Coordinator) renewPass(ctx context.Context) time.Time {
	start := c.cfg.Clock.Now()
	var st RenewStats
	var mu sync.Mutex
	var expiry time.Time
	var g errgroup.Group
	g.SetLimit(maxParallelWrites)
	hs := c.heldLeases()
	st.Held = len(hs)
	for _, h := range hs {
		g.Go(func() error {
			r, exp := c.renewOne(ctx, h)
			mu.Lock()
			defer mu.Unlock()
			switch r {
			case renewed:
				st.Renewed++
			case skipped:
				st.Skipped++
			case lostLease:
				st.Lost++
			case failed:
				st.Failed++
			}
			if !exp.IsZero() && (expiry.IsZero() || exp.Before(expiry)) {
				expiry = exp
			}
			return nil
		})
	}
	_ = g.Wait()
	st.Duration = c.cfg.Clock.Now().Sub(start)
	c.met.RenewPass(st)
	return expiry
}

type renewResult int

const (
	renewed renewResult = iota
	skipped
	lostLease
	failed
)

// handoffOverdue reports whether h has been marked for handoff from this
// worker for HandoffTimeout without being handed over; h.mu must be held.
// The holder stops at that point, on its own clock: the worker that asked
// for the lease waits HandoffTimeout + FailoverTime from the mark on its
// clock before taking it, and the deadline here starts before the mark, so
// the holder always stops first (design note §6.2 step 6).
func (c *Coordinator) handoffOverdue(h *heldLease, now time.Time) bool {
	return !h.handoffSince.IsZero() && now.Sub(h.handoffSince) >= c.cfg.HandoffTimeout
}

// handoffDeadline is when handoffOverdue turns true (zero if never).
func (c *Coordinator) handoffDeadline(h *heldLease) time.Time {
	if h.handoffSince.IsZero() {
		return time.Time{}
	}
	return h.handoffSince.Add(c.cfg.HandoffTimeout)
}

// expiredLocally reports whether h went FailoverTime without a successful
// write; h.mu must be held. Other workers need strictly more than
// FailoverTime on their own clocks, so the holder always gives up first.
func (c *Coordinator) expiredLocally(h *heldLease, now time.Time) bool {
	return now.Sub(h.lastWritten) >= c.cfg.FailoverTime
}

func (c *Coordinator) renewOne(ctx context.Context, h *heldLease) (renewResult, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return lostLease, time.Time{}
	}
	now := c.cfg.Clock.Now()
	if c.expiredLocally(h, now) {
		c.markLostLocked(h, ErrExpiredLocally)
		return lostLease, time.Time{}
	}
	if c.handoffOverdue(h, now) {
		c.markLostLocked(h, ErrHandoffTimedOut)
		return lostLease, time.Time{}
	}
	// A checkpoint in the last half interval already moved the counter,
	// which is all other workers look at. Skip only if the next pass still
	// comes within two thirds of FailoverTime of that write, leaving a third
	// for retries: with KCL's timings (interval FailoverTime/3) that is
	// always so, with a long RenewInterval it never is.
	rate := h.measure(now)
	written := h.lease.ThroughputKBps
	// A renewal also publishes the throughput: skip it only while the
	// published value is close enough to the current one.
	stale := math.Abs(rate-written) > 0.25*max(rate, written)
	if el := now.Sub(h.lastWritten); !stale && el < c.cfg.RenewInterval/2 && el+c.cfg.RenewInterval <= c.cfg.FailoverTime*2/3 {
		return skipped, c.handoffDeadline(h)
	}
	// Bound the call so a hung request cannot hold the lease's lock (and
	// its checkpoints) past the next pass. This is an I/O deadline on the
	// wall clock, not lease timing.
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	defer cancel()
	_, err := c.do(rctx, h, now, func(l Lease) (Lease, error) {
		l.ThroughputKBps = rate
		return c.store.Renew(rctx, l)
	}, nil)
	switch {
	case err == nil:
		return renewed, c.handoffDeadline(h)
	case errors.Is(err, ErrConflict):
		// Another worker took it (balancing, or it saw the lease expire):
		// the normal way leases move.
		c.markLostLockedAt(h, err, slog.LevelInfo)
		return lostLease, time.Time{}
	case isLoss(err):
		c.markLostLocked(h, err)
		return lostLease, time.Time{}
	case ctx.Err() != nil:
		return failed, time.Time{}
	}
	c.log.Warn("lease renewal failed", "lease", h.lease.Key, "err", err)
	if c.expiredLocally(h, c.cfg.Clock.Now()) {
		c.markLostLocked(h, ErrExpiredLocally)
		return lostLease, time.Time{}
	}
	exp := h.lastWritten.Add(c.cfg.FailoverTime)
	if d := c.handoffDeadline(h); !d.IsZero() && d.Before(exp) {
		exp = d
	}
	return failed, exp
}

// TakeNow asks the taker to run a take pass (unowned, released and expired
// leases, up to this worker's fair share; it never steals) as soon as the
// pass in progress, if any, ends. It never blocks, and requests made before
// that pass starts are coalesced into one. Call it when leases become
// available that nobody will take until the next scheduled pass, such as the
// child leases created when a shard ends. After ReleaseAll the pass takes
// nothing; a request made before Run is served once Run has started.
func (c *Coordinator) TakeNow() {
	select {
	case c.takeNow <- struct{}{}:
	default:
	}
}

// takeLoop runs a balancing pass at once and every TakeInterval, with
// expiry scans every ExpiryScanInterval in between, and an extra
// non-stealing pass on each TakeNow.
//
// Start-up: when the first pass finds unowned leases, it takes only one
// (plus any this worker id already owns) and runs a balancing pass
// InitialTakeDelay later. Workers started together each hold a lease by
// then, so they count each other and split the rest without stealing:
// stolen leases are what redeliver records (the victim's batch in flight
// since its last checkpoint).
func (c *Coordinator) takeLoop(ctx context.Context) error {
	clk := c.cfg.Clock
	lastScan := clk.Now()
	lastBalance := lastScan
	var warmUntil time.Time // end of the start-up wait; zero once over
	first := lastBalance.Add(c.cfg.TakeInterval)
	if c.takePassWarm(ctx, true, c.cfg.InitialTakeDelay > 0) {
		warmUntil = lastScan.Add(c.cfg.InitialTakeDelay)
		first = warmUntil
	}
	// Armed for the first scheduled pass right away (the loop re-arms it
	// for the same time), so a fake clock sees the right deadline at once.
	t := clk.NewTimer(max(first.Sub(clk.Now()), 0))
	defer t.Stop()
	var probed time.Time // the probeFrom already probed
	var soon time.Time   // an early balancing pass (stealAgain); zero if none
	for {
		now := clk.Now()
		next, balance := lastBalance.Add(c.scaled(c.cfg.TakeInterval)), true
		switch {
		case !warmUntil.IsZero():
			next = warmUntil // before any other pass: InitialTakeDelay < TakeInterval
		case !soon.IsZero():
			next = soon // RenewInterval < TakeInterval
		case c.cfg.ExpiryScanInterval > 0:
			// An expiry scan due within 1 % of its interval before the
			// balancing pass is that pass's scan: with the intervals
			// scaled (ScanScaling), rounding alone could otherwise put
			// one a nanosecond before every balancing pass.
			e := c.scaled(c.cfg.ExpiryScanInterval)
			if s := lastScan.Add(e); expiryBeforeBalance(next.Sub(s), e) {
				next, balance = s, false
			}
		}
		probe := false
		if warmUntil.IsZero() && len(c.probes) > 0 && !c.probeFrom.Equal(probed) {
			// Just after a lease unchanged since the last scan would
			// count as expired, and well before the next scan.
			if c.probeFits(next.Sub(c.probeFrom)) {
				next, balance, probe = c.probeFrom.Add(c.probeDelay()), false, true
			}
		}
		t.Reset(max(next.Sub(now), 0))
		select {
		case <-ctx.Done():
			return nil
		case <-c.takeNow:
			// Off schedule: the scheduled passes keep their times. A
			// scheduled pass that came due meanwhile is not lost: the
			// timer is re-armed from the schedule and fires at once.
			if !t.Stop() {
				select {
				case <-t.C():
				default:
				}
			}
			// Nor do the probes: a probe still to read (armed by the
			// last scheduled scan) keeps its leases and time, which the
			// pass would replace by its own, a FailoverTime later and
			// often too close to the next scan to be read (probeFits).
			pending := len(c.probes) > 0 && !c.probeFrom.Equal(probed)
			probes, from := c.probes, c.probeFrom
			c.takePassWarm(ctx, false, !warmUntil.IsZero())
			if pending && c.stretched {
				c.probes, c.probeFrom = probes, from
			}
			continue
		case <-t.C():
		}
		warmUntil, soon = time.Time{}, time.Time{}
		if probe {
			probed = c.probeFrom
			idx := c.ownerIndex()
			suspects, read, scan := c.probeSuspects(ctx, idx)
			if !scan && (len(suspects) == 0 || c.takeSuspects(ctx, suspects, read)) {
				continue
			}
			// A worker looks dead: scan now to take its leases, as the
			// expiry scan would have a stretched interval later.
		}
		lastScan = next
		if balance {
			lastBalance = next
		}
		c.takePass(ctx, balance)
		if balance && c.stealAgain {
			soon = clk.Now().Add(c.cfg.RenewInterval)
		}
	}
}

// probeSuspects reads the probe leases (one per other worker, see
// Config.ScanScaling) and returns the owners (as of the scan that chose
// them) whose probe is unchanged since that scan, FailoverTime ago: such an
// owner has probably died (or lost that lease), and its leases are found
// expired now. A probe that changed owner makes its old owner a suspect
// too: another worker may have taken it from a dead owner whose other
// leases are still to take (or it was handed over, which costs one read of
// the old owner's leases more). A live worker renews every lease it holds
// each RenewInterval, so in a healthy fleet every probe has moved and
// nothing more is read.
//
// scan is true when the caller should scan now: without idx (no usable
// owner index, see ownerIndex), at the first suspect, as the scan reads
// everything anyway. With idx, each suspect's leases are listed
// (ListOwned) as soon as it is found, and it scans at a probe that is
// gone; at a suspect for which reading the suspects' leases and the probes
// left would cost more read units than a scan (targetedIsCheaper); when a
// listing fails (before reading more probes: an index the workers may not
// query costs no more than none); and at a suspect whose probe moved and
// that is alive (another of its leases, confirmDead, moved since the scan:
// a handoff, a lease lost or finished) or holds nothing any more with its
// probe taken by another worker (others acted on that event already). A
// scan then observes the fleet whole, the leases of a worker that died
// meanwhile among them, as the scan path does. Otherwise every probe is read, so that one targeted read
// (takeSuspects) covers every suspect: suspects maps each to the keys
// listed, and read holds every probe as just read (the suspects', not to
// be read again, and the others', to probe their owners again).
func (c *Coordinator) probeSuspects(ctx context.Context, idx OwnerIndex) (suspects map[string][]string, read map[string]Lease, scan bool) {
	if c.drain.Load() {
		return nil, nil, false
	}
	order := slices.Sorted(maps.Keys(c.probes))
	for i, key := range order {
		o := c.probes[key]
		got, err := c.getLease(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound):
			// Deleted (a finished lease cleaned up): its children, new
			// unowned leases, are in no owner's index entry.
			return nil, nil, true
		case err != nil:
			continue // the next scan decides
		}
		if read == nil {
			read = map[string]Lease{}
		}
		read[key] = got
		if got.Counter != o.counter && got.Owner == o.owner {
			continue // renewed: alive
		}
		// Unchanged, or moved: a worker that found its owner dead took
		// it, and the owner's other leases wait for us.
		if _, ok := suspects[o.owner]; ok {
			continue
		}
		if idx == nil {
			return nil, nil, true
		}
		if suspects == nil {
			suspects = map[string][]string{}
		}
		suspects[o.owner] = nil
		if !c.targetedIsCheaper(suspects, read, len(order)-i-1) {
			return nil, nil, true
		}
		listed, ok := c.listSuspect(ctx, idx, o.owner)
		if !ok {
			return nil, nil, true
		}
		if got.Owner != o.owner {
			// Moved: the owner is dead only if it holds nothing (it left,
			// or died and others took all) or holds a lease unchanged
			// since the scan. Alive (a handoff, a lease lost or
			// finished), or handled by others already: scan, as the scan
			// path does, for the view of the whole fleet.
			if len(listed) == 0 && got.Owner != "" {
				return nil, nil, true
			}
			if len(listed) > 0 {
				other, ok := c.confirmDead(ctx, o.owner, key, listed)
				if !ok {
					return nil, nil, true
				}
				read[other.Key] = other
			}
		}
		suspects[o.owner] = listed
	}
	return suspects, read, false
}

// confirmDead reads one lease of w's other than its probe, listed by the
// index and held by w in the last scan, and reports whether it is
// unchanged since that scan (w looks dead), returning it as read.
func (c *Coordinator) confirmDead(ctx context.Context, w, probe string, listed []string) (Lease, bool) {
	sn := c.lastScan.Load()
	if sn == nil {
		return Lease{}, false
	}
	for _, l := range sn.leases {
		if l.Owner != w || l.Key == probe || !slices.Contains(listed, l.Key) {
			continue
		}
		got, err := c.getLease(ctx, l.Key)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrNotFound) {
				// The caller scans instead; say why, as listSuspect does.
				c.met.TakePass(TakeStats{Targeted: true, Err: err})
			}
			return got, false
		}
		return got, got.Owner == w && got.Counter == l.Counter
	}
	return Lease{}, false // all its leases are new since the scan: alive
}

// listSuspect lists the leases of suspect worker w through idx. A failure
// is reported to the metrics as a failed targeted pass (the caller then
// scans); one that retrying does not cure (indexUnusable) turns the index
// off for ownerIndexBackoff, with one Warn.
func (c *Coordinator) listSuspect(ctx context.Context, idx OwnerIndex, w string) ([]string, bool) {
	clk := c.cfg.Clock
	start := clk.Now()
	gctx, cancel := context.WithTimeout(ctx, c.pollReadTimeout())
	listed, err := idx.ListOwned(gctx, w)
	cancel()
	if err == nil {
		if is, ok := idx.(indexedStore); ok && !is.HasOwnerIndex() {
			// The store found the index gone and answered from a scan
			// of its own: scan once here rather than once per suspect.
			return nil, false
		}
		return listed, true
	}
	if ctx.Err() != nil {
		return nil, false
	}
	if indexUnusable(err) {
		c.indexOffUntil = clk.Now().Add(ownerIndexBackoff)
		c.log.Warn("lease owner index unusable: scanning instead", "index", OwnerIndexName,
			"retry_after", ownerIndexBackoff, "err", err)
	} else {
		c.log.Warn("listing a suspect worker's leases failed: scanning instead", "owner", w, "err", err)
	}
	c.met.TakePass(TakeStats{Targeted: true, Err: err, Duration: clk.Now().Sub(start)})
	return nil, false
}

// indexedStore is a Store with an owner index it can report on:
// DynamoStore (HasOwnerIndex is false on a table without the index, or
// once it turned out to be gone) and MemoryStore.
type indexedStore interface {
	OwnerIndex
	HasOwnerIndex() bool
}

// ownerIndexBackoff is how long the take loop leaves the owner index alone
// after an error that retrying does not cure (indexUnusable: no permission
// to query it, a request it rejects): long enough that a fleet without the
// permission costs about what it costs without the index, short enough
// that a fixed IAM policy is picked up without a restart.
const ownerIndexBackoff = time.Hour

// ownerIndex returns the store's owner index if the take loop may use it
// now, nil otherwise (the take loop then scans, see takeSuspects): the
// store has none, a targeted read ran since the last scan, or the index
// failed with an error that retrying does not cure within
// ownerIndexBackoff.
func (c *Coordinator) ownerIndex() OwnerIndex {
	if c.targeted || c.cfg.Clock.Now().Before(c.indexOffUntil) {
		return nil
	}
	if s, ok := c.store.(indexedStore); ok && s.HasOwnerIndex() {
		return s
	}
	return nil
}

// takeSuspects is what a probe that found suspects does instead of a scan
// when the store has an owner index and that reads less (see
// probeSuspects): it reads the suspects' leases alone
// (ListOwned, a Query of keys, and a consistent Get of each lease listed or
// held by a suspect in the last scan) and takes those that expired, up to
// this worker's target, judged by the same plan as a take pass on the last
// scan updated with these reads (planAt: the leases not read again are
// judged as of that scan). Leases of a suspect that moved since the scan
// show it alive for them.
//
// Afterwards every peer stays probed, FailoverTime later: each other
// worker by its probe as just read (read), each suspect that still holds
// a lease by one of them (preferably one that moved since the scan: the
// last to expire). But a targeted read observes only the suspects'
// leases, where a scan observes every lease, which the expiry rule needs
// to take a second worker's leases at its next probe. So the rule is: at
// most one targeted read between scans. A probe that finds a suspect
// after a targeted read, before the next scan, scans (ownerIndex returns
// nil), as without the index; a single crash or leave is still taken over
// without a scan, and two in a row no later than by scans.
//
// It reports false, and the caller scans, when the reads cannot decide: a
// ListOwned or a Get failed (reported to the metrics as a targeted pass
// with Err; an error that retrying does not cure turns the index off for
// ownerIndexBackoff), or there is no scan to start from. A lease missing
// from the index (it is eventually consistent and holds no unowned lease)
// and not held by a suspect in the last scan is not read: it is found by
// the next scan, where the probe's scan would have found it at once.
func (c *Coordinator) takeSuspects(ctx context.Context, suspects map[string][]string, read map[string]Lease) bool {
	sn := c.lastScan.Load()
	if sn == nil {
		return false
	}
	keys := map[string]bool{}
	for _, l := range sn.leases {
		if _, ok := suspects[l.Owner]; ok {
			keys[l.Key] = true
		}
	}
	for _, listed := range suspects {
		for _, k := range listed {
			keys[k] = true
		}
	}
	clk := c.cfg.Clock
	start := clk.Now()
	st := TakeStats{Targeted: true}
	// Reported once the reads decided (a plan, or an error), not on drain:
	// a pass without either has no table state to report.
	report := func() {
		st.Duration = clk.Now().Sub(start)
		c.met.TakePass(st)
	}
	fresh := make(map[string]Lease, len(keys))
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if l, ok := read[k]; ok {
			fresh[k] = l // the probe, read just now
			continue
		}
		got, err := c.getLease(ctx, k)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // deleted: nothing to take
		case err != nil:
			if ctx.Err() != nil {
				return false
			}
			c.log.Warn("reading a suspect worker's lease failed: scanning instead", "lease", k, "err", err)
			st.Err = err
			report()
			return false
		}
		fresh[k] = got
	}
	if c.drain.Load() {
		return true
	}
	now := clk.Now()
	// The view: the last scan, with the leases just read in place of
	// theirs; those not read again keep the scan's time.
	view := make([]Lease, 0, len(sn.leases)+len(fresh))
	readAt := make(map[string]time.Time, len(sn.leases))
	for _, l := range sn.leases {
		if keys[l.Key] {
			continue // read again (or gone)
		}
		view = append(view, l)
		readAt[l.Key] = sn.at
	}
	for _, l := range fresh {
		c.observeLease(l, now)
		view = append(view, l)
	}
	slices.SortFunc(view, func(a, b Lease) int { return cmp.Compare(a.Key, b.Key) })
	plan := c.planAt(view, now, readAt, c.parentsUnknown(ctx, view, now, readAt))
	defer report()
	c.targeted = true
	st.Leases, st.Workers, st.Target = plan.leases, plan.workers, plan.target
	// The fleet as this view counts it sets the scan intervals, as after
	// a scan: a worker gone (or back) shortens (or stretches) them, or
	// ends the stretch where probes no longer pay or fit.
	c.setFleet(sn, plan.workers)
	c.takeFrom(ctx, &plan, &st, now, readAt, false, false)

	// Probe every peer again, FailoverTime from now. The other workers'
	// probes as just read (their owners unchanged, else they would be
	// suspects); each suspect that still holds a lease not taken by this
	// worker by one of those, preferably one that moved since the scan (the
	// last to expire).
	probes := make(map[string]observation, len(c.probes))
	for k, l := range read {
		o, probed := c.probes[k]
		if _, ok := suspects[o.owner]; probed && !ok {
			c.observeLease(l, now)
			probes[k] = observation{counter: l.Counter, owner: l.Owner}
		}
	}
	for k, o := range c.probes {
		if _, ok := read[k]; ok {
			continue
		}
		if _, ok := suspects[o.owner]; !ok {
			probes[k] = o // its read failed: judged against the scan, as it was
		}
	}
	expired := func(l Lease) bool { return c.expired(l, now, nil) }
	probe := map[string]Lease{}
	for _, l := range fresh {
		if _, ok := suspects[l.Owner]; !ok || c.lookup(l.Key) != nil {
			continue
		}
		p, ok := probe[l.Owner]
		if !ok || (expired(p) && !expired(l)) || (expired(p) == expired(l) && l.Key < p.Key) {
			probe[l.Owner] = l
		}
	}
	for w, l := range probe {
		probes[l.Key] = observation{counter: l.Counter, owner: w}
	}
	if !c.stretched {
		probes = nil // fixed intervals: the scans watch every worker
	}
	c.probes, c.probeFrom = probes, now
	return true
}

// targetedIsCheaper reports whether reading the leases of suspects (as of
// the last scan; those in read are read already) and the probes still to
// read (remaining) costs fewer DynamoDB read units than the scan it
// replaces. A consistent GetItem costs a unit per item, a consistent Scan
// one per 4 KiB of items summed, and a Query of the index (eventually
// consistent, keys only) half a unit at least. So reading a worker's
// leases one by one pays only when it holds fewer leases than the table
// fills 4 KiB units (with lease items of 200 bytes, 20 to a unit), and
// the probes left to read (which a scan would make unnecessary: it shows
// every worker) must fit in the difference: in large tables, with several
// hundred leases or more. Elsewhere the scan is both cheaper and a fresh
// view of the whole table.
//
// The units are estimates from the items' sizes as MarshalItem writes
// them (itemSize), computed once per scan: they leave out the parents a
// plan may Get, leases the index lists that the scan lacked, Query pages
// beyond the first unit, and probes grown past 4 KiB since the scan.
func (c *Coordinator) targetedIsCheaper(suspects map[string][]string, read map[string]Lease, remaining int) bool {
	sn := c.lastScan.Load()
	if sn == nil {
		return false
	}
	sizes, total := sn.itemSizes()
	targeted := 0.5*float64(len(suspects)) + float64(remaining)
	for i, l := range sn.leases {
		if _, ok := read[l.Key]; ok {
			continue
		}
		if _, ok := suspects[l.Owner]; ok {
			targeted += readUnits(sizes[i])
		}
	}
	return targeted < readUnits(total)
}

// setFleet records the fleet size a view of the table (sn's leases, or a
// targeted read's view on them) counts, and decides for it whether the
// scan intervals are stretched (stretch); called by the take loop only.
func (c *Coordinator) setFleet(sn *scanSnapshot, workers int) {
	c.fleetSize = workers
	if s := c.stretch(sn, workers); s != c.stretched {
		// Failover and read costs change with it (Config.ScanScaling).
		c.log.Info("lease scan intervals", "stretched", s, "workers", workers, "leases", len(sn.leases))
		c.stretched = s
	}
}

// scaled is a scan interval stretched for the fleet size last seen
// (Config.ScanScaling); called by the take loop only.
func (c *Coordinator) scaled(d time.Duration) time.Duration {
	if !c.stretched {
		return d
	}
	return time.Duration(float64(d) * c.cfg.ScanScaling.scanScale(c.fleetSize))
}

// scheduleHysteresis is how much cheaper (a fraction) the schedule
// ScanSublinear does not run must be for it to switch, so that a table
// whose two costs are close does not flip between them at each scan.
const scheduleHysteresis = 0.1

// stretch is ScanSublinear's choice, made at each scan from what it read
// (sn, counting workers): whether to stretch the scan intervals, with
// probes, or keep ScanFixed's, whichever costs fewer DynamoDB read units
// per minute (see readRate), switching only when the other is cheaper by
// scheduleHysteresis. The stretched intervals are eligible only when a
// probe fits after every scan of their balancing period (probeFits): a
// stretched schedule without probes is cheaper than ScanFixed's on any
// table, small ones included, but fails over later, with nothing to find
// a dead worker between its scans. With KCL's timings a probe fits from
// 6 workers up (the stretched ExpiryScanInterval above probeDelay plus a
// RenewInterval), so 4 and 5 workers keep ScanFixed's intervals.
//
// The item sizes are the scan's (sn.itemSizes), computed once per scan
// and shared with the targeted reads that price themselves against it.
func (c *Coordinator) stretch(sn *scanSnapshot, workers int) bool {
	scale := c.cfg.ScanScaling.scanScale(workers)
	if scale <= 1 {
		return false
	}
	gaps, _ := c.scanGaps(scale)
	for _, g := range gaps {
		if !c.probeFits(g) {
			return false
		}
	}
	scan, get := tableReadUnits(sn.itemSizes())
	plain := c.readRate(1, 0, scan, get)
	stretched := c.readRate(scale, workers-1, scan, get)
	if c.stretched {
		return plain > (1-scheduleHysteresis)*stretched
	}
	return stretched < (1-scheduleHysteresis)*plain
}

// scanGaps returns, for the scan intervals multiplied by scale, the time
// from each scan of a balancing period to the next (as the take loop
// places them: one expiry scan per ExpiryScanInterval, all but the last
// ExpiryScanInterval apart, then the balancing pass) and the period.
func (c *Coordinator) scanGaps(scale float64) (gaps []time.Duration, period time.Duration) {
	period = time.Duration(float64(c.cfg.TakeInterval) * scale)
	last := period
	if e := time.Duration(float64(c.cfg.ExpiryScanInterval) * scale); e > 0 {
		at := e
		for ; expiryBeforeBalance(period-at, e); at += e {
			gaps = append(gaps, e)
		}
		last = period - (at - e)
	}
	return append(gaps, last), period
}

// readRate estimates the read units per second this worker's take loop
// spends with the scan intervals multiplied by scale and probes of others
// workers (0: none) after each scan a probe fits after (probeFits, as the
// take loop places them), a scan costing scan units and a probe get.
func (c *Coordinator) readRate(scale float64, others int, scan, get float64) float64 {
	gaps, period := c.scanGaps(scale)
	units := 0.0
	for _, gap := range gaps {
		units += scan
		if others > 0 && c.probeFits(gap) {
			units += float64(others) * get
		}
	}
	return units / period.Seconds()
}

// probeDelay is how long after a scan the take loop reads the probes: just
// after a lease unchanged since the scan would count as expired.
func (c *Coordinator) probeDelay() time.Duration { return c.cfg.FailoverTime + 25*time.Millisecond }

// probeFits reports whether the probes of a scan are read before the next
// scan, gap after it: only when that scan is more than a RenewInterval
// after them (probeDelay), else the scan, which shows every worker, comes
// too soon after the probes to be worth their reads. The take loop places
// the probes by it; stretch and readRate price the schedules by it.
func (c *Coordinator) probeFits(gap time.Duration) bool {
	return gap-c.probeDelay() > c.cfg.RenewInterval
}

// expiryBeforeBalance reports whether an expiry scan (interval e) due a
// time before ahead of the balancing pass runs on its own: within 1 % of
// its interval ahead, the balancing pass's scan stands for it, so that the
// rounding of scaled intervals does not put one a nanosecond before every
// balancing pass.
func expiryBeforeBalance(before, e time.Duration) bool { return before > e/100 }

// LastScan returns the leases as read by this worker's last scan of the
// table and when that scan ended (on the configured clock), or nil and the
// zero time before the first. Callers that only need a recent view (shard
// sync, SyncShardsFrom) use it to save a scan of their own. The leases are
// copies.
func (c *Coordinator) LastScan() ([]Lease, time.Time) {
	sn := c.lastScan.Load()
	if sn == nil {
		return nil, time.Time{}
	}
	out := make([]Lease, len(sn.leases))
	for i, l := range sn.leases {
		out[i] = l.Clone()
	}
	return out, sn.at
}

// takePass scans the table, takes available leases up to this worker's
// target and, when balance is set, steals from overloaded workers.
func (c *Coordinator) takePass(ctx context.Context, balance bool) {
	c.takePassWarm(ctx, balance, false)
}

// takePassWarm is takePass; with warm (start-up) it takes unowned or
// expired leases only while it holds none, and steals nothing if it left
// such leases. It reports whether it did (capped).
func (c *Coordinator) takePassWarm(ctx context.Context, balance, warm bool) (capped bool) {
	clk := c.cfg.Clock
	start := clk.Now()
	st := TakeStats{Balance: balance}
	defer func() {
		st.Duration = clk.Now().Sub(start)
		c.met.TakePass(st)
	}()
	if c.drain.Load() {
		return
	}
	all, err := c.store.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("lease table scan failed", "err", err)
		}
		st.Err = err
		return
	}
	now := clk.Now()
	if c.watchingSince.IsZero() {
		c.watchingSince = now
	}
	sn := &scanSnapshot{leases: all, at: now}
	c.lastScan.Store(sn)
	c.observe(all, now)
	for _, l := range all {
		// A handoff to this worker it does not track: its mark's outcome
		// was unknown (a timeout that landed). Wait for it like any other;
		// under the taking slot, so that a ReleaseAll that began meanwhile
		// sees it and withdraws it.
		if l.InHandoff() && l.Owner == c.cfg.WorkerID && c.lookup(l.Key) == nil {
			if !c.enterTaking(ctx) {
				return
			}
			c.addIncomingIfAbsent(l.Key, now)
			c.leaveTaking()
		}
	}
	plan := c.planAt(all, now, nil, c.parentsUnknown(ctx, all, now, nil))
	st.Leases, st.Workers, st.Target = plan.leases, plan.workers, plan.target
	c.setFleet(sn, plan.workers)
	c.probes, c.probeFrom, c.targeted = nil, now, false
	if c.stretched {
		c.probes = make(map[string]observation, len(plan.victims))
		for w, ls := range plan.victims {
			if len(ls) == 0 {
				continue
			}
			first := slices.MinFunc(ls, func(a, b Lease) int { return cmp.Compare(a.Key, b.Key) })
			c.probes[first.Key] = observation{counter: first.Counter, owner: w}
		}
	}
	return c.takeFrom(ctx, &plan, &st, now, nil, balance, warm)
}

// takeFrom takes, asks for and steals leases as plan (computed at now)
// says, counting in st, and reports whether the start-up wait (warm) left
// available leases (capped). Leases in readAt were not read at now (see
// takeSuspects): they are not taken, their state being that long old.
func (c *Coordinator) takeFrom(ctx context.Context, plan *takePlan, st *TakeStats, now time.Time, readAt map[string]time.Time, balance, warm bool) (capped bool) {
	clk := c.cfg.Clock
	mine := plan.mine

	take := func(l Lease) bool {
		got, ok, err := c.takeLease(ctx, l)
		if err != nil {
			st.Failed++
			if !isLoss(err) && ctx.Err() == nil {
				c.log.Warn("lease take failed", "lease", l.Key, "err", err)
			}
			return false
		}
		if !ok {
			return false
		}
		c.seen[l.Key] = observation{counter: got.Counter, owner: got.Owner, since: now}
		mine++
		return true
	}
	// mark asks the holder of l to hand it over (graceful handoff): the
	// lease counts as this worker's from now on, and the handoff loop
	// starts it once handed over.
	// It holds the taking slot across the write and the bookkeeping, as
	// takeLease does, so ReleaseAll waits for a mark in flight and then
	// withdraws it (dropIncoming) instead of leaving it for a worker that
	// has stopped.
	mark := func(l Lease) bool {
		if !c.enterTaking(ctx) {
			return false
		}
		defer c.leaveTaking()
		if c.drain.Load() {
			return false
		}
		tctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
		got, err := c.store.MarkHandoff(tctx, l, c.cfg.WorkerID)
		cancel()
		if err != nil {
			st.Failed++
			if !isLoss(err) && ctx.Err() == nil {
				c.log.Warn("lease handoff request failed", "lease", l.Key, "err", err)
			}
			return false
		}
		c.seen[l.Key] = observation{counter: got.Counter, owner: got.Owner, since: now}
		c.addIncoming(l.Key, clk.Now())
		mine++
		return true
	}

	for _, l := range plan.available {
		if mine >= plan.target || ctx.Err() != nil {
			break
		}
		if warm && mine >= 1 && l.Owner != c.cfg.WorkerID {
			capped = true
			continue
		}
		if _, old := readAt[l.Key]; old {
			continue
		}
		if take(l) {
			st.Taken++
		}
	}

	// A worker that has watched the table for less than a failover time
	// cannot tell live workers from dead ones: a dead worker's leases look
	// held until they expire. Stealing then would take leases from live
	// workers (whose batches in flight get processed twice) while the dead
	// worker's leases, about to expire, are what it should take. So it
	// steals only after watching for longer than FailoverTime, when every
	// lease of a dead worker shows as expired (available) and the workers
	// still counted are alive.
	watched := now.Sub(c.watchingSince) > c.cfg.FailoverTime
	move := func(l Lease, from string) {
		switch {
		case c.cfg.HandoffTimeout > 0 && !l.InHandoff():
			if mark(l) {
				st.Handoffs++
				c.log.Info("lease handoff requested from a live worker", "lease", l.Key, "from", from, "kbps", l.ThroughputKBps)
			}
		case take(l):
			st.Stolen++
			c.log.Info("lease stolen", "lease", l.Key, "from", from)
		}
	}
	byLoad := c.cfg.Balance == BalanceByLoad && plan.totalLoad > 0
	if balance && !capped && watched && byLoad {
		c.balanceLoad(ctx, plan, st, &mine, move)
	}
	if balance && !capped && watched && !byLoad {
		counts, victims := plan.counts, plan.victims
		for mine < plan.target && ctx.Err() == nil {
			if n := c.stealLimit(plan); n > 0 && st.Stolen+st.Handoffs >= n {
				break
			}
			// The most loaded worker that has a lease to give (leases
			// being handed over cannot be asked for again), ties by name
			// for determinism.
			var v string
			for w, n := range counts {
				if len(victims[w]) == 0 {
					continue
				}
				if n > counts[v] || (n == counts[v] && n > 0 && (v == "" || w < v)) {
					v = w
				}
			}
			// Stealing only from a worker at least two ahead strictly
			// lowers the spread, so thieves never overshoot their
			// victims and leases do not bounce back.
			if v == "" || counts[v]-mine < 2 || len(victims[v]) == 0 {
				break
			}
			l := victims[v][0]
			victims[v] = victims[v][1:]
			counts[v]--
			move(l, v)
		}
	}
	st.Held = mine
	c.stealAgain = balance && plan.mine == 0 && st.Stolen+st.Handoffs > 0 && mine < plan.target
	return capped
}

// takeLease takes l (as observed) for this worker and acquires it; ok is
// false when the worker is stopping. It holds the taking slot across the
// write and the acquisition so ReleaseAll cannot miss the lease.
func (c *Coordinator) takeLease(ctx context.Context, l Lease) (got Lease, ok bool, err error) {
	if !c.enterTaking(ctx) {
		return Lease{}, false, nil
	}
	defer c.leaveTaking()
	if c.drain.Load() {
		return Lease{}, false, nil
	}
	if c.lookup(l.Key) != nil {
		// Taken since l was read, by the other path that starts a lease
		// handed over to this worker (the handoff poll and the take loop
		// both do). The store would accept this take too, from the stale
		// read: a write whose effect is already in place counts as landed.
		// A second acquisition would replace the first in c.held, which is
		// then never renewed, and its Lost would stop the shard's current
		// pipeline while the lease stays held by nobody processing it.
		return Lease{}, false, nil
	}
	issued := c.cfg.Clock.Now()
	// An I/O deadline, as for renewals: a hung request must not stall
	// the taker, nor ReleaseAll waiting for it.
	tctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	got, err = c.store.Take(tctx, l, c.cfg.WorkerID)
	cancel()
	if err != nil {
		return Lease{}, false, err
	}
	c.acquire(got, issued)
	c.mu.Lock()
	delete(c.incoming, l.Key)
	c.mu.Unlock()
	return got, true, nil
}

// enterTaking takes the taking slot; false if ctx ended first.
func (c *Coordinator) enterTaking(ctx context.Context) bool {
	select {
	case c.taking <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Coordinator) leaveTaking() { <-c.taking }

func (c *Coordinator) addIncoming(key string, since time.Time) {
	c.mu.Lock()
	c.incoming[key] = incomingHandoff{since: since}
	c.mu.Unlock()
	select {
	case c.incomingWake <- struct{}{}:
	default:
	}
}

// firstIncoming returns the earliest request time of the handoffs this
// worker waits for (zero if none).
func (c *Coordinator) firstIncoming() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for _, in := range c.incoming {
		if first.IsZero() || in.since.Before(first) {
			first = in.since
		}
	}
	return first
}

func (c *Coordinator) addIncomingIfAbsent(key string, since time.Time) {
	c.mu.Lock()
	_, ok := c.incoming[key]
	c.mu.Unlock()
	if !ok {
		c.addIncoming(key, since)
	}
}

// pollHandoffs reads each lease whose handoff this worker asked for and
// takes it as soon as its holder has handed it over, or when
// HandoffTimeout + FailoverTime has passed since the mark (the fallback:
// the holder renewed, but did not finish in time, and has stopped). It runs on the
// renew loop, every HandoffPollInterval while there are such leases, and
// calls renewIfDue before each read: with many handoffs pending and slow
// reads, a round lasts longer than FailoverTime, and this worker's own
// leases must be renewed meanwhile or others take them while it processes
// them. Each read is bounded by pollReadTimeout, so a renewal waits at most
// that long.
func (c *Coordinator) pollHandoffs(ctx context.Context, renewIfDue func() time.Time) {
	c.mu.Lock()
	pending := maps.Clone(c.incoming)
	c.mu.Unlock()
	drop := func(key string) {
		c.mu.Lock()
		delete(c.incoming, key)
		c.mu.Unlock()
	}
	for key, in := range pending {
		if ctx.Err() != nil || c.drain.Load() {
			return
		}
		renewIfDue()
		if ctx.Err() != nil || c.drain.Load() {
			return
		}
		if c.lookup(key) != nil {
			drop(key) // taken meanwhile (by the take loop, after expiry)
			continue
		}
		cur, err := c.getLease(ctx, key)
		switch {
		case errors.Is(err, ErrNotFound):
			drop(key)
			continue
		case err != nil:
			if ctx.Err() == nil {
				c.log.Warn("reading a lease being handed over failed", "lease", key, "err", err)
			}
			continue
		case cur.Owner != c.cfg.WorkerID:
			// Taken by another worker (after expiry: the holder died) or
			// released: not coming.
			c.log.Info("lease handoff to this worker abandoned", "lease", key, "owner", cur.Owner)
			drop(key)
			continue
		case cur.InHandoff():
			// The holder gives up at HandoffTimeout after a time before
			// the mark, on its clock; FailoverTime more on this clock
			// leaves it the same margin as an expiry.
			waited := c.cfg.Clock.Now().Sub(in.since)
			if waited < c.cfg.HandoffTimeout+c.cfg.FailoverTime {
				continue
			}
			c.log.Warn("lease handoff not completed in time: taking the lease", "lease", key, "from", cur.CheckpointOwner, "waited", waited)
		}
		if _, _, err := c.takeLease(ctx, cur); err != nil {
			if isLoss(err) {
				// Moved since the read (a renewal by the holder, or its
				// handover): the next poll sees where it is.
				continue
			}
			if ctx.Err() == nil {
				c.log.Warn("taking a lease handed over failed", "lease", key, "err", err)
			}
		}
	}
}

// pollReadTimeout bounds one read of a lease being handed over: a third of
// RenewInterval, so a renewal due during the read is at most that late (it
// still lands well inside FailoverTime). A read that times out is retried
// at the next poll.
func (c *Coordinator) pollReadTimeout() time.Duration { return c.cfg.RenewInterval / 3 }

// getLease reads one lease for a probe, a targeted read or a handoff poll,
// bounded by pollReadTimeout.
func (c *Coordinator) getLease(ctx context.Context, key string) (Lease, error) {
	gctx, cancel := context.WithTimeout(ctx, c.pollReadTimeout())
	defer cancel()
	return c.store.Get(gctx, key)
}

// stealLimit returns how many leases one balancing pass may steal or ask
// for (0: no limit): MaxLeasesToStealAtOneTime, but one while this worker
// neither holds nor awaits a lease. Such a worker shows nowhere in the
// table, so workers that join with it at the same moment plan for a fleet
// without it; each alone would take its share from the holder, together
// they would drain the holder far below its share, and it would ask leases
// back: they would bounce. One lease makes it an owner (a handoff mark
// names it at once), so by their next pass every worker counts it, and the
// moves that follow add up to no more than the holders' excess. The take
// loop runs that next pass a RenewInterval later (stealAgain).
func (c *Coordinator) stealLimit(p *takePlan) int {
	if p.mine == 0 {
		return 1
	}
	return c.cfg.MaxLeasesToStealAtOneTime
}

// balanceLoad moves leases from the most loaded workers to this one, one
// at a time, while a move lowers the spread between the two workers by at
// least LoadHysteresis of the mean load per worker. Of the candidate
// leases it picks the one that evens the pair out best, so a hot shard
// goes to an idle worker and cold ones fill in. A move back could only
// widen the spread again, so leases do not bounce. When no move helps the
// load enough, leases spread by count within the hysteresis (countMove).
func (c *Coordinator) balanceLoad(ctx context.Context, p *takePlan, st *TakeStats, mine *int, move func(Lease, string)) {
	mean := p.totalLoad / float64(p.workers)
	least := c.cfg.LoadHysteresis * mean
	// Quiet leases carry less than LoadHysteresis of the mean lease load.
	quiet := c.cfg.LoadHysteresis * p.totalLoad / float64(max(p.leases, 1))
	limit := c.stealLimit(p)
	for ctx.Err() == nil {
		if limit > 0 && st.Stolen+st.Handoffs >= limit {
			return
		}
		if m := c.cfg.MaxLeasesForWorker; m > 0 && *mine >= m {
			return
		}
		var (
			from string
			pick = -1
			gain float64
		)
		for w, ls := range p.victims {
			d := p.loads[w] - p.myLoad
			if d <= least {
				continue
			}
			for i, l := range ls {
				g := d - math.Abs(d-2*l.ThroughputKBps)
				if g >= least && (g > gain || (g == gain && (w < from || (w == from && i < pick)))) {
					from, pick, gain = w, i, g
				}
			}
		}
		if pick < 0 {
			from, pick = p.countMove(*mine, least, quiet)
		}
		if pick < 0 {
			return
		}
		l := p.victims[from][pick]
		p.victims[from] = slices.Delete(p.victims[from], pick, pick+1)
		p.counts[from]--
		p.loads[from] -= l.ThroughputKBps
		p.myLoad += l.ThroughputKBps
		before := st.Stolen + st.Handoffs
		move(l, from)
		if st.Stolen+st.Handoffs == before {
			// The write failed (another worker was quicker): the view is
			// stale; the next pass starts from a fresh scan.
			return
		}
	}
}

// countMove is balanceLoad's second objective, once no move helps the load
// enough: quiet leases (below quiet KiB/s, too little to matter for the
// load) spread by count. It picks
// such a lease of a worker holding at least two more leases than mine, the
// quietest, whose move leaves this worker at most least above that
// worker's load (so no move by load can take it back, and the count gap
// only shrinks, so no move by count either). Without it, leases with no
// measured throughput never moved: one busy shard among idle ones, and a
// joiner got nothing. Busier leases move by load only, which keeps moves
// few. It returns pick -1 when there is no such lease.
func (p *takePlan) countMove(mine int, least, quiet float64) (from string, pick int) {
	pick = -1
	best := 0.0
	for w, ls := range p.victims {
		if p.counts[w]-mine < 2 {
			continue
		}
		for i, l := range ls {
			if l.ThroughputKBps > quiet || (p.myLoad+l.ThroughputKBps)-(p.loads[w]-l.ThroughputKBps) > least {
				continue
			}
			better := pick < 0 || l.ThroughputKBps < best ||
				(l.ThroughputKBps == best && (p.counts[w] > p.counts[from] || (p.counts[w] == p.counts[from] && (w < from || (w == from && i < pick)))))
			if better {
				from, pick, best = w, i, l.ThroughputKBps
			}
		}
	}
	return from, pick
}

// observe records when each lease's counter was first seen at its current
// value, on the local clock.
func (c *Coordinator) observe(all []Lease, now time.Time) {
	present := make(map[string]bool, len(all))
	marked := make(map[string]bool, len(all))
	for _, l := range all {
		present[l.Key] = true
		marked[l.Key] = l.InHandoff()
		c.observeLease(l, now)
	}
	for k := range c.seen {
		if !present[k] {
			delete(c.seen, k)
		}
	}
	for k := range c.marks {
		if !marked[k] {
			delete(c.marks, k)
		}
	}
}

// observeLease is observe for one lease read at now (by a scan, or by a
// targeted read of a suspect worker's leases, see takeSuspects).
func (c *Coordinator) observeLease(l Lease, now time.Time) {
	o, ok := c.seen[l.Key]
	if !ok || o.counter != l.Counter || o.owner != l.Owner {
		c.seen[l.Key] = observation{counter: l.Counter, owner: l.Owner, since: now}
	}
	if !l.InHandoff() {
		delete(c.marks, l.Key)
		return
	}
	// The mark's age: a mark moves no counter, and the holder's renewals
	// move it while the mark stays.
	m, ok := c.marks[l.Key]
	if !ok || m.owner != l.Owner+"\x00"+l.CheckpointOwner {
		c.marks[l.Key] = observation{owner: l.Owner + "\x00" + l.CheckpointOwner, since: now}
	}
}

// staleMark reports whether l's handoff mark has stood for longer than
// HandoffTimeout + FailoverTime on this worker's clock: by then a live next
// owner of ours has completed or fallen back, and a holder of ours has
// given up. A mark that still stands is void: its next owner is gone, or a
// KCL 2.x worker (which knows nothing of marks) holds the lease or took it
// leaving checkpointOwner behind. Such a lease is balanced like any other
// (taken, which clears the mark), or it would never move.
func (c *Coordinator) staleMark(l Lease, now time.Time) bool {
	m, ok := c.marks[l.Key]
	return ok && now.Sub(m.since) > c.cfg.HandoffTimeout+c.cfg.FailoverTime
}

type takePlan struct {
	leases, workers, target, mine int
	available                     []Lease
	counts                        map[string]int     // unexpired leases per other worker
	victims                       map[string][]Lease // their leases, in steal order
	// loads is the throughput (KiB/s) of the leases counted in counts,
	// myLoad that of this worker's, totalLoad that of every lease.
	loads             map[string]float64
	myLoad, totalLoad float64
}

// parentsUnknown returns the leases this worker could take (unowned or
// expired, not finished) that have a parent whose lease is missing from the
// scan but not confirmed gone: List leaves out items it cannot read, and a
// child must not start before its parent ended, nor be held waiting for a
// parent that may never be readable (holding a slot of this worker's
// share). Such a parent is reported at Error with both keys on every pass
// until the item is fixed; a parent that could not be read for a transient
// reason blocks the child for this pass only.
//
// readAt is as for planAt.
func (c *Coordinator) parentsUnknown(ctx context.Context, all []Lease, now time.Time, readAt map[string]time.Time) map[string]bool {
	listed := make(map[string]bool, len(all))
	for _, l := range all {
		listed[l.Key] = true
	}
	var blocked map[string]bool
	gone := map[string]bool{} // parents confirmed absent, read at most once per pass
	for _, l := range all {
		if l.Finished() || len(l.ParentShardIDs) == 0 {
			continue
		}
		if l.Owner != "" && !c.expired(l, now, readAt) {
			continue // held by a live worker, or by this one: not a take candidate
		}
		for _, pk := range l.ParentKeys() {
			if listed[pk] || gone[pk] {
				continue
			}
			_, err := c.store.Get(ctx, pk)
			if err == nil || errors.Is(err, ErrNotFound) {
				// Not found: the parent was processed and its lease
				// cleaned up. Found now: created since the scan; either
				// way the next pass decides on a consistent scan.
				gone[pk] = err != nil
				if err == nil {
					blocked = setKey(blocked, l.Key)
				}
				continue
			}
			blocked = setKey(blocked, l.Key)
			switch {
			case errors.Is(err, ErrUnreadable):
				c.log.Error("parent lease unreadable: not taking its child until the item is fixed", "lease", l.Key, "parent", pk, "err", err)
			case ctx.Err() == nil:
				c.log.Warn("reading parent lease failed: not taking its child in this pass", "lease", l.Key, "parent", pk, "err", err)
			}
		}
	}
	return blocked
}

func setKey(m map[string]bool, k string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[k] = true
	return m
}

// age is how long l has gone unchanged on this worker's clock as of when
// it was read: at readAt[l.Key] if present (a lease a targeted read did not
// read again, judged as of the scan it comes from), else at now.
func (c *Coordinator) age(l Lease, now time.Time, readAt map[string]time.Time) time.Duration {
	return readTime(l, now, readAt).Sub(c.seen[l.Key].since)
}

func readTime(l Lease, now time.Time, readAt map[string]time.Time) time.Time {
	if at, ok := readAt[l.Key]; ok {
		return at
	}
	return now
}

// expired is the one expiry rule of the taker: a lease is expired when its
// counter and owner went unchanged for longer than FailoverTime as
// observed by this worker (see age).
func (c *Coordinator) expired(l Lease, now time.Time, readAt map[string]time.Time) bool {
	return c.age(l, now, readAt) > c.cfg.FailoverTime
}

// planAt computes this worker's target and candidates from one view of
// the table, whose leases in readAt were read at those earlier times (see
// age; nil: all read now). Finished (SHARD_END) leases are left out: they
// need no processing. So are unowned (or expired) leases whose parents
// have not finished: holding them would only mean waiting, and a worker at
// its fair share that took one would keep it from a worker that can start
// it the moment the parents end.
func (c *Coordinator) planAt(all []Lease, now time.Time, readAt map[string]time.Time, parentsUnknown map[string]bool) takePlan {
	self := c.cfg.WorkerID
	c.mu.Lock()
	heldKeys := make(map[string]bool, len(c.held))
	for k := range c.held {
		heldKeys[k] = true
	}
	c.mu.Unlock()

	unfinished := make(map[string]bool, len(all))
	for _, l := range all {
		unfinished[l.Key] = !l.Finished()
	}
	// blocked: a parent's lease is in the table and not finished, so the
	// shard cannot be processed yet (a child starts only after all its
	// parents reached SHARD_END).
	blocked := func(l Lease) bool {
		if parentsUnknown[l.Key] {
			return true
		}
		for _, pk := range l.ParentKeys() {
			if unfinished[pk] {
				return true
			}
		}
		return false
	}

	p := takePlan{counts: map[string]int{}, victims: map[string][]Lease{}, loads: map[string]float64{}}
	count := func(owner string, l Lease) {
		p.leases++
		p.totalLoad += l.ThroughputKBps
		if owner == self {
			p.mine++
			p.myLoad += l.ThroughputKBps
			return
		}
		p.counts[owner]++
		p.loads[owner] += l.ThroughputKBps
	}
	veryOld := map[string]bool{}
	for _, l := range all {
		if l.Finished() {
			continue
		}
		if heldKeys[l.Key] {
			if l.InHandoff() && l.Owner != self {
				count(l.Owner, l) // leaving: it is the next owner's share
			} else {
				count(self, l)
			}
			continue
		}
		age := c.age(l, now, readAt)
		expired := c.expired(l, now, readAt)
		if l.InHandoff() && !c.staleMark(l, readTime(l, now, readAt)) && (!expired || (l.Owner != self && age <= 2*c.cfg.FailoverTime)) {
			// Being handed over: the next owner's share, which nobody
			// else may ask for or take while the holder renews it (unless
			// the mark is stale, see staleMark). Once
			// it expires (the holder died, or gave up at its handoff
			// deadline) the next owner takes it; others wait one more
			// FailoverTime, in case the next owner died too.
			count(l.Owner, l)
			continue
		}
		if (l.Owner == "" || expired) && l.Owner != self && blocked(l) {
			// Nobody works on it yet, and nobody can before its parents
			// end: leave it out of the balance. The worker that finishes
			// the last parent takes it at once (TakeNow), or any worker
			// at its next pass.
			continue
		}
		switch {
		case l.Owner == "" || expired || l.Owner == self:
			// Owned by self but not held: left over from an earlier run
			// of this worker; take it back at once.
			p.leases++
			p.totalLoad += l.ThroughputKBps
			p.available = append(p.available, l)
			veryOld[l.Key] = expired && age > 3*c.cfg.FailoverTime
		default:
			count(l.Owner, l)
			p.victims[l.Owner] = append(p.victims[l.Owner], l)
		}
	}
	p.workers = len(p.counts) + 1
	p.target = (p.leases + p.workers - 1) / p.workers
	if m := c.cfg.MaxLeasesForWorker; m > 0 && p.target > m {
		p.target = m
	}
	// Spread concurrent takers over different leases: ties are broken by a
	// hash of worker and key rather than by key alone.
	rank := func(k string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(self))
		h.Write([]byte{0})
		h.Write([]byte(k))
		return h.Sum64()
	}
	slices.SortFunc(p.available, func(a, b Lease) int {
		// Leases expired for long first (their shards are furthest
		// behind), then unowned ones, then the longest unchanged.
		if x, y := veryOld[a.Key], veryOld[b.Key]; x != y {
			if x {
				return -1
			}
			return 1
		}
		if x, y := a.Owner == "", b.Owner == ""; x != y {
			if x {
				return -1
			}
			return 1
		}
		if d := c.seen[a.Key].since.Compare(c.seen[b.Key].since); d != 0 {
			return d
		}
		return cmp.Compare(rank(a.Key), rank(b.Key))
	})
	for _, ls := range p.victims {
		slices.SortFunc(ls, func(a, b Lease) int { return cmp.Compare(rank(a.Key), rank(b.Key)) })
	}
	return p
}
