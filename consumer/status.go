package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardflow/shardflow/checkpoint"
	"github.com/shardflow/shardflow/clock"
	"github.com/shardflow/shardflow/lease"
)

// DefaultUnhealthyAfter is Config.UnhealthyAfter's default.
const DefaultUnhealthyAfter = time.Minute

// Status is a snapshot of a consumer, for health endpoints and debugging.
// Its parts are read one after another, not at one instant.
type Status struct {
	WorkerID string
	// At is when the snapshot was taken, on Config.Clock; Healthy
	// measures the failing times against it.
	At time.Time
	// Ready: Run has resolved the stream(s) and made its first shard sync,
	// and has not returned. Stopped: Run has returned (with Err), or
	// Shutdown was called on a consumer that never ran. ShuttingDown:
	// Shutdown was called and Run has not returned yet.
	Ready, ShuttingDown, Stopped bool
	Err                          error
	// Leases is how many leases this worker holds (and processes, or
	// waits to process): len(Shards).
	Leases int
	Shards []ShardStatus
	// StoreFailingSince is since when a kind of lease store call (List,
	// Renew, Take, ...) has failed with no success of that kind since
	// (the earliest such kind; zero when none is failing), and StoreErr
	// its last failure, naming the call. Answers about leases (not found,
	// a conditional write that lost, an unreadable item) are successes:
	// the store answered. A kind that has not failed for longer than
	// UnhealthyAfter no longer counts, so one failed call that is not
	// repeated is not an outage.
	StoreFailingSince time.Time
	StoreErr          error
	// StreamFailingSince and StreamErr are the same for Kinesis calls
	// (GetRecords, GetShardIterator, ListShards, SubscribeToShard, ...);
	// an expired iterator (recovered by a new one) and a fan-out consumer
	// still being registered are not failures. Failures inside a
	// SubscribeToShard event stream are not seen here: the next
	// subscription's call is.
	StreamFailingSince time.Time
	StreamErr          error
	// UnhealthyAfter is Config.UnhealthyAfter (negative: failing calls
	// never make the consumer unhealthy).
	UnhealthyAfter time.Duration
}

// Healthy reports whether the consumer works: it has not stopped, and
// neither the lease store nor the stream has been failing for longer than
// UnhealthyAfter. A consumer still starting is healthy (and not Ready).
func (s Status) Healthy() bool {
	return !s.Stopped && !s.StoreUnhealthy() && !s.StreamUnhealthy()
}

// StoreUnhealthy reports whether the lease store has been failing for
// longer than UnhealthyAfter.
func (s Status) StoreUnhealthy() bool { return s.failingTooLong(s.StoreFailingSince) }

// StreamUnhealthy reports whether Kinesis calls have been failing for
// longer than UnhealthyAfter.
func (s Status) StreamUnhealthy() bool { return s.failingTooLong(s.StreamFailingSince) }

func (s Status) failingTooLong(since time.Time) bool {
	return s.UnhealthyAfter >= 0 && !since.IsZero() && s.At.Sub(since) > s.UnhealthyAfter
}

// ShardState is where a held shard's pipeline is.
type ShardState int

const (
	// ShardInitializing: acquired, waiting for its previous pipeline (a
	// lease taken back) or in the processor's Initialize.
	ShardInitializing ShardState = iota
	// ShardWaitingForParents: a parent shard has not ended yet (after a
	// reshard, a child waits for its parents' records to be processed).
	ShardWaitingForParents
	// ShardProcessing: fetching and processing records.
	ShardProcessing
	// ShardEnding: the shard ended; its child leases are created and the
	// processor's ShardEnded runs, then the lease is handed back.
	ShardEnding
	// ShardShuttingDown: Shutdown was called; the batch in flight
	// finishes and ShutdownRequested runs.
	ShardShuttingDown
	// ShardHandingOff: another worker asked for the lease; the batch in
	// flight finishes, ShutdownRequested runs and the lease goes to it.
	ShardHandingOff
)

func (s ShardState) String() string {
	switch s {
	case ShardInitializing:
		return "initializing"
	case ShardWaitingForParents:
		return "waiting_for_parents"
	case ShardProcessing:
		return "processing"
	case ShardEnding:
		return "ending"
	case ShardShuttingDown:
		return "shutting_down"
	case ShardHandingOff:
		return "handing_off"
	}
	return "unknown"
}

