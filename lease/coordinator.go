package lease

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
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

	seen map[string]observation // owned by the take loop
	// watchingSince is when the take loop first scanned the table; zero
	// before. It is owned by the take loop.
	watchingSince time.Time
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
		log:     cfg.Logger.With("worker", cfg.WorkerID),
		events:  newEventQueue(),
		taking:  make(chan struct{}, 1),
		takeNow: make(chan struct{}, 1),
		held:    make(map[string]*heldLease),
		seen:    make(map[string]observation),
	}, nil
}

// Config returns the configuration with defaults applied.
func (c *Coordinator) Config() Config { return c.cfg }

// Events delivers Acquired and Lost events while Run runs, and is closed
// when Run returns. The coordinator never blocks on it: events queue
// internally (at most two per lease, as a Lost cancels an undelivered
// Acquired), so a slow reader delays only its own notifications. The
// consumer should drain it promptly, since a Lost tells it to stop a shard.
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
	c.mu.Unlock()
	if !errors.Is(why, ErrReleased) {
		msg := "lease lost"
		if level < slog.LevelWarn {
			msg = "lease taken by another worker"
		}
		c.log.Log(context.Background(), level, msg, "lease", h.lease.Key, "counter", h.lease.Counter, "err", why)
	}
	c.events.push(Event{Type: Lost, Lease: h.lease.Clone(), Err: why, held: h})
}

func (c *Coordinator) acquire(l Lease, issued time.Time) {
	h := &heldLease{lastWritten: issued}
	h.set(l)
	// Hold h.mu until Acquired is queued: the renewer (or ReleaseAll) can
	// find h as soon as it is in c.held, and its Lost must come after the
	// Acquired (or cancel it), never before.
	h.mu.Lock()
	defer h.mu.Unlock()
	c.mu.Lock()
	c.held[l.Key] = h
	c.mu.Unlock()
	c.log.Info("lease acquired", "lease", l.Key, "counter", l.Counter)
	c.events.push(Event{Type: Acquired, Lease: l.Clone(), Writer: &LeaseWriter{c: c, h: h, key: l.Key}, held: h})
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
		return fmt.Errorf("lease %s: %w", key, ErrLeaseLost)
	}
	now := c.cfg.Clock.Now()
	if c.expiredLocally(h, now) {
		c.markLostLocked(h, ErrExpiredLocally)
		return fmt.Errorf("lease %s: %w: %w", key, ErrLeaseLost, ErrExpiredLocally)
	}
	_, err := c.do(ctx, h, now, f, guard)
	if err == nil {
		return nil
	}
	if isLoss(err) {
		c.markLostLocked(h, err)
		return fmt.Errorf("lease %s: %w: %w", key, ErrLeaseLost, err)
	}
	return err
}

