package consumer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
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
	// waits to process): the Shards not in ShardLost.
	Leases int
	Shards []ShardStatus
	// StoreFailingSince is since when a kind of lease store call (List,
	// Renew, Take, ...) has failed with no success of that kind since
	// (the earliest such kind; zero when none is failing), and StoreErr
	// its last failure, naming the call. Answers about leases (not found,
	// a conditional write that lost, an unreadable item) are successes:
	// the store answered. A call that ran out of its own deadline (a hung
	// endpoint) is a failure, one cancelled because the consumer or the
	// shard stops is not; a call in flight for longer than UnhealthyAfter
	// counts as failing since it started (StoreErr names the call and
	// says "no answer yet"). A kind fails until its next success however far apart its
	// attempts are; it counts once it has failed twice, and stops counting
	// when no longer attempted for long (Config.UnhealthyAfter has the
	// rule).
	StoreFailingSince time.Time
	StoreErr          error
	// StreamFailingSince and StreamErr are the same for Kinesis calls
	// (GetRecords, GetShardIterator, ListShards, SubscribeToShard, ...),
	// kept apart per stream, so that in multi-stream mode one stream's
	// successes do not hide another's failures. A throttled call is a
	// failure (throttles alone for UnhealthyAfter are no progress); an
	// expired iterator (recovered by a new one) and a fan-out consumer
	// still being registered are not. Failures inside a SubscribeToShard
	// event stream are not seen here: the next subscription's call is.
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
	// ShardLost: the lease was lost (taken by another worker, expired, or
	// a write fenced); the pipeline is being stopped (a batch in flight
	// may still be finishing) and the lease is not counted in
	// Status.Leases.
	ShardLost
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
	case ShardLost:
		return "lost"
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
	for _, sh := range st.Shards {
		if sh.State != ShardLost {
			st.Leases++
		}
	}
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
	lost          bool // the lease was lost: ShardLost
}

func newShardStatus(l lease.Lease) *shardStatus {
	return &shardStatus{key: l.Key, shardID: l.Shard(), streamID: l.StreamID, checkpoint: l.Checkpoint, millisBehind: -1}
}

func (s *shardStatus) setState(st ShardState) {
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
}

// setLost records that the lease was lost (not handed back).
func (s *shardStatus) setLost() {
	s.mu.Lock()
	s.lost = true
	s.mu.Unlock()
}

func (s *shardStatus) isLost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
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
	cp, lost := s.cp, s.lost
	s.mu.Unlock()
	if cp != nil {
		out.Checkpoint = cp.Last()
	}
	// A request to stop is seen by the pipeline at its next step; the
	// snapshot says so at once.
	if out.State != ShardEnding || lost {
		switch {
		case lost:
			out.State = ShardLost
		case graceful:
			out.State = ShardShuttingDown
		case h.handoffRequested():
			out.State = ShardHandingOff
		}
	}
	return out
}

// failureTracker follows whether calls to one dependency (the lease store,
// the stream) are failing, per kind of call: a store call by name (List,
// Renew, ...), a Kinesis call by name and stream (GetRecords on s), so
// that one that works (a new shard iterator, another stream's reads) does
// not hide one that keeps failing. A kind fails continuously from its
// first failure until its next success, however far apart its attempts
// are (Config.UnhealthyAfter documents the rule). A kind not attempted
// for longer than stale no longer counts. Calls
// in flight are tracked too, so that a call hanging without a deadline
// counts as failing once it has been in flight for longer than
// UnhealthyAfter. A kind counts once it has failed twice: one failure, not
// repeated, is not an outage. It logs once when a kind has failed for
// longer than UnhealthyAfter, and once when that kind succeeds again.
type failureTracker struct {
	what  string // "lease store", "stream"
	clk   clock.Clock
	after time.Duration
	stale time.Duration
	log   *slog.Logger
	// run is Run's context, once Run started: a call failing after it
	// ended is the consumer stopping, not the dependency failing.
	run atomic.Pointer[context.Context]

	// nFailing counts the kinds in ops, so that a success skips the lock
	// while nothing fails: the common case, on every call.
	nFailing atomic.Int32
	mu       sync.Mutex
	ops      map[string]*opFailure

	// inFlight are the calls made and not returned yet, by call id.
	flightMu sync.Mutex
	nextID   uint64
	inFlight map[uint64]flight
}

// opFailure is one kind of call failing since since; last is its latest
// failure, err that failure's error.
type opFailure struct {
	since, last time.Time
	err         error
	reported    bool
}

// flight is one call in flight: its kind and when it started.
type flight struct {
	key   string
	start time.Time
}

// call is what begin returns for end.
type call struct {
	key string
	id  uint64
}

// errNoAnswer is the error of a call in flight for longer than
// UnhealthyAfter.
var errNoAnswer = errors.New("no answer yet")