// ShardStatus is one held shard's part of Status.
type ShardStatus struct {
	// LeaseKey is the lease's key: the shard id, or in multi-stream mode
	// "account:stream:creationEpoch:shardId".
	LeaseKey string
	ShardID  string
	// StreamID is the stream's identifier in multi-stream mode
	// ("account:stream:creationEpoch"), empty in single-stream mode.
	StreamID string
	State    ShardState
	// Checkpoint is the last checkpoint written (the lease's checkpoint
	// until the processor writes one).
	Checkpoint checkpoint.Position
	// MillisBehindLatest is the lag the last fetched batch reported, -1
	// before the first.
	MillisBehindLatest int64
	// LastFetch is when records (possibly none) were last fetched, and
	// LastProcessed when ProcessRecords last returned nil; zero before
	// the first.
	LastFetch, LastProcessed time.Time
}

// Status returns a snapshot of the consumer: its held shards, and since
// when its lease store or stream has been failing. It is safe to call
// concurrently with everything else, at any time (before Run, after it
// returned), and cheap: one short hold of the consumer's lock and each
// shard's, and one allocation for Shards.
func (c *Consumer) Status() Status {
	st := Status{WorkerID: c.cfg.WorkerID, At: c.cfg.Clock.Now(), UnhealthyAfter: c.cfg.UnhealthyAfter}
	st.StoreFailingSince, st.StoreErr = c.storeHealth.failing(st.At)
	st.StreamFailingSince, st.StreamErr = c.streamHealth.failing(st.At)
	graceful := false
	select {
	case <-c.graceful:
		graceful = true
	default:
	}
	select {
	case <-c.done:
		st.Stopped = true
	default:
	}
	c.mu.Lock()
	st.Ready = c.ready && !st.Stopped
	st.ShuttingDown = (graceful || c.stopping) && !st.Stopped
	if st.Stopped {
		st.Err = c.runErr
	}
	st.Shards = make([]ShardStatus, 0, len(c.shards))
	for _, h := range c.shards {
		st.Shards = append(st.Shards, h.status(graceful))
	}
	c.mu.Unlock()
	st.Leases = len(st.Shards)
	slices.SortFunc(st.Shards, func(a, b ShardStatus) int { return strings.Compare(a.LeaseKey, b.LeaseKey) })
	return st
}

// shardStatus is what a pipeline reports of itself for Status.
type shardStatus struct {
	key, shardID, streamID string

	mu            sync.Mutex
	state         ShardState
	checkpoint    checkpoint.Position      // the lease's, until cp is set
	cp            *checkpoint.Checkpointer // the pipeline's, once it exists
	millisBehind  int64
	lastFetch     time.Time
	lastProcessed time.Time
}

func newShardStatus(l lease.Lease) *shardStatus {
	return &shardStatus{key: l.Key, shardID: l.Shard(), streamID: l.StreamID, checkpoint: l.Checkpoint, millisBehind: -1}
}

func (s *shardStatus) setState(st ShardState) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

func (s *shardStatus) setCheckpointer(cp *checkpoint.Checkpointer) {
	s.mu.Lock()
	s.cp = cp
	s.mu.Unlock()
}

// fetched records a successful fetch and its lag (nil: not reported).
func (s *shardStatus) fetched(at time.Time, millisBehind *int64) {
	s.mu.Lock()
	s.lastFetch = at
	if millisBehind != nil {
		s.millisBehind = *millisBehind
	}
	s.mu.Unlock()
}

func (s *shardStatus) processed(at time.Time) {
	s.mu.Lock()
	s.lastProcessed = at
	s.mu.Unlock()
}

// status reads the shard for Status; graceful: Shutdown was called.
func (h *shardHandle) status(graceful bool) ShardStatus {
	s := h.st
	s.mu.Lock()
	out := ShardStatus{
		LeaseKey: s.key, ShardID: s.shardID, StreamID: s.streamID,
		State: s.state, Checkpoint: s.checkpoint, MillisBehindLatest: s.millisBehind,
		LastFetch: s.lastFetch, LastProcessed: s.lastProcessed,
	}
	cp := s.cp
	s.mu.Unlock()
	if cp != nil {
		out.Checkpoint = cp.Last()
	}
	// A request to stop is seen by the pipeline at its next step; the
	// snapshot says so at once.
	if out.State != ShardEnding {
		switch {
		case graceful:
			out.State = ShardShuttingDown
		case h.handoffRequested():
			out.State = ShardHandingOff
		}
	}
	return out
}