// do runs one conditional store write on h (h.mu held), issued at now, and
// keeps h.lease, h.lastWritten and h.uncertainSince up to date.
//
// A write that failed with a transient error may still have landed (a
// timeout after DynamoDB applied it). The table then holds this worker as
// owner at the held counter + 1, and the next write of another kind fails
// its condition. Only this acquisition can have made that change: every
// write of another worker sets another owner or removes it, and this
// worker's taker never writes a lease it holds. So when a write fails its
// condition after such an uncertain write, the lease is re-read, and if it
// shows this worker at the held counter + 1 it is adopted (as written when
// the uncertain write was issued, the conservative time) and the write is
// tried once more; anything else is a loss.
func (c *Coordinator) do(ctx context.Context, h *heldLease, now time.Time, f func(Lease) (Lease, error), guard func(Lease) error) (Lease, error) {
	l, err := f(h.lease)
	if err != nil && errors.Is(err, ErrConflict) && !h.uncertainSince.IsZero() {
		cur, gerr := c.store.Get(ctx, h.lease.Key)
		switch {
		case errors.Is(gerr, ErrNotFound):
			return Lease{}, gerr
		case gerr != nil:
			// Unknown again: keep the lease until it expires locally.
			return Lease{}, fmt.Errorf("lease %s: re-read after failed condition: %w", h.lease.Key, gerr)
		case cur.Owner == c.cfg.WorkerID && cur.Counter == h.lease.Counter+1:
			h.set(cur)
			h.lastWritten, h.uncertainSince = h.uncertainSince, time.Time{}
			if guard != nil {
				if err := guard(cur); err != nil {
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

func (c *Coordinator) writeKey(ctx context.Context, key string, f func(Lease) (Lease, error), guard func(Lease) error) error {
	h := c.lookup(key)
	if h == nil {
		return fmt.Errorf("lease %s: %w: %w", key, ErrLeaseLost, ErrNotHeld)
	}
	return c.write(ctx, h, f, guard)
}

// notBehind refuses a checkpoint before the one found in the table.
func notBehind(pos checkpoint.Position) func(Lease) error {
	return func(cur Lease) error {
		if pos.Compare(cur.Checkpoint) < 0 {
			return fmt.Errorf("lease %s: %w: stored checkpoint is %s", cur.Key, checkpoint.ErrPositionBackwards, cur.Checkpoint)
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
		return fmt.Errorf("lease %s: writer is bound to %s: %w", shardID, w.key, ErrNotHeld)
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
// ErrReleased) is sent. This worker's own taker may take it back like any
// other available lease; ReleaseAll stops taking. Releasing a lease that is
// already lost returns nil. A transient store error leaves the lease held
// and is returned so the caller can retry.
func (c *Coordinator) Release(ctx context.Context, key string) error {
	h := c.lookup(key)
	if h == nil {
		return fmt.Errorf("lease %s: %w", key, ErrNotHeld)
	}
	return c.release(ctx, h)
}

func (c *Coordinator) release(ctx context.Context, h *heldLease) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return nil
	}
	_, err := c.do(ctx, h, c.cfg.Clock.Now(), func(l Lease) (Lease, error) { return c.store.Release(ctx, l) }, nil)
	switch {
	case err == nil:
		c.markLostLocked(h, ErrReleased)
		return nil
	case isLoss(err):
		c.markLostLockedAt(h, err, slog.LevelInfo)
		return nil // not ours any more: nothing left to release
	}
	return fmt.Errorf("lease %s: release: %w", h.lease.Key, err)
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
	// Wait for a take in flight: it acquires its lease before releasing the
	// slot, and every later take sees drain.
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
	return errors.Join(errs...)
}

// renewLoop renews at a fixed rate on the injected clock. When a lease
// failed to renew, it also wakes exactly when that lease's failover time
// runs out, so the loss is reported then and not up to an interval later.
func (c *Coordinator) renewLoop(ctx context.Context) error {
	clk := c.cfg.Clock
	next := clk.Now().Add(c.cfg.RenewInterval)
	t := clk.NewTimer(c.cfg.RenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		expiry := c.renewPass(ctx)
		now := clk.Now()
		if !next.After(now) {
			next = next.Add(c.cfg.RenewInterval)
			if !next.After(now) {
				next = now.Add(c.cfg.RenewInterval)
			}
		}
		wake := next
		if !expiry.IsZero() && expiry.Before(wake) {
			wake = expiry
		}
		t.Reset(max(wake.Sub(now), 0))
	}
}

// renewPass renews every held lease once, in parallel. It returns the
// earliest time a lease whose renewal failed expires locally (zero if none).
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
				if expiry.IsZero() || exp.Before(expiry) {
					expiry = exp
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	st.Duration = c.cfg.Clock.Now().Sub(start)
	c.cfg.Metrics.RenewPass(st)
	return expiry
}

type renewResult int

const (
	renewed renewResult = iota
	skipped
	lostLease
	failed
)

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
	// A checkpoint in the last half interval already moved the counter,
	// which is all other workers look at. Skip only if the next pass still
	// comes within two thirds of FailoverTime of that write, leaving a third
	// for retries: with KCL's timings (interval FailoverTime/3) that is
	// always so, with a long RenewInterval it never is.
	if el := now.Sub(h.lastWritten); el < c.cfg.RenewInterval/2 && el+c.cfg.RenewInterval <= c.cfg.FailoverTime*2/3 {
		return skipped, time.Time{}
	}
	// Bound the call so a hung request cannot hold the lease's lock (and
	// its checkpoints) past the next pass. This is an I/O deadline on the
	// wall clock, not lease timing.
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
	defer cancel()
	_, err := c.do(rctx, h, now, func(l Lease) (Lease, error) { return c.store.Renew(rctx, l) }, nil)
	switch {
	case err == nil:
		return renewed, time.Time{}
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
	return failed, h.lastWritten.Add(c.cfg.FailoverTime)
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
	for {
		now := clk.Now()
		next, balance := lastBalance.Add(c.cfg.TakeInterval), true
		switch {
		case !warmUntil.IsZero():
			next = warmUntil // before any other pass: InitialTakeDelay < TakeInterval
		case c.cfg.ExpiryScanInterval > 0:
			if s := lastScan.Add(c.cfg.ExpiryScanInterval); s.Before(next) {
				next, balance = s, false
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
			c.takePassWarm(ctx, false, !warmUntil.IsZero())
			continue
		case <-t.C():
		}
		warmUntil = time.Time{}
		lastScan = next
		if balance {
			lastBalance = next
		}
		c.takePass(ctx, balance)
	}
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
		c.cfg.Metrics.TakePass(st)
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
	c.observe(all, now)
	plan := c.plan(all, now, c.parentsUnknown(ctx, all, now))
	st.Leases, st.Workers, st.Target = plan.leases, plan.workers, plan.target
	mine := plan.mine

	take := func(l Lease) bool {
		select {
		case c.taking <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		defer func() { <-c.taking }()
		if c.drain.Load() {
			return false
		}
		issued := clk.Now()
		// An I/O deadline, as for renewals: a hung request must not stall
		// the taker, nor ReleaseAll waiting for it.
		tctx, cancel := context.WithTimeout(ctx, c.cfg.RenewInterval)
		got, err := c.store.Take(tctx, l, c.cfg.WorkerID)
		cancel()
		if err != nil {
			st.Failed++
			if !isLoss(err) && ctx.Err() == nil {
				c.log.Warn("lease take failed", "lease", l.Key, "err", err)
			}
			return false
		}
		c.seen[l.Key] = observation{counter: got.Counter, owner: got.Owner, since: now}
		c.acquire(got, issued)
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
	if balance && !capped && now.Sub(c.watchingSince) > c.cfg.FailoverTime {
		counts, victims := plan.counts, plan.victims
		for mine < plan.target && ctx.Err() == nil {
			if n := c.cfg.MaxLeasesToStealAtOneTime; n > 0 && st.Stolen >= n {
				break
			}
			// The most loaded worker, ties by name for determinism.
			var v string
			for w, n := range counts {
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
			if take(l) {
				st.Stolen++
				c.log.Info("lease stolen", "lease", l.Key, "from", v)
			}
		}
	}
	st.Held = mine
	return capped
}

// observe records when each lease's counter was first seen at its current
// value, on the local clock.
func (c *Coordinator) observe(all []Lease, now time.Time) {
	present := make(map[string]bool, len(all))
	for _, l := range all {
		present[l.Key] = true
		o, ok := c.seen[l.Key]
		if !ok || o.counter != l.Counter || o.owner != l.Owner {
			c.seen[l.Key] = observation{counter: l.Counter, owner: l.Owner, since: now}
		}
	}
	for k := range c.seen {
		if !present[k] {
			delete(c.seen, k)
		}
	}
}

type takePlan struct {
	leases, workers, target, mine int
	available                     []Lease
	counts                        map[string]int     // unexpired leases per other worker
	victims                       map[string][]Lease // their leases, in steal order
}

// parentsUnknown returns the leases this worker could take (unowned or
// expired, not finished) that have a parent whose lease is missing from the
// scan but not confirmed gone: List leaves out items it cannot read, and a
// child must not start before its parent ended, nor be held waiting for a
// parent that may never be readable (holding a slot of this worker's
// share). Such a parent is reported at Error with both keys on every pass
// until the item is fixed; a parent that could not be read for a transient
// reason blocks the child for this pass only.
func (c *Coordinator) parentsUnknown(ctx context.Context, all []Lease, now time.Time) map[string]bool {
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
		if l.Owner != "" && now.Sub(c.seen[l.Key].since) <= c.cfg.FailoverTime {
			continue // held by a live worker, or by this one: not a take candidate
		}
		for _, pk := range l.ParentShardIDs {
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

// plan computes this worker's target and candidates from one scan.
// Finished (SHARD_END) leases are left out: they need no processing. So are
// unowned (or expired) leases whose parents have not finished: holding them
// would only mean waiting, and a worker at its fair share that took one
// would keep it from a worker that can start it the moment the parents end.
func (c *Coordinator) plan(all []Lease, now time.Time, parentsUnknown map[string]bool) takePlan {
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
		for _, pk := range l.ParentShardIDs {
			if unfinished[pk] {
				return true
			}
		}
		return false
	}

	p := takePlan{counts: map[string]int{}, victims: map[string][]Lease{}}
	veryOld := map[string]bool{}
	for _, l := range all {
		if l.Finished() {
			continue
		}
		if heldKeys[l.Key] {
			p.leases++
			p.mine++
			continue
		}
		age := now.Sub(c.seen[l.Key].since)
		expired := age > c.cfg.FailoverTime
		if (l.Owner == "" || expired) && l.Owner != self && blocked(l) {
			// Nobody works on it yet, and nobody can before its parents
			// end: leave it out of the balance. The worker that finishes
			// the last parent takes it at once (TakeNow), or any worker
			// at its next pass.
			continue
		}
		p.leases++
		switch {
		case l.Owner == "" || expired || l.Owner == self:
			// Owned by self but not held: left over from an earlier run
			// of this worker; take it back at once.
			p.available = append(p.available, l)
			veryOld[l.Key] = expired && age > 3*c.cfg.FailoverTime
		default:
			p.counts[l.Owner]++
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