func newFailureTracker(what string, cfg Config, log *slog.Logger) *failureTracker {
	return &failureTracker{what: what, clk: cfg.Clock, after: cfg.UnhealthyAfter, stale: staleAfter(cfg), log: log,
		ops: make(map[string]*opFailure), inFlight: make(map[uint64]flight)}
}

// staleAfter is how long a kind of call may go unattempted before its
// failure no longer counts: twice the longest period at which the
// consumer makes or retries a call (the wait, then the call itself), so
// that a call retried at its slowest pace still fails continuously.
// Unset fields count at their defaults.
func staleAfter(cfg Config) time.Duration {
	d := max(cmp.Or(cfg.UnhealthyAfter, DefaultUnhealthyAfter),
		cmp.Or(cfg.ThrottleBackoff.Max, defaultThrottleBackoffMax),
		cmp.Or(cfg.ShardSyncInterval, DefaultShardSyncInterval),
		cmp.Or(cfg.FailoverTime, DefaultFailoverTime),
		cmp.Or(cfg.IdleTimeBetweenReads, DefaultIdleTimeBetweenReads))
	return 2 * d
}

// runStarted tells the tracker Run's context.
func (t *failureTracker) runStarted(ctx context.Context) { t.run.Store(&ctx) }

// threshold is how long a call may be in flight before it counts.
func (t *failureTracker) threshold() time.Duration {
	if t.after > 0 {
		return t.after
	}
	return DefaultUnhealthyAfter
}

// begin records a call of kind key starting; end records its outcome.
func (t *failureTracker) begin(key string) call {
	now := t.clk.Now()
	t.flightMu.Lock()
	t.nextID++
	id := t.nextID
	t.inFlight[id] = flight{key: key, start: now}
	t.flightMu.Unlock()
	return call{key: key, id: id}
}

// end records the outcome of c (see observe).
func (t *failureTracker) end(ctx context.Context, c call, err error, ok bool) {
	t.flightMu.Lock()
	delete(t.inFlight, c.id)
	t.flightMu.Unlock()
	t.observe(ctx, c.key, err, ok)
}