// failureTracker follows whether calls to one dependency (the lease store,
// the stream) are failing, per kind of call (List, Renew, GetRecords, ...):
// a kind of call fails continuously from its first failure until its next
// success. Kinds are apart so that one that works (a new shard iterator)
// does not hide one that keeps failing (GetRecords). A kind with no
// failure for longer than the window (UnhealthyAfter) no longer counts:
// a call made once that failed once (recording child shards at a shard's
// end) is not an outage. It logs once when a kind has failed for longer
// than UnhealthyAfter, and once when that kind succeeds again.
type failureTracker struct {
	what  string // "lease store", "stream"
	clk   clock.Clock
	after time.Duration
	log   *slog.Logger

	// nFailing counts the kinds in ops, so that a success skips the lock
	// while nothing fails: the common case, on every call.
	nFailing atomic.Int32
	mu       sync.Mutex
	ops      map[string]*opFailure
}

// opFailure is one kind of call failing since since; last is its latest
// failure, err that failure's error.
type opFailure struct {
	since, last time.Time
	err         error
	reported    bool
}

func newFailureTracker(what string, cfg Config, log *slog.Logger) *failureTracker {
	return &failureTracker{what: what, clk: cfg.Clock, after: cfg.UnhealthyAfter, log: log, ops: make(map[string]*opFailure)}
}

// window is how recent a kind's last failure must be for it to count.
func (t *failureTracker) window() time.Duration {
	if t.after > 0 {
		return t.after
	}
	return DefaultUnhealthyAfter
}

// observe records one call's outcome. ok says the dependency answered
// (err is nil, or an answer such as "not found"). A call whose context
// ended says nothing about the dependency and is not counted.
func (t *failureTracker) observe(ctx context.Context, op string, err error, ok bool) {
	if ok {
		if t.nFailing.Load() == 0 {
			return
		}
		t.mu.Lock()
		f := t.ops[op]
		if f != nil {
			delete(t.ops, op)
			t.nFailing.Add(-1)
		}
		t.mu.Unlock()
		if f != nil && f.reported {
			t.log.Info(t.what+" calls succeed again", "call", op, "failing_for", t.clk.Now().Sub(f.since).Round(time.Millisecond))
		}
		return
	}
	if ctx.Err() != nil {
		return
	}
	now := t.clk.Now()
	t.mu.Lock()
	f := t.ops[op]
	if f == nil {
		f = &opFailure{since: now}
		t.ops[op] = f
		t.nFailing.Add(1)
	} else if now.Sub(f.last) > t.window() {
		*f = opFailure{since: now} // an old failure: a new episode
	}
	f.last, f.err = now, err
	since := f.since
	report := t.after >= 0 && !f.reported && now.Sub(since) > t.after
	if report {
		f.reported = true
	}
	t.mu.Unlock()
	if report {
		t.log.Error(t.what+" calls failing for longer than UnhealthyAfter: the consumer reports itself unhealthy",
			"call", op, "failing_since", since, "unhealthy_after", t.after, "err", err)
	}
}

// failing returns since when the longest-failing kind of call that still
// counts at now has failed, and its last error (naming the call).
func (t *failureTracker) failing(now time.Time) (time.Time, error) {
	if t.nFailing.Load() == 0 {
		return time.Time{}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var since time.Time
	var err error
	for op, f := range t.ops {
		if now.Sub(f.last) > t.window() {
			continue
		}
		if since.IsZero() || f.since.Before(since) {
			since, err = f.since, fmt.Errorf("%s: %w", op, f.err)
		}
	}
	return since, err
}

// healthStore is the lease store as the consumer and its coordinator use
// it: every call's outcome goes to the store's failureTracker.
type healthStore struct {
	lease.Store
	t *failureTracker
}

func (s *healthStore) observe(ctx context.Context, op string, err error) {
	s.t.observe(ctx, op, err, err == nil || errors.Is(err, lease.ErrNotFound) || errors.Is(err, lease.ErrConflict) || errors.Is(err, lease.ErrUnreadable))
}

func (s *healthStore) List(ctx context.Context) ([]lease.Lease, error) {
	ls, err := s.Store.List(ctx)
	s.observe(ctx, "List", err)
	return ls, err
}

func (s *healthStore) Get(ctx context.Context, key string) (lease.Lease, error) {
	l, err := s.Store.Get(ctx, key)
	s.observe(ctx, "Get", err)
	return l, err
}

func (s *healthStore) Create(ctx context.Context, l lease.Lease) (bool, error) {
	ok, err := s.Store.Create(ctx, l)
	s.observe(ctx, "Create", err)
	return ok, err
}

func (s *healthStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	l, err := s.Store.Renew(ctx, l)
	s.observe(ctx, "Renew", err)
	return l, err
}

func (s *healthStore) Take(ctx context.Context, l lease.Lease, owner string) (lease.Lease, error) {
	l, err := s.Store.Take(ctx, l, owner)
	s.observe(ctx, "Take", err)
	return l, err
}

func (s *healthStore) MarkHandoff(ctx context.Context, l lease.Lease, next string) (lease.Lease, error) {
	l, err := s.Store.MarkHandoff(ctx, l, next)
	s.observe(ctx, "MarkHandoff", err)
	return l, err
}

func (s *healthStore) CancelHandoff(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	l, err := s.Store.CancelHandoff(ctx, l)
	s.observe(ctx, "CancelHandoff", err)
	return l, err
}

func (s *healthStore) Release(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	l, err := s.Store.Release(ctx, l)
	s.observe(ctx, "Release", err)
	return l, err
}

func (s *healthStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, pos checkpoint.Position) (lease.Lease, error) {
	l, err := s.Store.UpdateCheckpoint(ctx, l, pos)
	s.observe(ctx, "UpdateCheckpoint", err)
	return l, err
}

func (s *healthStore) UpdatePendingCheckpoint(ctx context.Context, l lease.Lease, pos *checkpoint.Position, state []byte) (lease.Lease, error) {
	l, err := s.Store.UpdatePendingCheckpoint(ctx, l, pos, state)
	s.observe(ctx, "UpdatePendingCheckpoint", err)
	return l, err
}

func (s *healthStore) UpdateChildShards(ctx context.Context, l lease.Lease, children []string) (lease.Lease, error) {
	l, err := s.Store.UpdateChildShards(ctx, l, children)
	s.observe(ctx, "UpdateChildShards", err)
	return l, err
}

func (s *healthStore) Delete(ctx context.Context, key string) error {
	err := s.Store.Delete(ctx, key)
	s.observe(ctx, "Delete", err)
	return err
}

// healthKinesis is the Kinesis client as the consumer uses it: every
// call's outcome goes to the stream's failureTracker. The fan-out methods
// are used only when New found the client to implement FanOutKinesis.
type healthKinesis struct {
	Kinesis
	t *failureTracker
}

var _ FanOutKinesis = (*healthKinesis)(nil)

func (k *healthKinesis) observe(ctx context.Context, op string, err error) {
	// An expired iterator is routine (a slow processor), recovered with a
	// new one; a consumer registration in progress is waited for.
	k.t.observe(ctx, op, err, err == nil || isExpiredIterator(err) || isResourceInUse(err))
}

func (k *healthKinesis) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	out, err := k.Kinesis.DescribeStreamSummary(ctx, in, optFns...)
	k.observe(ctx, "DescribeStreamSummary", err)
	return out, err
}

func (k *healthKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	out, err := k.Kinesis.ListShards(ctx, in, optFns...)
	k.observe(ctx, "ListShards", err)
	return out, err
}

func (k *healthKinesis) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	out, err := k.Kinesis.GetShardIterator(ctx, in, optFns...)
	k.observe(ctx, "GetShardIterator", err)
	return out, err
}

func (k *healthKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	out, err := k.Kinesis.GetRecords(ctx, in, optFns...)
	k.observe(ctx, "GetRecords", err)
	return out, err
}

func (k *healthKinesis) RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error) {
	out, err := k.Kinesis.(FanOutKinesis).RegisterStreamConsumer(ctx, in, optFns...)
	k.observe(ctx, "RegisterStreamConsumer", err)
	return out, err
}

func (k *healthKinesis) DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error) {
	out, err := k.Kinesis.(FanOutKinesis).DescribeStreamConsumer(ctx, in, optFns...)
	k.observe(ctx, "DescribeStreamConsumer", err)
	return out, err
}

func (k *healthKinesis) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	out, err := k.Kinesis.(FanOutKinesis).SubscribeToShard(ctx, in, optFns...)
	k.observe(ctx, "SubscribeToShard", err)
	return out, err
}