// observe records one call's outcome. ok says the dependency answered
// (err is nil, or an answer such as "not found"). A call cancelled (its
// context's error is context.Canceled, or Run's context has ended) says
// nothing about the dependency and is not counted; one that ran out of
// its own deadline is a failure: the dependency did not answer in time.
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
	if errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	if run := t.run.Load(); run != nil && (*run).Err() != nil {
		return
	}
	now := t.clk.Now()
	t.mu.Lock()
	f := t.ops[op]
	if f == nil {
		f = &opFailure{since: now}
		t.ops[op] = f
		t.nFailing.Add(1)
	} else if now.Sub(f.last) > t.stale {
		*f = opFailure{since: now} // no longer attempted for long: a new episode
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
// counts at now has failed, and its last error (naming the call); a call
// in flight for longer than UnhealthyAfter counts as failing since it
// started.
func (t *failureTracker) failing(now time.Time) (time.Time, error) {
	var since time.Time
	var err error
	t.flightMu.Lock()
	for _, fl := range t.inFlight {
		if now.Sub(fl.start) > t.threshold() && (since.IsZero() || fl.start.Before(since)) {
			since, err = fl.start, fmt.Errorf("%s: in flight since %v: %w", fl.key, fl.start, errNoAnswer)
		}
	}
	t.flightMu.Unlock()
	if t.nFailing.Load() == 0 {
		return since, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for op, f := range t.ops {
		if !f.last.After(f.since) || now.Sub(f.last) > t.stale {
			continue // failed once only, or no longer attempted
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

// storeAnswered reports whether a store call's outcome is an answer.
func storeAnswered(err error) bool {
	return err == nil || errors.Is(err, lease.ErrNotFound) || errors.Is(err, lease.ErrConflict) || errors.Is(err, lease.ErrUnreadable)
}

func (s *healthStore) List(ctx context.Context) ([]lease.Lease, error) {
	c := s.t.begin("List")
	ls, err := s.Store.List(ctx)
	s.t.end(ctx, c, err, storeAnswered(err))
	return ls, err
}

func (s *healthStore) Get(ctx context.Context, key string) (lease.Lease, error) {
	c := s.t.begin("Get")
	l, err := s.Store.Get(ctx, key)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) Create(ctx context.Context, l lease.Lease) (bool, error) {
	c := s.t.begin("Create")
	ok, err := s.Store.Create(ctx, l)
	s.t.end(ctx, c, err, storeAnswered(err))
	return ok, err
}

func (s *healthStore) Renew(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	c := s.t.begin("Renew")
	l, err := s.Store.Renew(ctx, l)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) Take(ctx context.Context, l lease.Lease, owner string) (lease.Lease, error) {
	c := s.t.begin("Take")
	l, err := s.Store.Take(ctx, l, owner)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) MarkHandoff(ctx context.Context, l lease.Lease, next string) (lease.Lease, error) {
	c := s.t.begin("MarkHandoff")
	l, err := s.Store.MarkHandoff(ctx, l, next)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) CancelHandoff(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	c := s.t.begin("CancelHandoff")
	l, err := s.Store.CancelHandoff(ctx, l)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) Release(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	c := s.t.begin("Release")
	l, err := s.Store.Release(ctx, l)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) UpdateCheckpoint(ctx context.Context, l lease.Lease, pos checkpoint.Position) (lease.Lease, error) {
	c := s.t.begin("UpdateCheckpoint")
	l, err := s.Store.UpdateCheckpoint(ctx, l, pos)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) UpdatePendingCheckpoint(ctx context.Context, l lease.Lease, pos *checkpoint.Position, state []byte) (lease.Lease, error) {
	c := s.t.begin("UpdatePendingCheckpoint")
	l, err := s.Store.UpdatePendingCheckpoint(ctx, l, pos, state)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) UpdateChildShards(ctx context.Context, l lease.Lease, children []string) (lease.Lease, error) {
	c := s.t.begin("UpdateChildShards")
	l, err := s.Store.UpdateChildShards(ctx, l, children)
	s.t.end(ctx, c, err, storeAnswered(err))
	return l, err
}

func (s *healthStore) Delete(ctx context.Context, key string) error {
	c := s.t.begin("Delete")
	err := s.Store.Delete(ctx, key)
	s.t.end(ctx, c, err, storeAnswered(err))
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

// kinesisAnswered reports whether a Kinesis call's outcome is an answer.
// An expired iterator is routine (a slow processor), recovered with a new
// one; a consumer registration in progress is waited for. A throttled call
// is a failure: throttles alone for UnhealthyAfter are no progress.
func kinesisAnswered(err error) bool {
	return err == nil || isExpiredIterator(err) || isResourceInUse(err)
}

// kinesisKey is the kind of a Kinesis call: its name and its stream (the
// first of ref and alt set: a stream or consumer ARN, or a stream name),
// so that in multi-stream mode one stream's failures are not hidden by
// another's successes.
func kinesisKey(op string, ref, alt *string) string {
	if r := cmp.Or(aws.ToString(ref), aws.ToString(alt)); r != "" {
		return op + " " + r
	}
	return op
}

func (k *healthKinesis) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	c := k.t.begin(kinesisKey("DescribeStreamSummary", in.StreamARN, in.StreamName))
	out, err := k.Kinesis.DescribeStreamSummary(ctx, in, optFns...)
	k.t.end(ctx, c, err, kinesisAnswered(err))
	return out, err
}

func (k *healthKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	c := k.t.begin(kinesisKey("ListShards", in.StreamARN, in.StreamName))
	out, err := k.Kinesis.ListShards(ctx, in, optFns...)
	k.t.end(ctx, c, err, kinesisAnswered(err))
	return out, err
}

func (k *healthKinesis) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	c := k.t.begin(kinesisKey("GetShardIterator", in.StreamARN, in.StreamName))
	out, err := k.Kinesis.GetShardIterator(ctx, in, optFns...)
	k.t.end(ctx, c, err, kinesisAnswered(err))
	return out, err
}

func (k *healthKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	c := k.t.begin(kinesisKey("GetRecords", in.StreamARN, nil))
	out, err := k.Kinesis.GetRecords(ctx, in, optFns...)
	k.t.end(ctx, c, err, kinesisAnswered(err))
	return out, err
}

func (k *healthKinesis) RegisterStreamConsumer(ctx context.Context, in *kinesis.RegisterStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error) {
	c := k.t.begin(kinesisKey("RegisterStreamConsumer", in.StreamARN, nil))
	out, err := k.Kinesis.(FanOutKinesis).RegisterStreamConsumer(ctx, in, optFns...)
	k.t.end(ctx, c, err, kinesisAnswered(err))
	return out, err
}

func (k *healthKinesis) DescribeStreamConsumer(ctx context.Context, in *kinesis.DescribeStreamConsumerInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error) {
	c := k.t.begin(kinesisKey("DescribeStreamConsumer", in.ConsumerARN, in.StreamARN))
	out, err := k.Kinesis.(FanOutKinesis).DescribeStreamConsumer(ctx, in, optFns...)
	k.t.end(ctx, c, err, kinesisAnswered(err))
	return out, err
}

func (k *healthKinesis) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	c := k.t.begin(kinesisKey("SubscribeToShard", in.ConsumerARN, nil))
	out, err := k.Kinesis.(FanOutKinesis).SubscribeToShard(ctx, in, optFns...)
	k.t.end(ctx, c, err, kinesisAnswered(err))
	return out, err
}
